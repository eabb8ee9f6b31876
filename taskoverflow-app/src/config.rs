//! Which broker and result store the calendar jobs use, from the Celery variables.
//!
//! - `CELERY_BROKER_URL`: the broker; unset means the embedded default (`memory://`), whose
//!   worker runs inside `serve`.
//! - `CELERY_RESULT_BACKEND`: where job states go; unset means the broker's own result store
//!   when it has one (memory, Redis, PostgreSQL). A broker without one (SQS, RabbitMQ, Kafka)
//!   and no result backend stops the start-up with a message saying what to set.
//! - `CELERY_DEFAULT_QUEUE`: the queue, default `ical`.

use std::sync::Arc;

use broker_core::{
    Queue,
    registry::Registry,
    urls::{BrokerUrl, ResultBackendUrl},
};
use clap::Args;

use crate::jobs::{CalendarJobs, DEFAULT_QUEUE};

/// The embedded default broker.
pub const EMBEDDED_BROKER: &str = "memory://taskoverflow";

/// The Celery settings, from flags or the environment.
#[derive(Debug, Clone, Default, Args)]
pub struct QueueSettings {
    /// Broker URL (memory://, redis://, rediss://, postgres://, amqp://, sqs://, kafka://);
    /// unset: the embedded in-process broker.
    #[arg(long = "broker-url", env = "CELERY_BROKER_URL", hide_env_values = true)]
    pub broker_url: Option<String>,

    /// Result backend URL (memory://, redis://, db+postgresql://, postgres://); unset: the
    /// broker's own result store when it has one.
    #[arg(
        long = "result-backend",
        env = "CELERY_RESULT_BACKEND",
        hide_env_values = true
    )]
    pub result_backend: Option<String>,

    /// The queue calendar jobs go to.
    #[arg(long = "queue", env = "CELERY_DEFAULT_QUEUE", default_value = DEFAULT_QUEUE)]
    pub queue: String,
}

/// Why the jobs could not be set up. Never contains a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A URL is malformed, names an unknown scheme, or a backend that is not built in.
    #[error("{variable}: {source}")]
    Url {
        /// The variable the URL came from.
        variable: &'static str,
        /// What is wrong.
        #[source]
        source: broker_core::Error,
    },
    /// The broker keeps no results and no result backend is set.
    #[error(
        "CELERY_BROKER_URL names the {backend} broker, which keeps no task results: set \
         CELERY_RESULT_BACKEND too (for example db+postgresql://user:password@host/db or redis://host:6379)"
    )]
    NoResultBackend {
        /// The broker's backend.
        backend: &'static str,
    },
    /// The broker or result store could not be reached or set up.
    #[error("cannot use the configured broker or result store")]
    Connect(#[source] broker_core::Error),
}

fn parsed_broker(url: &str) -> Result<BrokerUrl, ConfigError> {
    BrokerUrl::parse(url).map_err(|e| ConfigError::Url {
        variable: "CELERY_BROKER_URL",
        source: broker_core::Error::new(
            broker_core::ErrorKind::Configuration,
            "core",
            broker_core::Operation::ParseUrl,
            e.to_string(),
        ),
    })
}

impl QueueSettings {
    /// The broker URL in force (the embedded default when unset).
    #[must_use]
    pub fn broker_url(&self) -> &str {
        self.broker_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or(EMBEDDED_BROKER)
    }

    /// Whether the broker lives inside this process (so its worker must too).
    ///
    /// # Errors
    /// A malformed broker URL.
    pub fn is_in_process(&self) -> Result<bool, ConfigError> {
        Ok(matches!(
            parsed_broker(self.broker_url())?,
            BrokerUrl::Memory(_)
        ))
    }

    /// The result backend in force: the configured one, else the broker's own.
    ///
    /// # Errors
    /// [`ConfigError::NoResultBackend`] when neither exists; URL errors.
    pub fn result_backend_url(&self) -> Result<ResultBackendUrl, ConfigError> {
        if let Some(url) = self
            .result_backend
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            return ResultBackendUrl::parse(url).map_err(|e| ConfigError::Url {
                variable: "CELERY_RESULT_BACKEND",
                source: broker_core::Error::new(
                    broker_core::ErrorKind::Configuration,
                    "core",
                    broker_core::Operation::ParseUrl,
                    e.to_string(),
                ),
            });
        }
        match parsed_broker(self.broker_url())? {
            BrokerUrl::Memory(url) => Ok(ResultBackendUrl::Memory(url)),
            BrokerUrl::Redis(url) => Ok(ResultBackendUrl::Redis(url)),
            BrokerUrl::Postgres(url) => Ok(ResultBackendUrl::Postgres(url)),
            other => Err(ConfigError::NoResultBackend {
                backend: other.backend_name(),
            }),
        }
    }

    /// Connects the broker and result store and declares the queue.
    ///
    /// # Errors
    /// [`ConfigError`] saying which setting is wrong or which service is unreachable.
    pub async fn connect(&self, registry: &Registry) -> Result<CalendarJobs, ConfigError> {
        let results_url = self.result_backend_url()?;
        let broker_url = parsed_broker(self.broker_url())?;
        let broker = registry
            .broker_for(&broker_url)
            .await
            .map_err(ConfigError::Connect)?;
        let results: Arc<dyn broker_core::ResultStore> = registry
            .result_store_for(&results_url)
            .await
            .map_err(ConfigError::Connect)?;
        let queue = Queue::declare(broker, self.queue.clone())
            .await
            .map_err(ConfigError::Connect)?;
        Ok(CalendarJobs { queue, results })
    }
}
