//! Amazon SQS as a broker, standard and FIFO queues, in kombu's SQS message format so that
//! Python Celery workers and producers share the queues.
//!
//! [`SqsBroker`] names queues as kombu does, resolves their URLs once and caches them, and
//! creates them with the attributes that matter (`FifoQueue` and `ContentBasedDeduplication`
//! for `.fifo` names, the visibility timeout, a redrive policy to the dead-letter queue).
//! Publishing, receiving and acking go in batches of 10; a lease is the visibility timeout,
//! extended and shortened (nack) with `ChangeMessageVisibility`; `ApproximateReceiveCount` is
//! the receive count. One broker serves one kind of queue, because the kinds keep different
//! promises: standard queues (at least once, no order, duplicates possible, delays up to 15
//! minutes), or FIFO queues with `fifo=true` (order per ordering key, deduplication for 5
//! minutes).
//!
//! The crate's README has the URL and its options, the capabilities of both kinds and why,
//! and what happens on a crash, a duplicate and a dropped connection.

mod broker;
mod config;
/// kombu's SQS envelope codec: public, hidden from the documentation, for the fuzz targets
/// only.
#[doc(hidden)]
pub mod envelope;
mod error;
mod factory;
pub mod naming;
mod token;
mod url;

pub use broker::{
    DEDUP_WINDOW, MAX_BATCH, MAX_DELAY, MAX_LEASE, MAX_PAYLOAD, MAX_SQS_MESSAGE, SqsBroker,
};
pub use config::{MAX_POLL, MAX_VISIBILITY_TIMEOUT, QueueKind, SqsConfig};
pub use factory::SqsFactory;
pub use url::{OPTIONS, SCHEMES};

/// The backend's name in capabilities and errors.
pub const BACKEND: &str = "sqs";
