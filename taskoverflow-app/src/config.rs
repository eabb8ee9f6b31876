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
    backends::Backends,
    urls::{UrlKind, redact},
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
    #[error("{variable}")]
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
    #[error("cannot use {variable}")]
    Connect {
        /// The variable whose URL could not be used.
        variable: &'static str,
        /// What went wrong.
        #[source]
        source: broker_core::Error,
    },
}

fn url_error(kind: UrlKind, source: broker_core::Error) -> ConfigError {
    ConfigError::Url {
        variable: kind.env_var(),
        source,
    }
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

    fn configured_result_backend(&self) -> Option<&str> {
        self.result_backend
            .as_deref()
            .filter(|u| !u.trim().is_empty())
    }

    /// Whether the broker lives inside this process (so its worker must too).
    ///
    /// # Errors
    /// A malformed broker URL, or one no backend of `backends` answers.
    pub fn is_in_process(&self, backends: &Backends) -> Result<bool, ConfigError> {
        let factory = backends
            .factory(UrlKind::Broker, self.broker_url())
            .map_err(|e| url_error(UrlKind::Broker, e))?;
        Ok(factory.in_process())
    }

    /// The result-backend URL in force: the configured one, else the broker's own URL when its
    /// backend keeps results.
    ///
    /// # Errors
    /// [`ConfigError::NoResultBackend`] when neither exists; a URL no backend answers.
    pub fn result_backend_url(&self, backends: &Backends) -> Result<&str, ConfigError> {
        if let Some(url) = self.configured_result_backend() {
            backends
                .factory(UrlKind::ResultBackend, url)
                .map_err(|e| url_error(UrlKind::ResultBackend, e))?;
            return Ok(url);
        }
        let broker = self.broker_url();
        let factory = backends
            .factory(UrlKind::Broker, broker)
            .map_err(|e| url_error(UrlKind::Broker, e))?;
        if backends.factory(UrlKind::ResultBackend, broker).is_ok() {
            Ok(broker)
        } else {
            Err(ConfigError::NoResultBackend {
                backend: factory.backend(),
            })
        }
    }

    /// Connects the broker and result store and declares the queue.
    ///
    /// # Errors
    /// [`ConfigError`] saying which setting is wrong or which service is unreachable.
    pub async fn connect(&self, backends: &Backends) -> Result<CalendarJobs, ConfigError> {
        let results_url = self.result_backend_url(backends)?;
        let results_variable = match self.configured_result_backend() {
            Some(_) => UrlKind::ResultBackend.env_var(),
            None => UrlKind::Broker.env_var(),
        };
        let cannot_use = |variable| move |source| ConfigError::Connect { variable, source };
        let broker_variable = UrlKind::Broker.env_var();
        let broker = backends
            .broker(self.broker_url())
            .await
            .map_err(cannot_use(broker_variable))?;
        let results: Arc<dyn broker_core::ResultStore> = backends
            .result_store(results_url)
            .await
            .map_err(cannot_use(results_variable))?;
        let queue = Queue::declare(broker, self.queue.clone())
            .await
            .map_err(cannot_use(broker_variable))?;
        Ok(CalendarJobs {
            queue,
            results,
            broker_url: redact(self.broker_url()),
            results_url: redact(results_url),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;

    fn settings(broker: &str, results: Option<&str>) -> QueueSettings {
        QueueSettings {
            broker_url: Some(broker.to_owned()),
            result_backend: results.map(str::to_owned),
            queue: DEFAULT_QUEUE.to_owned(),
        }
    }

    async fn refusal(settings: &QueueSettings) -> String {
        let backends = Backends::new().with(broker_memory::MemoryFactory);
        let error = settings.connect(&backends).await.expect_err("refused");
        Report(&error).to_string()
    }

    #[tokio::test]
    async fn a_bad_option_is_reported_once_with_its_variable() {
        let message = refusal(&settings("memory://x?max_receives=0", None)).await;
        assert_eq!(
            message,
            "cannot use CELERY_BROKER_URL: parse url failed: configuration error: invalid value \
             `0` for option `max_receives`: expected a whole number from 1 to 4294967295"
        );
    }

    #[tokio::test]
    async fn an_unknown_scheme_lists_the_known_ones_and_hides_the_password() {
        let message = refusal(&settings("memory://", Some("mongodb://u:hunter2@db"))).await;
        assert_eq!(
            message,
            "CELERY_RESULT_BACKEND: parse url failed: configuration error: unknown result \
             backend scheme `mongodb`; known result backend schemes: memory"
        );
    }

    /// A backend that keeps queues but no results, as SQS, RabbitMQ and Kafka do.
    struct QueueOnly;

    #[async_trait::async_trait]
    impl broker_core::backends::BackendFactory for QueueOnly {
        fn backend(&self) -> &'static str {
            "queue-only"
        }

        fn schemes(&self, kind: UrlKind) -> &'static [&'static str] {
            match kind {
                UrlKind::Broker => &["queueonly"],
                UrlKind::ResultBackend => &[],
            }
        }

        async fn broker(&self, _url: &str) -> broker_core::Result<Arc<dyn broker_core::Broker>> {
            Err(broker_core::Error::configuration(
                broker_core::Operation::Connect,
                "a test backend connects nowhere",
            ))
        }
    }

    #[test]
    fn a_broker_without_results_and_no_result_backend_says_what_to_set() {
        let backends = Backends::new()
            .with(broker_memory::MemoryFactory)
            .with(QueueOnly);
        let error = settings("queueonly://", None)
            .result_backend_url(&backends)
            .unwrap_err();
        assert!(
            error.to_string().starts_with(
                "CELERY_BROKER_URL names the queue-only broker, which keeps no task results: \
                 set CELERY_RESULT_BACKEND"
            ),
            "{error}"
        );
        let paired = settings("queueonly://", Some("memory://r"));
        assert_eq!(paired.result_backend_url(&backends).unwrap(), "memory://r");
        assert!(!paired.is_in_process(&backends).unwrap());
        assert!(
            settings("memory://", None)
                .is_in_process(&backends)
                .unwrap()
        );
    }
}
