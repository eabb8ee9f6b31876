//! Opening the Redis backend from `redis://` and `rediss://` URLs.

use std::sync::Arc;

use async_trait::async_trait;
use broker_core::{
    Broker, Result, ResultStore,
    registry::BackendFactory,
    urls::{BrokerUrl, ResultBackendUrl},
};

use crate::{RedisBroker, RedisConfig, RedisResultStore};

/// Opens Redis brokers and result stores for the core's [`Registry`](broker_core::registry::Registry).
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisFactory;

#[async_trait]
impl BackendFactory for RedisFactory {
    fn backend(&self) -> &'static str {
        crate::BACKEND
    }

    async fn broker(&self, url: &BrokerUrl) -> Result<Arc<dyn Broker>> {
        let BrokerUrl::Redis(url) = url else {
            unreachable!("the registry hands this factory redis URLs only")
        };
        Ok(Arc::new(
            RedisBroker::connect(RedisConfig::from_url(url)?).await?,
        ))
    }

    async fn result_store(&self, url: &ResultBackendUrl) -> Option<Result<Arc<dyn ResultStore>>> {
        let ResultBackendUrl::Redis(url) = url else {
            return None;
        };
        let store = async {
            Ok(
                Arc::new(RedisResultStore::connect(RedisConfig::from_url(url)?).await?)
                    as Arc<dyn ResultStore>,
            )
        };
        Some(store.await)
    }
}
