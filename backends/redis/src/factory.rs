//! Opening the Redis backend from `redis://` and `rediss://` URLs.

use std::sync::Arc;

use async_trait::async_trait;
use broker_core::{Broker, Result, ResultStore, backends::BackendFactory, urls::UrlKind};

use crate::{BACKEND, RedisBroker, RedisConfig, RedisResultStore, url::SCHEMES};

/// Opens Redis brokers and result stores for [`Backends`](broker_core::backends::Backends).
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisFactory;

#[async_trait]
impl BackendFactory for RedisFactory {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn schemes(&self, _kind: UrlKind) -> &'static [&'static str] {
        SCHEMES
    }

    async fn broker(&self, url: &str) -> Result<Arc<dyn Broker>> {
        let config = RedisConfig::from_url(url)?;
        Ok(Arc::new(RedisBroker::connect(config).await?))
    }

    async fn result_store(&self, url: &str) -> Result<Arc<dyn ResultStore>> {
        let config = RedisConfig::from_url(url)?;
        Ok(Arc::new(RedisResultStore::connect(config).await?))
    }
}
