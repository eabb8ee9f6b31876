//! lapin's errors as the workspace's [`Error`], classified once.

use broker_core::{Error, ErrorKind, Operation, urls::redact};
use lapin::{
    ErrorKind as LapinKind,
    protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError},
};

use crate::BACKEND;

/// Maps a client error. A dropped or unusable connection or channel, a missed heartbeat and
/// a server that closes the connection are retryable `Connection` errors (the next call opens
/// a new connection); a refused login or a missing permission is `Configuration`; a missing
/// queue is `QueueNotFound`; anything else (`PRECONDITION_FAILED`, a frame error) is
/// `Backend`. The detail is the client's message with anything URL-like redacted.
pub(crate) fn from_lapin(operation: Operation, err: &lapin::Error) -> Error {
    let kind = match err.kind() {
        LapinKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => ErrorKind::QueueNotFound,
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
            | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => ErrorKind::Configuration,
            AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED | AMQPHardError::RESOURCEERROR) => {
                ErrorKind::Connection
            }
            _ => ErrorKind::Backend,
        },
        LapinKind::AuthProviderError(_) => ErrorKind::Configuration,
        LapinKind::IOError(_)
        | LapinKind::InvalidChannelState(..)
        | LapinKind::InvalidConnectionState(_)
        | LapinKind::InvalidChannel(_)
        | LapinKind::MissingHeartbeatError
        | LapinKind::ParsingError(_)
        | LapinKind::ChannelsLimitReached => ErrorKind::Connection,
        _ => ErrorKind::Backend,
    };
    Error::new(kind, BACKEND, operation, redact(&err.to_string()))
}

/// A connection that could not be opened: `<host:port>: <root cause>`, retryable when the
/// cause is (a refused or dropped connection, a timeout). A failed TLS handshake (a server
/// certificate that does not verify, a peer that does not speak TLS) is a `Configuration`
/// error: trying again changes nothing.
pub(crate) fn connect_error(endpoint: &str, err: &lapin::Error) -> Error {
    let kind = match err.kind() {
        // rustls reports what fails in the handshake as invalid data.
        LapinKind::IOError(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            ErrorKind::Configuration
        }
        _ => from_lapin(Operation::Connect, err).kind(),
    };
    let cause = match err.kind() {
        LapinKind::IOError(io) => io.to_string(),
        LapinKind::ProtocolError(amqp) => amqp.to_string(),
        // The parser's own message says nothing a user can act on.
        LapinKind::ParsingError(_) => {
            "the server's answer is not AMQP 0-9-1 (a TLS listener? then use amqps://)".into()
        }
        _ => err.to_string(),
    };
    Error::new(
        kind,
        BACKEND,
        Operation::Connect,
        format!("{endpoint}: {}", redact(&cause)),
    )
}

pub(crate) fn connect_timeout(endpoint: &str, seconds: f64) -> Error {
    Error::new(
        ErrorKind::Timeout,
        BACKEND,
        Operation::Connect,
        format!("{endpoint}: no answer within {seconds}s"),
    )
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

pub(crate) fn invalid_input(operation: Operation, detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, BACKEND, operation, detail)
}

pub(crate) fn backend(operation: Operation, detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::Backend, BACKEND, operation, detail)
}

#[cfg(test)]
mod tests {
    use std::{io, sync::Arc};

    use super::*;

    #[test]
    fn io_errors_are_retryable_connection_errors() {
        let io = io::Error::new(io::ErrorKind::ConnectionReset, "reset by peer");
        let err = from_lapin(Operation::Publish, &LapinKind::IOError(Arc::new(io)).into());
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(err.is_retryable());
        assert_eq!(err.backend(), Some("amqp"));
        assert_eq!(err.operation(), Operation::Publish);
    }

    #[test]
    fn a_missed_heartbeat_is_a_retryable_connection_error() {
        let err = from_lapin(Operation::Receive, &LapinKind::MissingHeartbeatError.into());
        assert_eq!(err.kind(), ErrorKind::Connection);
    }

    #[test]
    fn connect_errors_name_the_endpoint_and_the_cause() {
        let io = io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused");
        let err = connect_error("127.0.0.1:1", &LapinKind::IOError(Arc::new(io)).into());
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(
            err.to_string().contains("127.0.0.1:1: connection refused"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_tls_handshake_is_a_configuration_error_not_worth_retrying() {
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        );
        let err = connect_error("rabbit:5671", &LapinKind::IOError(Arc::new(io)).into());
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(!err.is_retryable());
        assert!(
            err.to_string()
                .contains("rabbit:5671: invalid peer certificate: UnknownIssuer"),
            "{err}"
        );
    }
}
