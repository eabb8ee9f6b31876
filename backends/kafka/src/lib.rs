//! Kafka as a broker, on rdkafka (librdkafka built from the sources it bundles): a queue on a
//! log, with order per key and commits that never pass an unacked message.
//!
//! [`KafkaBroker`] keeps a topic per queue (and `<queue>.dlq` for its dead letters), created
//! when the queue is declared, and a consumer group per queue. A message is a record keyed by
//! its ordering key, so one key stays in one partition and in publish order; its headers and
//! properties are Kafka headers. The producer is idempotent with `acks=all`. A consumer commits
//! per partition only the offset below which every message was acked, so a consumer that
//! crashes or loses its partitions in a rebalance loses nothing: the next owner reads again
//! from there. Nack and delay republish a copy at the end of the topic; the receive count
//! travels with it, and after `max_receives` receives the message goes to the dead-letter
//! topic.
//!
//! There is no lease: a delivery stays with its consumer until acked, nacked or the consumer
//! leaves its group (closing, or silent for the session timeout). The crate's README describes
//! the capabilities declared and why, and what happens on a crash, a restart and a duplicate.

mod broker;
mod config;
mod consumer;
mod error;
mod factory;
mod partitions;
/// Messages as Kafka records: public, hidden from the documentation, for the fuzz targets only.
#[doc(hidden)]
pub mod record;
mod url;

pub use broker::{KafkaBroker, MAX_BATCH, MAX_PAYLOAD};
pub use config::{KafkaConfig, QUEUE_PLACEHOLDER, SecurityProtocol};
pub use factory::KafkaFactory;
pub use url::{OPTIONS, SCHEMES};

/// The backend's name in capabilities and errors.
pub const BACKEND: &str = "kafka";
