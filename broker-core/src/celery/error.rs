//! What can go wrong reading or writing a task message, and the helpers that name it.

use serde_json::Value;

/// Why a task message could not be decoded or encoded.
///
/// The `Display` text names the problem and the offending value, so it can be stored as a
/// dead-letter reason as it is. New variants may be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The content type is not `application/json` (for example Celery's `pickle` or
    /// `msgpack` serializers).
    #[error(
        "unsupported content type {content_type:?}: only application/json task messages are supported"
    )]
    UnsupportedContentType {
        /// The content type the message declared.
        content_type: String,
    },
    /// The content encoding is not UTF-8.
    #[error("unsupported content encoding {content_encoding:?}: only utf-8 is supported")]
    UnsupportedContentEncoding {
        /// The content encoding the message declared.
        content_encoding: String,
    },
    /// The body was compressed by kombu (`compression` header); compression is not supported.
    #[error("compressed task messages are not supported (compression {compression:?})")]
    UnsupportedCompression {
        /// The value of the `compression` header.
        compression: String,
    },
    /// The body is a protocol v1 message: a JSON object with a `task` key.
    #[error(
        "Celery protocol v1 is not supported: the body is an object with a \"task\" key; \
         publish with Celery's default task_protocol = 2"
    )]
    ProtocolV1,
    /// The body is not JSON (or not UTF-8).
    #[error("body is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The body is JSON but not `[args, kwargs, embed]` with an array, an object and an
    /// object or null.
    #[error("body is not a Celery v2 [args, kwargs, embed] array: {reason}")]
    InvalidBody {
        /// What is wrong with it.
        reason: String,
    },
    /// A header without which the message cannot be run (`task` or `id`) is absent, null or
    /// empty.
    #[error("missing required header {name:?}")]
    MissingHeader {
        /// The header's name.
        name: &'static str,
    },
    /// A standard header has a value of the wrong type or form.
    #[error("header {name:?} is invalid: {reason}")]
    InvalidHeader {
        /// The header's name.
        name: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// Encoding only: an entry of [`TaskHeaders::extra`](super::TaskHeaders::extra) uses the name of a standard header
    /// (set the typed field instead) or of kombu's `compression` header.
    #[error("extra header {name:?} is reserved; set the typed field instead")]
    ReservedHeader {
        /// The header's name.
        name: String,
    },
    /// Encoding only: the body or the headers could not be serialized.
    #[error("cannot serialize the task message: {0}")]
    Serialize(#[source] serde_json::Error),
}

/// A standard header `name` whose value is wrong for `reason`.
pub(super) fn invalid_header(name: &str, reason: impl Into<String>) -> ProtocolError {
    ProtocolError::InvalidHeader {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// A body that is JSON but not `[args, kwargs, embed]`, for `reason`.
pub(super) fn invalid_body(reason: String) -> ProtocolError {
    ProtocolError::InvalidBody { reason }
}

/// Name of a JSON value's type, for error messages.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
