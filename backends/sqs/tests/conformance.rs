//! The SQS backend runs the whole conformance suite twice against the SQS service named by
//! `BROKER_TEST_SQS_URL` (the emulator `scripts/services.sh` starts): once on standard queues
//! and once on FIFO queues, whose brokers declare different guarantees. The fault suite runs
//! on both kinds too; the emulator forgets everything when it stops, so its restart case is
//! skipped (the connection cuts show the clients reconnecting).

use std::sync::Arc;

use async_trait::async_trait;
use broker_core::Broker;
use broker_sqs::{QueueKind, SqsBroker, SqsConfig};
use conformance_tests::{FaultProxy, Harness, HarnessFeature, Settings, Unavailable, endpoint};

const SERVICE: &str = "sqs";

struct Sqs {
    kind: QueueKind,
}

impl Sqs {
    fn config(&self, settings: Settings) -> Result<SqsConfig, Unavailable> {
        let url = endpoint::broker_url(SERVICE)?;
        let config = SqsConfig::from_url(&url)
            .map_err(|e| Unavailable::new(SERVICE, format!("BROKER_TEST_SQS_URL: {e}")))?;
        Ok(SqsConfig {
            visibility_timeout: settings.lease,
            max_receives: settings.max_receives,
            queue_kind: self.kind,
            ..config
        })
    }
}

#[async_trait]
impl Harness for Sqs {
    async fn broker(&self, settings: Settings) -> Result<Arc<dyn Broker>, Unavailable> {
        let broker = SqsBroker::connect(self.config(settings)?)
            .await
            .map_err(|e| Unavailable::new(SERVICE, e.to_string()))?;
        Ok(Arc::new(broker))
    }

    async fn broker_through(
        &self,
        settings: Settings,
        proxy: &FaultProxy,
    ) -> Result<Arc<dyn Broker>, Unavailable> {
        let config = self.config(settings)?;
        let url = proxy.route(&endpoint::broker_url(SERVICE)?);
        let routed = SqsConfig::from_url(&url).expect("a routed URL parses");
        let broker = SqsBroker::connect(SqsConfig {
            endpoint: routed.endpoint,
            ..config
        })
        .await
        .map_err(|e| Unavailable::new(SERVICE, e.to_string()))?;
        Ok(Arc::new(broker))
    }

    /// Every process reaches the same SQS service; queue names are unique per case, so the
    /// crash case's child finds the queue by its name alone.
    fn features(&self) -> Vec<HarnessFeature> {
        vec![HarnessFeature::SharedAcrossProcesses, HarnessFeature::Proxy]
    }

    fn queue_name(&self, base: &str) -> String {
        match self.kind {
            QueueKind::Standard => base.to_owned(),
            QueueKind::Fifo => format!("{base}.fifo"),
        }
    }
}

conformance_tests::suite!(standard => Sqs { kind: QueueKind::Standard });
conformance_tests::suite!(fifo => Sqs { kind: QueueKind::Fifo });
conformance_tests::faults!(faults_standard => Sqs { kind: QueueKind::Standard });
conformance_tests::faults!(faults_fifo => Sqs { kind: QueueKind::Fifo });
