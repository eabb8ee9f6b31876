//! The in-process broker and result store: the embedded default, and the reference
//! implementation of every capability the workspace defines.
//!
//! Nothing survives the process. Within it, [`MemoryBroker`] is at-least-once, first-in
//! first-out per queue, leases deliveries with an extendable visibility timeout, delays,
//! deduplicates by id within a window and dead-letters after a number of receives. Brokers
//! and stores opened under the same name (see [`MemoryConfig::name`]) share their queues, so
//! an API and a worker in one process can talk through `memory://`.

mod broker;
mod config;
mod expiry;
mod factory;
mod queue;
mod results;
mod url;

pub use broker::MemoryBroker;
pub use config::MemoryConfig;
pub use factory::MemoryFactory;
pub use results::MemoryResultStore;
pub use url::{OPTIONS, SCHEMES};

/// The backend's name in capabilities and errors.
pub const BACKEND: &str = "memory";
