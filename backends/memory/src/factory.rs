//! Opening the memory backend from `memory://` URLs.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use broker_core::{
    Broker, Result, ResultStore,
    registry::BackendFactory,
    urls::{BrokerUrl, MemoryUrl, ResultBackendUrl},
};

use crate::{MemoryBroker, MemoryConfig, MemoryResultStore};

/// How long results are kept when the URL does not say: one day, as Celery does.
const DEFAULT_RESULT_EXPIRES: Duration = Duration::from_secs(24 * 3600);

/// Opens `memory://NAME` brokers and result stores; one name, one set of queues and records
/// per process.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryFactory;

/// The broker settings a `memory://` URL asks for.
#[must_use]
pub fn config_from_url(url: &MemoryUrl) -> MemoryConfig {
    let defaults = MemoryConfig::default();
    MemoryConfig {
        visibility_timeout: url
            .queue
            .visibility_timeout
            .unwrap_or(defaults.visibility_timeout),
        max_receives: url.queue.max_receives.unwrap_or(defaults.max_receives),
        dedup_window: url.queue.dedup_window.unwrap_or(defaults.dedup_window),
    }
}

#[async_trait]
impl BackendFactory for MemoryFactory {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn broker(&self, url: &BrokerUrl) -> Result<Arc<dyn Broker>> {
        let BrokerUrl::Memory(url) = url else {
            unreachable!("the registry hands this factory memory URLs only")
        };
        Ok(Arc::new(MemoryBroker::named(
            &url.name,
            config_from_url(url),
        )))
    }

    async fn result_store(&self, url: &ResultBackendUrl) -> Option<Result<Arc<dyn ResultStore>>> {
        let ResultBackendUrl::Memory(url) = url else {
            return None;
        };
        let expires = url.result_expires.unwrap_or(DEFAULT_RESULT_EXPIRES);
        Some(Ok(Arc::new(MemoryResultStore::named(&url.name, expires))))
    }
}

#[cfg(test)]
mod tests {
    use broker_core::{Message, Queue, registry::Registry};

    use super::*;

    #[tokio::test]
    async fn brokers_opened_under_one_name_share_their_queues() {
        let registry = Registry::new().with(MemoryFactory);
        let a = registry
            .broker("memory://shared-test?visibility_timeout=5")
            .await
            .unwrap();
        let b = registry.broker("memory://shared-test").await.unwrap();
        let other = registry.broker("memory://other-test").await.unwrap();
        Queue::declare(a.clone(), "q")
            .await
            .unwrap()
            .publish(Message::new("hi"))
            .await
            .unwrap();
        let got = Queue::new(b, "q")
            .receive(1, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        let err = Queue::new(other, "q")
            .receive(1, Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), broker_core::ErrorKind::QueueNotFound);
    }

    #[tokio::test]
    async fn url_options_reach_the_broker() {
        let registry = Registry::new().with(MemoryFactory);
        let broker = registry
            .broker("memory://opts?visibility_timeout=7&max_receives=2")
            .await
            .unwrap();
        let caps = broker.capabilities();
        assert!(
            matches!(caps.redelivery, broker_core::Redelivery::Lease { default_lease, .. } if default_lease == Duration::from_secs(7))
        );
        assert_eq!(
            caps.dead_letter,
            broker_core::DeadLetter::Queue { max_receives: 2 }
        );
    }

    #[tokio::test]
    async fn a_zero_dedup_window_declares_no_deduplication() {
        let registry = Registry::new().with(MemoryFactory);
        let broker = registry
            .broker("memory://nodedup?dedup_window=0")
            .await
            .unwrap();
        assert_eq!(
            broker.capabilities().deduplication,
            broker_core::Deduplication::None
        );
        let err = registry
            .broker("redis://localhost?dedup_window=0")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("dedup_window"), "{err}");
    }

    #[tokio::test]
    async fn unknown_scheme_and_missing_backend_are_configuration_errors() {
        let registry = Registry::new().with(MemoryFactory);
        let unknown = registry.broker("mqtt://host").await.unwrap_err();
        assert_eq!(unknown.kind(), broker_core::ErrorKind::Configuration);
        assert!(unknown.to_string().contains("memory"), "{unknown}");
        let absent = registry
            .broker("redis://:s3cret@host:6379/0")
            .await
            .unwrap_err();
        assert!(absent.to_string().contains("built without"), "{absent}");
        assert!(!absent.to_string().contains("s3cret"), "{absent}");
    }
}
