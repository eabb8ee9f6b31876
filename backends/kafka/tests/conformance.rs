//! The Kafka backend runs the whole conformance suite, and the fault suite, against the
//! Kafka-protocol broker named by `BROKER_TEST_KAFKA_URL` (`scripts/services.sh` starts one on
//! 127.0.0.1:9092). The connection cuts run against a tansu of their own that advertises the
//! fault proxy's address, so that every connection a client opens from metadata passes
//! through the proxy too. tansu keeps topics in memory and forgets them when it stops, so the
//! restart case is skipped.

mod support;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use broker_core::Broker;
use broker_kafka::{KafkaBroker, KafkaConfig};
use conformance_tests::{FaultProxy, Harness, HarnessFeature, Settings, Unavailable, endpoint};
use support::PrivateTansu;
use tokio::sync::OnceCell;

const SERVICE: &str = "kafka";

#[derive(Default)]
struct Kafka {
    /// The broker behind the fault proxy, started by the first connection through it.
    proxied: OnceCell<PrivateTansu>,
}

#[async_trait]
impl Harness for Kafka {
    async fn broker(&self, settings: Settings) -> Result<Arc<dyn Broker>, Unavailable> {
        connect(&endpoint::broker_url(SERVICE)?, settings).await
    }

    async fn broker_through(
        &self,
        settings: Settings,
        proxy: &FaultProxy,
    ) -> Result<Arc<dyn Broker>, Unavailable> {
        let advertised = proxy.address();
        let tansu = self
            .proxied
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || PrivateTansu::start(advertised))
                    .await
                    .expect("starting tansu does not panic")
            })
            .await?;
        proxy.forward_to(tansu.address());
        connect(&format!("kafka://{advertised}"), settings).await
    }

    /// A consumer in another process joins the same group on the same broker.
    fn features(&self) -> Vec<HarnessFeature> {
        vec![HarnessFeature::SharedAcrossProcesses, HarnessFeature::Proxy]
    }
}

async fn connect(url: &str, settings: Settings) -> Result<Arc<dyn Broker>, Unavailable> {
    let config = KafkaConfig {
        max_receives: settings.max_receives,
        // tansu takes about half the session timeout to form a group; the delay cases
        // publish a 2 s delay and expect the consumer to be reading before it ends.
        session_timeout: Duration::from_secs(1),
        ..KafkaConfig::from_url(url).map_err(|e| Unavailable::new(SERVICE, e.to_string()))?
    };
    let broker = KafkaBroker::connect(config)
        .await
        .map_err(|e| Unavailable::new(SERVICE, e.to_string()))?;
    Ok(Arc::new(broker))
}

conformance_tests::suite!(Kafka::default());
conformance_tests::faults!(Kafka::default());
