//! The backends this program is built with.

use broker_core::registry::Registry;

/// Every backend compiled into `taskoverflow`.
#[must_use]
pub fn registry() -> Registry {
    Registry::new().with(broker_memory::MemoryFactory)
}
