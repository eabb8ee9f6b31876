//! Redis as a broker and a result store, in the key layout of Python's kombu and Celery so that
//! Celery workers and producers can later share the same queues and results.
//!
//! [`RedisBroker`] keeps a list per queue (LPUSH publishes, consumers take from the other end),
//! kombu's `unacked` hash and `unacked_index` sorted set, and kombu's JSON envelope. Unlike
//! kombu, taking a message and recording its lease is one atomic Lua script, the lease counts
//! from receipt on the server's clock, delayed messages wait in a sorted set until due (a
//! countdown longer than the visibility timeout never runs twice), expired leases are restored
//! atomically by receiving consumers and counted, and a message received too often goes to a
//! dead-letter queue. [`RedisResultStore`] writes Celery's `celery-task-meta-<id>` records.
//!
//! The crate's README describes every key, the capabilities declared and why, and what happens
//! on a crash, a restart, a duplicate and a dropped connection.

mod broker;
mod config;
mod connect;
/// kombu's envelope codec: public, hidden from the documentation, for the fuzz targets only.
#[doc(hidden)]
pub mod envelope;
mod error;
mod factory;
pub mod layout;
mod results;
pub mod scripts;
mod url;
mod wakeups;

pub use broker::{MAX_BATCH, MAX_DELAY, MAX_LEASE, MAX_PAYLOAD, RedisBroker};
pub use config::RedisConfig;
pub use factory::RedisFactory;
pub use results::RedisResultStore;
pub use url::{OPTIONS, SCHEMES};

/// The backend's name in capabilities and errors.
pub const BACKEND: &str = "redis";
