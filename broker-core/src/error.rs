//! The one error type of the workspace.
//!
//! Every error names the [`Operation`] that failed and the backend it failed on (errors above
//! the backends, such as a malformed URL or an unencodable task, name none), says whether trying
//! again may help ([`Error::is_retryable`]), and never contains a secret: backends pass
//! client-library messages through [`crate::urls::redact`] before wrapping them.

use std::{error::Error as StdError, fmt};

/// What the caller was doing when an [`Error`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Opening a connection or pool.
    Connect,
    /// Creating a queue or checking that it exists.
    DeclareQueue,
    /// Deleting a queue and everything in it.
    DeleteQueue,
    /// Publishing one message or a batch.
    Publish,
    /// Receiving deliveries.
    Receive,
    /// Acknowledging a delivery.
    Ack,
    /// Negatively acknowledging a delivery.
    Nack,
    /// Extending a delivery's lease.
    ExtendLease,
    /// Closing the connection.
    Close,
    /// Counting the messages of a queue.
    Count,
    /// Writing a task result.
    StoreResult,
    /// Reading a task result.
    FetchResult,
    /// Parsing a broker or result-backend URL.
    ParseUrl,
    /// Encoding a task message.
    Encode,
    /// Decoding a task message.
    Decode,
    /// Checking an application's requirements against a backend's capabilities.
    Require,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::DeclareQueue => "declare queue",
            Self::DeleteQueue => "delete queue",
            Self::Publish => "publish",
            Self::Receive => "receive",
            Self::Ack => "ack",
            Self::Nack => "nack",
            Self::ExtendLease => "extend lease",
            Self::Close => "close",
            Self::Count => "count",
            Self::StoreResult => "store result",
            Self::FetchResult => "fetch result",
            Self::ParseUrl => "parse url",
            Self::Encode => "encode task",
            Self::Decode => "decode task",
            Self::Require => "check requirements",
        })
    }
}

/// The category of an [`Error`]: what went wrong, independent of the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The broker could not be reached or the connection broke. Retryable.
    Connection,
    /// The operation did not finish in time. Retryable.
    Timeout,
    /// The broker is overloaded or throttling. Retryable.
    Unavailable,
    /// The named queue does not exist.
    QueueNotFound,
    /// A payload (with its headers) exceeds the backend's declared limit. Nothing was sent.
    PayloadTooLarge,
    /// A batch exceeds the backend's declared limit.
    BatchTooLarge,
    /// The request itself is wrong (bad queue name, bad option, bad argument).
    InvalidInput,
    /// The backend does not offer this operation; its capabilities say so up front.
    Unsupported,
    /// The delivery's lease ended (or its token is unknown), so it can no longer be acked,
    /// nacked or extended by this holder; the broker will hand it out again.
    LeaseLost,
    /// The broker or client was closed by the application.
    Closed,
    /// A configuration value (URL, option) is wrong.
    Configuration,
    /// Bytes could not be encoded or decoded.
    Codec,
    /// An application requirement is not met by the backend's capabilities.
    Requirement,
    /// Anything else the broker reported.
    Backend,
}

impl ErrorKind {
    /// Whether the same call may succeed if made again later.
    #[must_use]
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Connection | Self::Timeout | Self::Unavailable)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connection => "connection failed",
            Self::Timeout => "timed out",
            Self::Unavailable => "broker unavailable",
            Self::QueueNotFound => "queue not found",
            Self::PayloadTooLarge => "payload too large",
            Self::BatchTooLarge => "batch too large",
            Self::InvalidInput => "invalid input",
            Self::Unsupported => "unsupported",
            Self::LeaseLost => "lease lost",
            Self::Closed => "closed",
            Self::Configuration => "configuration error",
            Self::Codec => "codec error",
            Self::Requirement => "requirement not met",
            Self::Backend => "backend error",
        })
    }
}

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An error from a broker, a result store or the layers above them.
///
/// Displayed as `<backend>: <operation> failed: <kind>: <detail>`, without `<backend>: ` for an
/// error that belongs to no backend. The detail and the source never contain credentials.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    backend: Option<&'static str>,
    operation: Operation,
    retryable: bool,
    detail: String,
    source: Option<BoxError>,
}

impl Error {
    /// An error of `kind` while doing `operation` on `backend`, with a human-readable detail.
    ///
    /// Whether it is retryable defaults to [`ErrorKind::is_retryable`].
    pub fn new(
        kind: ErrorKind,
        backend: &'static str,
        operation: Operation,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            backend: Some(backend),
            operation,
            retryable: kind.is_retryable(),
            detail: detail.into(),
            source: None,
        }
    }

    /// A [`ErrorKind::Configuration`] error that belongs to no backend (a malformed URL, a
    /// scheme no backend answers).
    pub fn configuration(operation: Operation, detail: impl Into<String>) -> Self {
        Self {
            backend: None,
            ..Self::new(ErrorKind::Configuration, "", operation, detail)
        }
    }

    /// A [`ErrorKind::Codec`] error that belongs to no backend (a value that cannot be
    /// serialized, a task message that cannot be decoded).
    pub fn codec(operation: Operation, detail: impl Into<String>) -> Self {
        Self {
            backend: None,
            ..Self::new(ErrorKind::Codec, "", operation, detail)
        }
    }

    /// Attaches the underlying error. Its `Display` must not contain secrets.
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Overrides the retry classification (a backend may know better than the kind).
    #[must_use]
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The backend's name (`memory`, `redis`, ...); `None` for errors above the backends.
    #[must_use]
    pub fn backend(&self) -> Option<&'static str> {
        self.backend
    }

    /// What the caller was doing.
    #[must_use]
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// Whether the same call may succeed if made again later (connection drops, timeouts,
    /// throttling). Publishing again after a retryable error may duplicate a message on an
    /// at-least-once backend.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The human-readable detail, without backend and operation.
    #[must_use]
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(backend) = self.backend {
            write!(f, "{backend}: ")?;
        }
        write!(f, "{} failed: {}", self.operation, self.kind)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// The workspace's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_backend_operation_and_kind() {
        let err = Error::new(
            ErrorKind::QueueNotFound,
            "memory",
            Operation::Publish,
            "queue `x`",
        );
        assert_eq!(
            err.to_string(),
            "memory: publish failed: queue not found: queue `x`"
        );
    }

    #[test]
    fn an_error_of_no_backend_names_none() {
        let err = Error::configuration(Operation::ParseUrl, "missing scheme");
        assert_eq!(err.backend(), None);
        assert_eq!(
            err.to_string(),
            "parse url failed: configuration error: missing scheme"
        );
    }

    #[test]
    fn connection_errors_are_retryable_and_input_errors_are_not() {
        let conn = Error::new(ErrorKind::Connection, "redis", Operation::Receive, "");
        let bad = Error::new(ErrorKind::InvalidInput, "redis", Operation::Receive, "");
        assert!(conn.is_retryable());
        assert!(!bad.is_retryable());
        assert!(!conn.retryable(false).is_retryable());
    }
}
