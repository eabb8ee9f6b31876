//! Opening the RabbitMQ backend from `amqp://`, `amqps://` and `pyamqp://` URLs.

use std::sync::Arc;

use async_trait::async_trait;
use broker_core::{Broker, Result, backends::BackendFactory, urls::UrlKind};

use crate::{AmqpBroker, AmqpConfig, BACKEND, url::SCHEMES};

/// Opens RabbitMQ brokers for [`Backends`](broker_core::backends::Backends). RabbitMQ keeps
/// no task results: pair it with a result store (`redis://`, `db+postgresql://`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AmqpFactory;

#[async_trait]
impl BackendFactory for AmqpFactory {
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
        let config = AmqpConfig::from_url(url)?;
        Ok(Arc::new(AmqpBroker::connect(config).await?))
    }
}
