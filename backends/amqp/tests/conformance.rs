//! The RabbitMQ backend runs the whole conformance suite against the server named by
//! `BROKER_TEST_AMQP_URL` (the machine's RabbitMQ, started by `scripts/services.sh`; without
//! it, a `rabbitmq:3` container where a Docker engine publishes ports). Every
//! case declares its own uniquely named queue, so a child consumer process needs no locator.
//! The fault suite runs against the same server, except its restart case, which needs a
//! server of its own (`tests/restart.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use broker_amqp::{AmqpBroker, AmqpConfig};
use broker_core::Broker;
use conformance_tests::{
    FaultProxy, Harness, HarnessFeature, Settings, Unavailable,
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
        connect(&self.url.clone()?, settings).await
    }

    async fn broker_through(
        &self,
        settings: Settings,
        proxy: &FaultProxy,
    ) -> Result<Arc<dyn Broker>, Unavailable> {
        connect(&proxy.route(&self.url.clone()?), settings).await
    }

    fn features(&self) -> Vec<HarnessFeature> {
        vec![HarnessFeature::SharedAcrossProcesses, HarnessFeature::Proxy]
    }
}

async fn connect(url: &str, settings: Settings) -> Result<Arc<dyn Broker>, Unavailable> {
    let config = AmqpConfig {
        max_receives: settings.max_receives,
        ..AmqpConfig::from_url(url).map_err(|e| Unavailable::new(SERVICE, e.to_string()))?
    };
    let broker = AmqpBroker::connect(config)
        .await
        .map_err(|e| Unavailable::new(SERVICE, e.to_string()))?;
    Ok(Arc::new(broker))
}

fn harness() -> RabbitMq {
    RabbitMq {
        url: endpoint::broker_url_or_container(Container::RabbitMq),
    }
}

conformance_tests::suite!(harness());
conformance_tests::faults!(harness());
