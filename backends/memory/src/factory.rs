//! Opening the memory backend from `memory://` URLs.

use std::sync::Arc;

use async_trait::async_trait;
use broker_core::{Broker, Result, ResultStore, backends::BackendFactory, urls::UrlKind};

use crate::{BACKEND, MemoryBroker, MemoryConfig, MemoryResultStore, url::SCHEMES};

/// Opens `memory://NAME` brokers and result stores for
/// [`Backends`](broker_core::backends::Backends); one name, one set of queues and records per
/// process.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryFactory;

#[async_trait]
impl BackendFactory for MemoryFactory {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn schemes(&self, _kind: UrlKind) -> &'static [&'static str] {
        SCHEMES
    }

    fn in_process(&self) -> bool {
        true
    }

    async fn broker(&self, url: &str) -> Result<Arc<dyn Broker>> {
        Ok(Arc::new(MemoryBroker::new(MemoryConfig::from_url(url)?)))
    }

    async fn result_store(&self, url: &str) -> Result<Arc<dyn ResultStore>> {
        let config = MemoryConfig::from_url(url)?;
        let name = config.name.as_deref().unwrap_or("default");
        Ok(Arc::new(MemoryResultStore::named(
            name,
            config.result_expires,
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use broker_core::{ErrorKind, Message, Queue, backends::Backends};

    use super::*;

    #[tokio::test]
    async fn brokers_opened_under_one_name_share_their_queues() {
        let backends = Backends::new().with(MemoryFactory);
        let a = backends
            .broker("memory://shared-test?visibility_timeout=5")
            .await
            .unwrap();
        let b = backends.broker("memory://shared-test").await.unwrap();
        let other = backends.broker("memory://other-test").await.unwrap();
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
        assert_eq!(err.kind(), ErrorKind::QueueNotFound);
    }

    #[tokio::test]
    async fn url_options_reach_the_broker() {
        let backends = Backends::new().with(MemoryFactory);
        let broker = backends
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
        let backends = Backends::new().with(MemoryFactory);
        let broker = backends
            .broker("memory://nodedup?dedup_window=0")
            .await
            .unwrap();
        assert_eq!(
            broker.capabilities().deduplication,
            broker_core::Deduplication::None
        );
    }

    #[tokio::test]
    async fn an_unknown_scheme_lists_the_schemes_this_program_knows() {
        let backends = Backends::new().with(MemoryFactory);
        let err = backends
            .broker("redis://:s3cret@host:6379/0")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert_eq!(
            err.to_string(),
            "parse url failed: configuration error: unknown broker scheme `redis`; known \
             broker schemes: memory"
        );
    }
}
