//! Redis client errors as the workspace's [`Error`], classified once.

use broker_core::{Error, ErrorKind, Operation};
use redis::{ErrorKind as RedisKind, RedisError, ServerErrorKind};

use broker_core::urls::redact;

use crate::BACKEND;

/// Maps a client error: connection trouble and timeouts are retryable, a server that is
/// loading, read-only or failing over is `Unavailable` (retryable), authentication and
/// permission failures are `Configuration`, anything else `Backend`. The detail is the error's
/// category and server message only, with anything URL-like redacted.
pub(crate) fn from_redis(operation: Operation, err: &RedisError) -> Error {
    let kind = if err.is_timeout() {
        ErrorKind::Timeout
    } else if err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_unrecoverable_error()
    {
        ErrorKind::Connection
    } else {
        match err.kind() {
            RedisKind::Server(
                ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::ReadOnly,
            ) => ErrorKind::Unavailable,
            RedisKind::AuthenticationFailed
            | RedisKind::InvalidClientConfig
            | RedisKind::Server(ServerErrorKind::NoPerm) => ErrorKind::Configuration,
            _ => ErrorKind::Backend,
        }
    };
    let mut detail = err.category().to_owned();
    if let Some(code) = err.code() {
        detail = format!("{detail} ({code})");
    }
    if let Some(text) = err.detail() {
        detail = format!("{detail}: {text}");
    }
    Error::new(kind, BACKEND, operation, redact(&detail))
}

/// Whether the server answered with this script error code (`NOQUEUE`, ...).
pub(crate) fn has_code(err: &RedisError, code: &str) -> bool {
    err.code() == Some(code)
}

pub(crate) fn queue_not_found(operation: Operation, queue: &str) -> Error {
    Error::new(
        ErrorKind::QueueNotFound,
        BACKEND,
        operation,
        format!("no queue named `{queue}` (declare it first)"),
    )
}

pub(crate) fn closed(operation: Operation) -> Error {
    Error::new(
        ErrorKind::Closed,
        BACKEND,
        operation,
        "the broker was closed",
    )
}

pub(crate) fn lease_lost(operation: Operation, detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::LeaseLost, BACKEND, operation, detail)
}

pub(crate) fn protocol(operation: Operation, detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::Backend, BACKEND, operation, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_retryable_connection_errors() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let err = from_redis(Operation::Publish, &RedisError::from(io));
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(err.is_retryable());
        assert_eq!(err.backend(), Some("redis"));
        assert_eq!(err.operation(), Operation::Publish);
    }

    #[test]
    fn timeouts_are_retryable() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        let err = from_redis(Operation::Receive, &RedisError::from(io));
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(err.is_retryable());
    }

    #[test]
    fn type_errors_are_not_retryable() {
        let err = from_redis(
            Operation::Ack,
            &RedisError::from((RedisKind::UnexpectedReturnType, "not a list")),
        );
        assert_eq!(err.kind(), ErrorKind::Backend);
        assert!(!err.is_retryable());
    }
}
