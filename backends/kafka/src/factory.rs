//! Opening the Kafka backend from `kafka://` and `confluentkafka://` URLs.

use std::sync::Arc;

use async_trait::async_trait;
use broker_core::{Broker, Result, backends::BackendFactory, urls::UrlKind};

use crate::{BACKEND, KafkaBroker, KafkaConfig, url::SCHEMES};

/// Opens Kafka brokers for [`Backends`](broker_core::backends::Backends). Kafka keeps no task
/// results: pair it with a result backend (`db+postgresql://`, `redis://`).
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaFactory;

#[async_trait]
impl BackendFactory for KafkaFactory {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn schemes(&self, kind: UrlKind) -> &'static [&'static str] {
        match kind {
            UrlKind::Broker => SCHEMES,
            UrlKind::ResultBackend => &[],
        }
    }

    async fn broker(&self, url: &str) -> Result<Arc<dyn Broker>> {
        let config = KafkaConfig::from_url(url)?;
        Ok(Arc::new(KafkaBroker::connect(config).await?))
    }
}
