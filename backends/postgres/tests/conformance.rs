//! The PostgreSQL backend runs the whole conformance suite twice:
//!
//! - `conformance`: against the server named by `BROKER_TEST_POSTGRES_URL` (without it, a
//!   `postgres:15` container where a Docker engine is configured), in a fresh schema per test
//!   (dropped afterwards). It cannot restart that server (others use it), so the restart case
//!   is skipped there.
//! - `durable`: against a private server each test starts in a temporary directory, which the
//!   restart case kills (`pg_ctl stop -m immediate`, as a crash) and starts again.
//! - `faults`: the fault suite, against a private server per test too.
//!
//! The crash case re-runs this binary as a child consumer. It must reach the same schema (and,
//! for `durable`, the same server): the harnesses hand it the schema name or the server's port
//! as their child locator.

mod support;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use broker_core::{Broker, ResultStore};
use broker_postgres::{PostgresBroker, PostgresConfig, PostgresResultStore};
use conformance_tests::private_postgres::PrivatePostgres;
use conformance_tests::{
    FaultProxy, Harness, HarnessFeature, Settings, Unavailable,
    endpoint::{self, Container},
};
use support::TestSchema;
use tokio::sync::OnceCell;

fn settings_config(url: &str, schema: &str, settings: Settings) -> PostgresConfig {
    PostgresConfig {
        visibility_timeout: settings.lease,
        max_receives: settings.max_receives,
        ..support::config(url, schema)
    }
}

async fn open_broker(config: PostgresConfig) -> Result<Arc<dyn Broker>, Unavailable> {
    match PostgresBroker::connect(config).await {
        Ok(broker) => Ok(Arc::new(broker)),
        Err(err) => Err(support::unavailable(&err)),
    }
}

async fn open_store(config: PostgresConfig) -> Result<Arc<dyn ResultStore>, Unavailable> {
    match PostgresResultStore::connect(config).await {
        Ok(store) => Ok(Arc::new(store)),
        Err(err) => Err(support::unavailable(&err)),
    }
}

/// The shared server, one schema per test.
struct SharedServer {
    url: Result<String, Unavailable>,
    schema: TestSchema,
}

#[async_trait]
impl Harness for SharedServer {
    async fn broker(&self, settings: Settings) -> Result<Arc<dyn Broker>, Unavailable> {
        let url = self.url.clone()?;
        open_broker(settings_config(&url, &self.schema.name, settings)).await
    }

    fn features(&self) -> Vec<HarnessFeature> {
        vec![
            HarnessFeature::SharedAcrossProcesses,
            HarnessFeature::ResultStore,
        ]
    }

    async fn result_store(&self, expires: Duration) -> Result<Arc<dyn ResultStore>, Unavailable> {
        let config = PostgresConfig {
            result_expires: expires,
            ..support::config(&self.url.clone()?, &self.schema.name)
        };
        open_store(config).await
    }

    fn child_locator(&self) -> Option<String> {
        Some(self.schema.name.clone())
    }
}

fn harness() -> SharedServer {
    let url = endpoint::broker_url_or_container(Container::Postgres);
    let schema = match conformance_tests::child_locator() {
        Some(schema) => TestSchema::borrowed(&schema),
        None => TestSchema::fresh_on(url.as_ref().ok()),
    };
    SharedServer { url, schema }
}

conformance_tests::suite!(conformance => harness());

/// A private server per test, which the restart case may crash.
enum PrivateHarness {
    /// The test's own server, started by the first connection.
    Own(OnceCell<Result<Arc<PrivatePostgres>, String>>),
    /// The server of the parent test, from the crash case's child process.
    Parent { port: u16 },
}

const PRIVATE_SCHEMA: &str = "broker";

impl PrivateHarness {
    async fn url(&self) -> Result<String, Unavailable> {
        match self {
            Self::Parent { port } => Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres")),
            Self::Own(server) => server
                .get_or_init(|| async {
                    tokio::task::spawn_blocking(PrivatePostgres::start)
                        .await
                        .map_err(|e| format!("starting the private server panicked: {e}"))
                        .and_then(|started| started.map(Arc::new))
                })
                .await
                .as_ref()
                .map(|server| server.url())
                .map_err(|reason| {
                    Unavailable::new(
                        support::SERVICE,
                        format!("no private PostgreSQL server: {reason}"),
                    )
                }),
        }
    }
}

#[async_trait]
impl Harness for PrivateHarness {
    async fn broker(&self, settings: Settings) -> Result<Arc<dyn Broker>, Unavailable> {
        let url = self.url().await?;
        open_broker(settings_config(&url, PRIVATE_SCHEMA, settings)).await
    }

    async fn broker_through(
        &self,
        settings: Settings,
        proxy: &FaultProxy,
    ) -> Result<Arc<dyn Broker>, Unavailable> {
        let url = proxy.route(&self.url().await?);
        open_broker(settings_config(&url, PRIVATE_SCHEMA, settings)).await
    }

    /// The test's own server can be restarted; a child process reaches its parent's.
    fn features(&self) -> Vec<HarnessFeature> {
        let mut features = vec![
            HarnessFeature::SharedAcrossProcesses,
            HarnessFeature::ResultStore,
            HarnessFeature::Proxy,
        ];
        if let Self::Own(_) = self {
            features.push(HarnessFeature::Restart);
        }
        features
    }

    async fn result_store(&self, expires: Duration) -> Result<Arc<dyn ResultStore>, Unavailable> {
        let config = PostgresConfig {
            result_expires: expires,
            ..support::config(&self.url().await?, PRIVATE_SCHEMA)
        };
        open_store(config).await
    }

    fn child_locator(&self) -> Option<String> {
        match self {
            Self::Own(server) => match server.get() {
                Some(Ok(server)) => Some(server.port().to_string()),
                _ => None,
            },
            Self::Parent { port } => Some(port.to_string()),
        }
    }

    async fn restart(&self) -> Result<(), String> {
        let server = match self {
            Self::Own(server) => match server.get() {
                Some(Ok(server)) => server.clone(),
                Some(Err(reason)) => return Err(reason.clone()),
                None => return Err("the private server was never started".into()),
            },
            Self::Parent { .. } => {
                return Err("a child process does not restart its parent's server".into());
            }
        };
        tokio::task::spawn_blocking(move || server.crash_and_restart())
            .await
            .map_err(|e| format!("restart panicked: {e}"))
            .and_then(|r| r)
    }
}

fn private_server_harness() -> PrivateHarness {
    match conformance_tests::child_locator().and_then(|port| port.parse().ok()) {
        Some(port) => PrivateHarness::Parent { port },
        None => PrivateHarness::Own(OnceCell::new()),
    }
}

conformance_tests::suite!(durable => private_server_harness());
conformance_tests::faults!(faults => private_server_harness());
