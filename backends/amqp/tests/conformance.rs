//! The RabbitMQ backend runs the whole conformance suite against the server named by
//! `BROKER_TEST_AMQP_URL` (the machine's RabbitMQ, started by `scripts/services.sh`; without
//! it, a `rabbitmq:3` container where a Docker engine publishes ports). Every
//! case declares its own uniquely named queue, so a child consumer process needs no locator.

use std::sync::Arc;

use async_trait::async_trait;
use broker_amqp::{AmqpBroker, AmqpConfig};
use broker_core::Broker;
use conformance_tests::{
    Harness, HarnessFeature, Settings, Unavailable,
    endpoint::{self, Container},
};

const SERVICE: &str = "amqp";

struct RabbitMq {
    url: Result<String, Unavailable>,
}

#[async_trait]
impl Harness for RabbitMq {
    /// Deliveries come back when their connection closes, not after a lease: the suite's
    /// lease is not used.
    async fn broker(&self, settings: Settings) -> Result<Arc<dyn Broker>, Unavailable> {
        let url = self.url.clone()?;
        let config = AmqpConfig {
            max_receives: settings.max_receives,
            ..AmqpConfig::from_url(&url).map_err(|e| Unavailable::new(SERVICE, e.to_string()))?
        };
        let broker = AmqpBroker::connect(config)
            .await
            .map_err(|e| Unavailable::new(SERVICE, e.to_string()))?;
        Ok(Arc::new(broker))
    }

    fn features(&self) -> Vec<HarnessFeature> {
        vec![HarnessFeature::SharedAcrossProcesses]
    }
}

fn harness() -> RabbitMq {
    RabbitMq {
        url: endpoint::broker_url_or_container(Container::RabbitMq),
    }
}

conformance_tests::suite!(harness());
