//! The in-process broker and result store: the embedded default, and the reference
//! implementation of every capability the workspace defines.
//!
//! Nothing survives the process. Within it, [`MemoryBroker`] is at-least-once, first-in
//! first-out per queue, leases deliveries with an extendable visibility timeout, delays,
//! deduplicates by id within a window and dead-letters after a number of receives. Brokers
//! and stores opened under the same name (see [`MemoryBroker::named`]) share their queues, so
//! an API and a worker in one process can talk through `memory://`.

mod broker;
mod expiry;
mod factory;
mod queue;
mod results;

pub use broker::{MemoryBroker, MemoryConfig};
pub use factory::{MemoryFactory, config_from_url};
pub use results::MemoryResultStore;
