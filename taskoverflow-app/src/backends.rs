//! The backends this program is built with (each behind a cargo feature, all on by default).

use broker_core::registry::Registry;

/// Every backend compiled into `taskoverflow`.
#[must_use]
pub fn registry() -> Registry {
    let registry = Registry::new().with(broker_memory::MemoryFactory);
    #[cfg(feature = "redis")]
    let registry = registry.with(broker_redis::RedisFactory);
    #[cfg(feature = "postgres")]
    let registry = registry.with(broker_postgres::PostgresFactory);
    registry
}
