//! Turning sqlx errors into the workspace's [`Error`], classified and without secrets.

use broker_core::{Error, ErrorKind, Operation, urls::redact};

use crate::BACKEND;

/// An error of `kind` on this backend.
pub(crate) fn error(kind: ErrorKind, operation: Operation, detail: impl Into<String>) -> Error {
    Error::new(kind, BACKEND, operation, detail)
}

/// The error every call on a closed broker or store returns.
pub(crate) fn closed(operation: Operation) -> Error {
    error(
        ErrorKind::Closed,
        operation,
        "the connection pool was closed",
    )
}

/// Classifies a sqlx error: lost or refused connections, pool timeouts and server restarts are
/// retryable [`ErrorKind::Connection`]; serialization failures and deadlocks are retryable;
/// a closed pool is [`ErrorKind::Closed`]; everything else is not retryable. The detail is the
/// driver's text with any URL credentials removed.
pub(crate) fn from_sqlx(operation: Operation, err: sqlx::Error) -> Error {
    let detail = redact(&err.to_string());
    let (kind, retryable) = match &err {
        sqlx::Error::PoolClosed => (ErrorKind::Closed, false),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => (ErrorKind::Connection, true),
        sqlx::Error::Configuration(_) => (ErrorKind::Configuration, false),
        sqlx::Error::Database(db) => classify_sqlstate(db.code().as_deref().unwrap_or("")),
        _ => (ErrorKind::Backend, false),
    };
    let error = error(kind, operation, detail).retryable(retryable);
    match err {
        // A server message never carries the client's password; keep it for callers who
        // want the SQLSTATE.
        sqlx::Error::Database(db) => error.with_source(sqlx::Error::Database(db)),
        _ => error,
    }
}

/// Kind and retryability of a server error by its SQLSTATE.
fn classify_sqlstate(code: &str) -> (ErrorKind, bool) {
    match code {
        // Serialization failure and deadlock: the same statement may well succeed next time.
        "40001" | "40P01" => (ErrorKind::Backend, true),
        // Statement timeout or cancel.
        "57014" => (ErrorKind::Timeout, true),
        // Admin shutdown, crash shutdown, cannot connect now (starting up or recovering).
        "57P01" | "57P02" | "57P03" => (ErrorKind::Connection, true),
        // Authentication, unknown database or role: wrong settings, not a passing fault.
        "28000" | "28P01" | "3D000" => (ErrorKind::Configuration, false),
        _ if code.starts_with("08") => (ErrorKind::Connection, true),
        // Insufficient resources (too many connections, out of memory or disk).
        _ if code.starts_with("53") => (ErrorKind::Unavailable, true),
        // Data exceptions: a value PostgreSQL cannot store (for example `\u0000` in JSON).
        _ if code.starts_with("22") => (ErrorKind::InvalidInput, false),
        _ => (ErrorKind::Backend, false),
    }
}

/// Why the first connection to `endpoint` failed, as one line naming the endpoint and the
/// root cause: connection refused, cannot resolve the host, TLS handshake failed,
/// authentication failed, no such database. A refused or unresolvable server is a retryable
/// `Connection` error; a refusal by the server itself is `Configuration`.
pub(crate) fn connect_error(
    operation: Operation,
    endpoint: &str,
    database: Option<&str>,
    err: sqlx::Error,
) -> Error {
    let code = match &err {
        sqlx::Error::Database(db) => db.code().map(|code| code.into_owned()),
        _ => None,
    };
    let (kind, cause) = match (&err, code.as_deref()) {
        (sqlx::Error::Io(io), _) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            (ErrorKind::Connection, "connection refused".to_owned())
        }
        (sqlx::Error::Io(io), _) if io.to_string().contains("lookup address") => (
            ErrorKind::Connection,
            "cannot resolve the host name".to_owned(),
        ),
        (sqlx::Error::Tls(tls), _) => (
            ErrorKind::Configuration,
            format!("TLS handshake failed: {}", redact(&tls.to_string())),
        ),
        (sqlx::Error::Database(db), Some("28000" | "28P01")) => (
            ErrorKind::Configuration,
            format!("authentication failed: {}", db.message()),
        ),
        (sqlx::Error::Database(_), Some("3D000")) => (
            ErrorKind::Configuration,
            format!("no such database `{}`", database.unwrap_or_default()),
        ),
        _ => {
            let mapped = from_sqlx(operation, err);
            return error(
                mapped.kind(),
                operation,
                format!("{endpoint}: {}", mapped.detail()),
            )
            .retryable(mapped.is_retryable());
        }
    };
    error(kind, operation, format!("{endpoint}: {cause}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_and_deadlocks_are_retryable_and_bad_data_is_not() {
        assert_eq!(classify_sqlstate("08006"), (ErrorKind::Connection, true));
        assert_eq!(classify_sqlstate("57P01"), (ErrorKind::Connection, true));
        assert_eq!(classify_sqlstate("40P01"), (ErrorKind::Backend, true));
        assert_eq!(classify_sqlstate("53300"), (ErrorKind::Unavailable, true));
        assert_eq!(classify_sqlstate("22P05"), (ErrorKind::InvalidInput, false));
        assert_eq!(classify_sqlstate("42P01"), (ErrorKind::Backend, false));
        assert_eq!(
            classify_sqlstate("28P01"),
            (ErrorKind::Configuration, false)
        );
    }

    #[test]
    fn a_closed_pool_is_a_closed_error_and_a_pool_timeout_is_retryable() {
        let closed = from_sqlx(Operation::Receive, sqlx::Error::PoolClosed);
        assert_eq!(closed.kind(), ErrorKind::Closed);
        assert!(!closed.is_retryable());
        let timeout = from_sqlx(Operation::Publish, sqlx::Error::PoolTimedOut);
        assert_eq!(timeout.kind(), ErrorKind::Connection);
        assert!(timeout.is_retryable());
    }
}
