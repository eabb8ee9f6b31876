//! The memory backend runs the whole conformance suite.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use broker_core::{Broker, ResultStore};
use broker_memory::{MemoryBroker, MemoryConfig, MemoryResultStore};
use conformance_tests::{Harness, Settings, Unavailable};

/// Every connection of one test shares one named in-process broker.
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

    async fn result_store(
        &self,
        expires: Duration,
    ) -> Option<Result<Arc<dyn ResultStore>, Unavailable>> {
        Some(Ok(Arc::new(MemoryResultStore::new(expires))))
    }

    fn shared_across_processes(&self) -> bool {
        false
    }
}

fn harness() -> Memory {
    Memory {
        name: uuid::Uuid::new_v4().to_string(),
    }
}

conformance_tests::suite!(harness());
