//! The Kafka backend runs the whole conformance suite against the Kafka-protocol broker named
//! by `BROKER_TEST_KAFKA_URL` (`scripts/services.sh` starts one on 127.0.0.1:9092).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use broker_core::Broker;
use broker_kafka::{KafkaBroker, KafkaConfig};
use conformance_tests::{Harness, HarnessFeature, Settings, Unavailable, endpoint};

const SERVICE: &str = "kafka";

struct Kafka;

#[async_trait]
impl Harness for Kafka {
    async fn broker(&self, settings: Settings) -> Result<Arc<dyn Broker>, Unavailable> {
        let url = endpoint::broker_url(SERVICE)?;
        let config = KafkaConfig {
            max_receives: settings.max_receives,
            // tansu takes about half the session timeout to form a group; the delay cases
            // publish a 2 s delay and expect the consumer to be reading before it ends.
            session_timeout: Duration::from_secs(1),
            ..KafkaConfig::from_url(&url).map_err(|e| Unavailable::new(SERVICE, e.to_string()))?
        };
        let broker = KafkaBroker::connect(config)
            .await
            .map_err(|e| Unavailable::new(SERVICE, e.to_string()))?;
        Ok(Arc::new(broker))
    }

    /// A consumer in another process joins the same group on the same broker.
    fn features(&self) -> Vec<HarnessFeature> {
        vec![HarnessFeature::SharedAcrossProcesses]
    }
}

conformance_tests::suite!(Kafka);
