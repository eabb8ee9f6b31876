//! Opening the PostgreSQL backend from `postgres://`, `postgresql://` and `db+postgresql://`.

use std::sync::Arc;

use async_trait::async_trait;
use broker_core::{
    Broker, Result, ResultStore,
    registry::BackendFactory,
    urls::{BrokerUrl, ResultBackendUrl},
};

use crate::{PostgresBroker, PostgresConfig, PostgresResultStore};

/// Opens PostgreSQL brokers and result stores for the core's
/// [`Registry`](broker_core::registry::Registry).
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresFactory;

#[async_trait]
impl BackendFactory for PostgresFactory {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn broker(&self, url: &BrokerUrl) -> Result<Arc<dyn Broker>> {
        let BrokerUrl::Postgres(url) = url else {
            unreachable!("the registry hands this factory postgres URLs only")
        };
        Ok(Arc::new(
            PostgresBroker::connect(PostgresConfig::from_parsed(url)?).await?,
        ))
    }

    async fn result_store(&self, url: &ResultBackendUrl) -> Option<Result<Arc<dyn ResultStore>>> {
        let ResultBackendUrl::Postgres(url) = url else {
            return None;
        };
        let store = async {
            let config = PostgresConfig::from_parsed(url)?;
            Ok(Arc::new(PostgresResultStore::connect(config).await?) as Arc<dyn ResultStore>)
        };
        Some(store.await)
    }
}
