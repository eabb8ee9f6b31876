//! The memory backend runs the whole conformance suite, and the fault suite's poison case
//! (the others need a broker outside the process).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use broker_core::{Broker, ResultStore};
use broker_memory::{MemoryBroker, MemoryConfig, MemoryResultStore};
use conformance_tests::{Harness, HarnessFeature, Settings, Unavailable};

/// Every connection of one test shares one named in-process broker, which no other process
/// reaches and nothing restarts.
struct Memory {
    name: String,
}

#[async_trait]
impl Harness for Memory {
    async fn broker(&self, settings: Settings) -> Result<Arc<dyn Broker>, Unavailable> {
        let config = MemoryConfig {
            name: Some(self.name.clone()),
            visibility_timeout: settings.lease,
            max_receives: settings.max_receives,
            ..MemoryConfig::default()
        };
        Ok(Arc::new(MemoryBroker::new(config)))
    }

    fn features(&self) -> Vec<HarnessFeature> {
        vec![HarnessFeature::ResultStore]
    }

    async fn result_store(&self, expires: Duration) -> Result<Arc<dyn ResultStore>, Unavailable> {
        Ok(Arc::new(MemoryResultStore::new(expires)))
    }
}

fn harness() -> Memory {
    Memory {
        name: uuid::Uuid::new_v4().to_string(),
    }
}

conformance_tests::suite!(harness());
conformance_tests::faults!(harness());
