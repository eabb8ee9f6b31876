//! PostgreSQL as a broker and as a result store.
//!
//! [`PostgresBroker`] keeps messages in tables of a schema of its own (created and upgraded by
//! its migrations). Publishing is one `INSERT` per batch; receiving claims rows in publish
//! order with `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`, which leases them
//! by moving their `available_at` into the future under a fresh lease token; acking deletes
//! them. Waiting consumers are woken by `LISTEN/NOTIFY` (a slow poll remains as a fallback), so
//! latency does not depend on a poll interval. [`PostgresBroker::publish_in`] enqueues inside
//! the caller's own transaction: the outbox pattern, which no other backend can offer.
//!
//! What it keeps ([`Broker::capabilities`](broker_core::Broker::capabilities)): at-least-once
//! delivery, publish order per queue, deduplication by id within a window, leases extendable
//! up to 12 hours, delays up to a year, dead-lettering after `max_receives` receives, and
//! durability (a publish that returned `Ok` is committed with `synchronous_commit = on`).
//!
//! [`PostgresResultStore`] keeps task states in Celery's own `celery_taskmeta` table, in
//! Celery's format, so Python Celery and this crate read each other's results; it is reached
//! by Celery's `db+postgresql://` URLs or `postgres://`, and can be paired with any broker.
//!
//! The README of this crate documents every table and column, and what happens on a crash, a
//! restart and a duplicate.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use broker_core::{Message, Queue};
//! use broker_postgres::{PostgresBroker, PostgresConfig};
//!
//! # async fn example() -> broker_core::Result<()> {
//! let config = PostgresConfig::from_url("postgres://app:secret@db:5432/app?schema=jobs")?;
//! let broker = std::sync::Arc::new(PostgresBroker::connect(config).await?);
//! let queue = Queue::declare(broker, "ical").await?;
//! queue.publish(Message::new("hello")).await?;
//! if let Some(delivery) = queue.receive_one(Duration::from_secs(5)).await? {
//!     delivery.ack().await.map_err(|e| e.error)?;
//! }
//! # Ok(())
//! # }
//! ```

mod broker;
#[doc(hidden)]
pub mod celery_tables;
mod config;
mod error;
mod factory;
mod migrate;
mod results;
#[doc(hidden)]
pub mod sql;
mod url;
mod wakeups;

pub use broker::PostgresBroker;
pub use config::PostgresConfig;
pub use factory::PostgresFactory;
pub use migrate::latest_version;
pub use results::PostgresResultStore;
pub use url::{BROKER_SCHEMES, OPTIONS, RESULT_SCHEMES, answers};

/// The backend's name in capabilities and errors.
pub const BACKEND: &str = "postgres";

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
