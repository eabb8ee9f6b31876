//! The backends this program is built with (each behind a cargo feature, all on by default).

use broker_core::backends::Backends;

/// Every backend compiled into `taskoverflow`.
#[must_use]
pub fn compiled_in() -> Backends {
    let backends = Backends::new().with(broker_memory::MemoryFactory);
    #[cfg(feature = "redis")]
    let backends = backends.with(broker_redis::RedisFactory);
    #[cfg(feature = "postgres")]
    let backends = backends.with(broker_postgres::PostgresFactory);
    #[cfg(feature = "sqs")]
    let backends = backends.with(broker_sqs::SqsFactory);
    #[cfg(feature = "kafka")]
    let backends = backends.with(broker_kafka::KafkaFactory);
    #[cfg(feature = "amqp")]
    let backends = backends.with(broker_amqp::AmqpFactory);
    backends
}
