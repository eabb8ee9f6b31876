//! librdkafka's errors as the workspace's [`Error`], classified once.

use broker_core::{Error, ErrorKind, Operation, urls::redact};
use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};

use crate::BACKEND;

/// Maps a client error: transport trouble, timeouts and brokers that are electing leaders or
/// loading are retryable; an unknown topic is `QueueNotFound`; bad credentials, TLS and
/// configuration errors are `Configuration`; anything else is `Backend`. The detail is the
/// client's message, with anything URL-like redacted.
pub(crate) fn from_kafka(operation: Operation, err: &KafkaError) -> Error {
    let kind = match err {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => ErrorKind::Configuration,
        _ => err
            .rdkafka_error_code()
            .map_or(ErrorKind::Backend, classify),
    };
    Error::new(kind, BACKEND, operation, redact(&err.to_string()))
}

fn classify(code: Code) -> ErrorKind {
    match code {
        Code::MessageTimedOut | Code::OperationTimedOut | Code::RequestTimedOut => {
            ErrorKind::Timeout
        }
        Code::BrokerTransportFailure
        | Code::AllBrokersDown
        | Code::Resolve
        | Code::NetworkException => ErrorKind::Connection,
        Code::LeaderNotAvailable
        | Code::NotLeaderForPartition
        | Code::NotEnoughReplicas
        | Code::NotEnoughReplicasAfterAppend
        | Code::CoordinatorLoadInProgress
        | Code::CoordinatorNotAvailable
        | Code::NotCoordinator
        | Code::KafkaStorageError
        | Code::QueueFull => ErrorKind::Unavailable,
        Code::UnknownTopicOrPartition | Code::UnknownTopic | Code::UnknownPartition => {
            ErrorKind::QueueNotFound
        }
        Code::MessageSizeTooLarge => ErrorKind::PayloadTooLarge,
        Code::SaslAuthenticationFailed
        | Code::Authentication
        | Code::TopicAuthorizationFailed
        | Code::GroupAuthorizationFailed
        | Code::ClusterAuthorizationFailed
        | Code::SSL
        | Code::InvalidArgument => ErrorKind::Configuration,
        _ => ErrorKind::Backend,
    }
}

pub(crate) fn queue_not_found(operation: Operation, queue: &str) -> Error {
    Error::new(
        ErrorKind::QueueNotFound,
        BACKEND,
        operation,
        format!("no topic named `{queue}` (declare the queue first)"),
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

pub(crate) fn bad_token(operation: Operation, token: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        BACKEND,
        operation,
        format!("`{token}` is not a Kafka delivery token"),
    )
}

/// Bootstrap brokers that do not answer: `<host:port,...>: <cause>`, not retryable (the
/// caller asked to connect now).
pub(crate) fn connect_error(bootstrap: &str, cause: &KafkaError) -> Error {
    Error::new(
        ErrorKind::Connection,
        BACKEND,
        Operation::Connect,
        redact(&format!("{bootstrap}: {cause}")),
    )
    .retryable(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_retryable_connection_errors() {
        let err = from_kafka(
            Operation::Publish,
            &KafkaError::MessageProduction(Code::BrokerTransportFailure),
        );
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(err.is_retryable());
        assert_eq!(err.backend(), Some("kafka"));
        assert_eq!(err.operation(), Operation::Publish);
    }

    #[test]
    fn timeouts_and_leader_elections_are_retryable() {
        let timeout = from_kafka(
            Operation::Publish,
            &KafkaError::MessageProduction(Code::MessageTimedOut),
        );
        assert_eq!(timeout.kind(), ErrorKind::Timeout);
        let election = from_kafka(
            Operation::Publish,
            &KafkaError::MessageProduction(Code::NotLeaderForPartition),
        );
        assert!(election.is_retryable(), "{election}");
    }

    #[test]
    fn an_unknown_topic_is_a_missing_queue() {
        let err = from_kafka(
            Operation::Publish,
            &KafkaError::MessageProduction(Code::UnknownTopicOrPartition),
        );
        assert_eq!(err.kind(), ErrorKind::QueueNotFound);
    }

    #[test]
    fn authentication_failures_are_configuration_errors() {
        let err = from_kafka(
            Operation::Connect,
            &KafkaError::MetadataFetch(Code::SaslAuthenticationFailed),
        );
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(!err.is_retryable());
    }
}
