//! RabbitMQ as a broker, on `lapin`, declaring queues the way Celery and kombu do so that a
//! Python Celery worker and ours share a queue.
//!
//! [`AmqpBroker`] declares each queue durable, with a durable direct exchange named like the
//! queue and a binding whose routing key is the queue name (kombu's defaults, so no
//! `PRECONDITION_FAILED` when Celery declares it too). Publishes are persistent, mandatory and
//! confirmed in a pipelined window; consumers use manual acks, a prefetch that follows the
//! receiver's free slots, and acks batched with `multiple` where that is safe. A consumer's
//! unacked deliveries come back when its connection drops.
//!
//! Everything RabbitMQ would need queue arguments for lives beside the queue, never on it:
//! delays wait in per-delay queues whose TTL dead-letters back, dead letters go to
//! `<queue>.dlq`, and receives are counted in a header that a nack's requeue carries forward.
//! The crate's README lists the capabilities declared and why, and what happens on a crash, a
//! restart, a duplicate and a dropped connection.

mod broker;
mod config;
mod connect;
mod consumer;
mod error;
mod factory;
/// Headers between JSON and AMQP field tables: public, hidden from the documentation, for the
/// fuzz targets only.
#[doc(hidden)]
pub mod table;
pub mod topology;
mod url;
mod window;

pub use broker::{AmqpBroker, MAX_BATCH, MAX_DELAY, MAX_PAYLOAD};
pub use config::AmqpConfig;
pub use factory::AmqpFactory;
pub use url::{OPTIONS, SCHEMES};

/// The backend's name in capabilities and errors.
pub const BACKEND: &str = "amqp";
