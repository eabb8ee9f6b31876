//! The Redis backend runs the whole conformance suite twice: against the shared Redis named by
//! `BROKER_TEST_REDIS_URL` (no persistence; without it, a `redis:7` container where a Docker
//! engine is configured), and against a private `redis-server` with an fsynced append-only
//! file that the harness restarts (so the restart case runs too). The fault suite runs
//! against a private server too.

mod support;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use broker_core::{Broker, ResultStore};
use broker_redis::{RedisBroker, RedisConfig, RedisResultStore};
use conformance_tests::{
    FaultProxy, Harness, HarnessFeature, Settings, Unavailable,
    endpoint::{self, Container},
};
use support::PrivateServer;

/// Where a harness's broker lives. A child consumer process (the crash case) finds the same
/// server and key prefix through its child locator, the harness's token: `<random>` on the
/// shared server and `<random>-<port>` on a private one.
enum Server {
    Shared(Result<String, Unavailable>),
    Private(Result<Arc<PrivateServer>, String>),
    PrivatePort(u16),
}

struct Redis {
    server: Server,
    token: String,
    /// The child process leaves clean-up to its parent.
    child: bool,
}

impl Redis {
    fn url(&self) -> Result<String, Unavailable> {
        match &self.server {
            Server::Shared(url) => url.clone(),
            Server::Private(Ok(server)) => Ok(server.url()),
            Server::Private(Err(reason)) => Err(Unavailable::new(support::SERVICE, reason.clone())),
            Server::PrivatePort(port) => Ok(format!("redis://127.0.0.1:{port}")),
        }
    }

    fn prefix(&self) -> String {
        format!("ct:{}:", self.token)
    }

    fn config(&self) -> Result<RedisConfig, Unavailable> {
        Ok(RedisConfig {
            key_prefix: self.prefix(),
            ..RedisConfig::new(self.url()?)
        })
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let (false, Server::Shared(Ok(url))) = (self.child, &self.server) {
            support::delete_prefix(url, &self.prefix());
        }
    }
}

#[async_trait]
impl Harness for Redis {
    async fn broker(&self, settings: Settings) -> Result<Arc<dyn Broker>, Unavailable> {
        let config = RedisConfig {
            visibility_timeout: settings.lease,
            max_receives: settings.max_receives,
            ..self.config()?
        };
        let broker = RedisBroker::connect(config)
            .await
            .map_err(|e| Unavailable::new(support::SERVICE, e.to_string()))?;
        Ok(Arc::new(broker))
    }

    async fn broker_through(
        &self,
        settings: Settings,
        proxy: &FaultProxy,
    ) -> Result<Arc<dyn Broker>, Unavailable> {
        let config = RedisConfig {
            visibility_timeout: settings.lease,
            max_receives: settings.max_receives,
            key_prefix: self.prefix(),
            ..RedisConfig::new(proxy.route(&self.url()?))
        };
        let broker = RedisBroker::connect(config)
            .await
            .map_err(|e| Unavailable::new(support::SERVICE, e.to_string()))?;
        Ok(Arc::new(broker))
    }

    /// Every harness reaches its server from another process, opens the result store and
    /// routes through a fault proxy; the one that started a private server also restarts it.
    fn features(&self) -> Vec<HarnessFeature> {
        let mut features = vec![
            HarnessFeature::SharedAcrossProcesses,
            HarnessFeature::ResultStore,
            HarnessFeature::Proxy,
        ];
        if let Server::Private(_) = self.server {
            features.push(HarnessFeature::Restart);
        }
        features
    }

    async fn result_store(&self, expires: Duration) -> Result<Arc<dyn ResultStore>, Unavailable> {
        let config = RedisConfig {
            result_expires: expires,
            ..self.config()?
        };
        let store = RedisResultStore::connect(config)
            .await
            .map_err(|e| Unavailable::new(support::SERVICE, e.to_string()))?;
        Ok(Arc::new(store))
    }

    fn child_locator(&self) -> Option<String> {
        Some(self.token.clone())
    }

    async fn restart(&self) -> Result<(), String> {
        let server = match &self.server {
            Server::Private(Ok(server)) => server.clone(),
            Server::Private(Err(reason)) => return Err(reason.clone()),
            Server::Shared(_) | Server::PrivatePort(_) => {
                return Err("only the harness that started a private server restarts it".into());
            }
        };
        tokio::task::spawn_blocking(move || server.restart())
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    }
}

fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

fn harness() -> Redis {
    let server = Server::Shared(endpoint::broker_url_or_container(Container::Redis));
    match conformance_tests::child_locator() {
        Some(token) => Redis {
            server,
            token,
            child: true,
        },
        None => Redis {
            server,
            token: random_token(),
            child: false,
        },
    }
}

fn private_server_harness() -> Redis {
    if let Some(token) = conformance_tests::child_locator() {
        let port = token
            .rsplit_once('-')
            .and_then(|(_, port)| port.parse().ok())
            .expect("a private server's locator ends with its port");
        return Redis {
            server: Server::PrivatePort(port),
            token,
            child: true,
        };
    }
    let server = PrivateServer::start(true).map(Arc::new);
    let port = server.as_ref().map_or(0, |s| s.port());
    Redis {
        server: Server::Private(server),
        token: format!("{}-{port}", random_token()),
        child: false,
    }
}

conformance_tests::suite!(conformance => harness());
conformance_tests::suite!(durable => private_server_harness());
conformance_tests::faults!(faults => private_server_harness());
