//! Opening the PostgreSQL backend from `postgres://`, `postgresql://` and `db+postgresql://`.

use std::sync::Arc;

use async_trait::async_trait;
use broker_core::{Broker, Result, ResultStore, backends::BackendFactory, urls::UrlKind};

use crate::{
    BACKEND, PostgresBroker, PostgresConfig, PostgresResultStore,
    url::{BROKER_SCHEMES, RESULT_SCHEMES, answers},
};

/// Opens PostgreSQL brokers and result stores for
/// [`Backends`](broker_core::backends::Backends).
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresFactory;

#[async_trait]
impl BackendFactory for PostgresFactory {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn schemes(&self, kind: UrlKind) -> &'static [&'static str] {
        match kind {
            UrlKind::Broker => BROKER_SCHEMES,
            UrlKind::ResultBackend => RESULT_SCHEMES,
        }
    }

    fn answers(&self, kind: UrlKind, scheme: &str) -> bool {
        answers(kind, scheme)
    }

    async fn broker(&self, url: &str) -> Result<Arc<dyn Broker>> {
        let config = PostgresConfig::from_url(url)?;
        Ok(Arc::new(PostgresBroker::connect(config).await?))
    }

    async fn result_store(&self, url: &str) -> Result<Arc<dyn ResultStore>> {
        let config = PostgresConfig::from_url(url)?;
        Ok(Arc::new(PostgresResultStore::connect(config).await?))
    }
}
