//! AWS SDK errors as the workspace's [`Error`], classified once.

use std::error::Error as StdError;

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use broker_core::{Error, ErrorKind, Operation, urls::redact};

use crate::BACKEND;

/// The kind of an error SQS answered with `code`.
fn kind_of_code(code: &str) -> ErrorKind {
    match code {
        "AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist" => ErrorKind::QueueNotFound,
        "ReceiptHandleIsInvalid" | "InvalidReceiptHandle" | "MessageNotInflight" => {
            ErrorKind::LeaseLost
        }
        "RequestThrottled"
        | "ThrottlingException"
        | "ServiceUnavailable"
        | "InternalError"
        | "InternalFailure"
        | "KmsThrottled"
        | "RequestTimeout" => ErrorKind::Unavailable,
        "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "SignatureDoesNotMatch"
        | "AccessDenied"
        | "AccessDeniedException"
        | "InvalidSecurity"
        | "MissingAuthenticationToken"
        | "ExpiredToken" => ErrorKind::Configuration,
        "InvalidParameterValue"
        | "InvalidAttributeValue"
        | "InvalidAttributeName"
        | "MissingParameter"
        | "InvalidMessageContents"
        | "BatchRequestTooLong"
        | "TooManyEntriesInBatchRequest"
        | "InvalidBatchEntryId"
        | "BatchEntryIdsNotDistinct" => ErrorKind::InvalidInput,
        _ => ErrorKind::Backend,
    }
}

/// Maps an SDK error: a request that never got an answer (no connection, a timeout) is a
/// retryable `Connection` or `Timeout`; an answer is classified by its error code (throttling
/// and server faults `Unavailable`, retryable; a missing queue `QueueNotFound`; a stale
/// receipt handle `LeaseLost`; bad credentials `Configuration`; anything else not retryable).
/// The detail is the SDK's error chain, redacted.
pub(crate) fn from_sdk<E, R>(operation: Operation, err: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: std::fmt::Debug,
{
    let kind = match err {
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => ErrorKind::Timeout,
        SdkError::DispatchFailure(_) => ErrorKind::Connection,
        SdkError::ConstructionFailure(_) => ErrorKind::Configuration,
        SdkError::ResponseError(_) => ErrorKind::Unavailable,
        SdkError::ServiceError(service) => match service.err().code() {
            Some(code) => kind_of_code(code),
            None => ErrorKind::Backend,
        },
        _ => ErrorKind::Backend,
    };
    let detail = redact(&DisplayErrorContext(err).to_string());
    Error::new(kind, BACKEND, operation, detail)
}

/// The kind of a batch entry's failure, from its code and whether SQS blamed the sender.
pub(crate) fn entry_failure(
    operation: Operation,
    code: &str,
    sender_fault: bool,
    message: Option<&str>,
) -> Error {
    let kind = match kind_of_code(code) {
        ErrorKind::Backend if !sender_fault => ErrorKind::Unavailable,
        kind => kind,
    };
    let detail = format!("{code}: {}", message.unwrap_or("no message"));
    Error::new(kind, BACKEND, operation, redact(&detail))
}

/// The error of a broker that cannot reach its endpoint: `<endpoint>: <root cause>`, of the
/// kind [`from_sdk`] gives.
pub(crate) fn connect_error<E, R>(endpoint: &str, err: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: std::fmt::Debug,
{
    let kind = from_sdk(Operation::Connect, err).kind();
    let mut root: &dyn StdError = err;
    while let Some(next) = root.source() {
        root = next;
    }
    let cause = match err {
        // A service's answer says more in its code and message than in its source chain.
        SdkError::ServiceError(service) => format!(
            "{}: {}",
            service.err().code().unwrap_or("error"),
            service.err().message().unwrap_or("no message")
        ),
        _ => root.to_string(),
    };
    Error::new(
        kind,
        BACKEND,
        Operation::Connect,
        redact(&format!("{endpoint}: {cause}")),
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

pub(crate) fn protocol(operation: Operation, detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::Backend, BACKEND, operation, detail)
}

pub(crate) fn invalid_input(operation: Operation, detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, BACKEND, operation, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified_once() {
        assert_eq!(
            kind_of_code("AWS.SimpleQueueService.NonExistentQueue"),
            ErrorKind::QueueNotFound
        );
        assert_eq!(kind_of_code("ReceiptHandleIsInvalid"), ErrorKind::LeaseLost);
        assert!(kind_of_code("RequestThrottled").is_retryable());
        assert_eq!(
            kind_of_code("InvalidClientTokenId"),
            ErrorKind::Configuration
        );
        assert!(!kind_of_code("SomethingNew").is_retryable());
    }

    #[test]
    fn a_batch_entry_the_service_failed_may_be_retried_and_one_the_sender_failed_may_not() {
        let server = entry_failure(Operation::Publish, "InternalError", false, None);
        assert!(server.is_retryable());
        let unknown_server = entry_failure(Operation::Publish, "Whatever", false, Some("x"));
        assert!(unknown_server.is_retryable());
        let sender = entry_failure(
            Operation::Ack,
            "ReceiptHandleIsInvalid",
            true,
            Some("stale"),
        );
        assert_eq!(sender.kind(), ErrorKind::LeaseLost);
        assert!(sender.to_string().contains("ReceiptHandleIsInvalid: stale"));
    }
}
