//! Opening the SQS backend from `sqs://` URLs.

use std::sync::Arc;

use async_trait::async_trait;
use broker_core::{Broker, Result, backends::BackendFactory, urls::UrlKind};

use crate::{BACKEND, SqsBroker, SqsConfig, url::SCHEMES};

/// Opens SQS brokers for [`Backends`](broker_core::backends::Backends). SQS keeps no task
/// results: pair it with a result backend (`db+postgresql://...`, `redis://...`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SqsFactory;

#[async_trait]
impl BackendFactory for SqsFactory {
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
        let config = SqsConfig::from_url(url)?;
        Ok(Arc::new(SqsBroker::connect(config).await?))
    }
}
