//! Where a test finds its broker: an environment URL, else a container, else a skip.
//!
//! The environment URL (`BROKER_TEST_<SERVICE>_URL`, printed by `scripts/services.sh`) always
//! wins. Without it, and with the `testcontainers` feature on and a Docker engine answering,
//! the broker is started in a container once per test process. Otherwise the test is skipped
//! with the reason, or fails when `BROKER_TEST_REQUIRE` requires the service (see
//! [`skip`](crate::skip)).

use crate::Unavailable;

/// A broker the suite knows how to start in a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// `redis:7`, reached as `redis://host:port`.
    Redis,
    /// `postgres:15` with trust authentication, reached as `postgres://postgres@host:port/postgres`.
    Postgres,
    /// `rabbitmq:3`, reached as `amqp://guest:guest@host:port/%2f`.
    RabbitMq,
}

impl Container {
    /// The service it provides, as `BROKER_TEST_REQUIRE` and [`broker_url`] name it.
    #[must_use]
    pub fn service(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Postgres => "postgres",
            Self::RabbitMq => "amqp",
        }
    }
}

/// The variable naming the URL of `service`: `BROKER_TEST_<SERVICE>_URL` (for example
/// `BROKER_TEST_REDIS_URL` for `redis`).
#[must_use]
pub fn url_variable(service: &str) -> String {
    format!("BROKER_TEST_{}_URL", service.to_ascii_uppercase())
}

/// The URL of the `service` (`redis`, `postgres`, `amqp`) a test should use: the value of
/// its [`url_variable`] when set, else [`Unavailable`] with a reason that says what to set.
///
/// # Errors
/// [`Unavailable`] when no broker is configured.
pub fn broker_url(service: &'static str) -> Result<String, Unavailable> {
    let variable = url_variable(service);
    match std::env::var(&variable) {
        Ok(url) if !url.trim().is_empty() => Ok(url),
        _ => Err(Unavailable::new(
            service,
            format!(
                "{variable} is not set; run `eval \"$(scripts/services.sh)\"` or point it at a broker"
            ),
        )),
    }
}

/// A Python interpreter with Celery, SQLAlchemy and a PostgreSQL driver installed
/// (`BROKER_TEST_CELERY_PYTHON`, which `scripts/services.sh` sets up), for the tests that
/// check what Python Celery reads and writes. Its service is `celery`.
///
/// # Errors
/// [`Unavailable`] when it is not set.
pub fn celery_python() -> Result<String, Unavailable> {
    match std::env::var("BROKER_TEST_CELERY_PYTHON") {
        Ok(python) if !python.trim().is_empty() => Ok(python),
        _ => Err(Unavailable::new(
            "celery",
            "BROKER_TEST_CELERY_PYTHON is not set; run `eval \"$(scripts/services.sh)\"`",
        )),
    }
}

/// Like [`broker_url`] for the `container`'s service, falling back to `container` started by
/// testcontainers when the `testcontainers` feature is on and a Docker engine answers.
///
/// # Errors
/// [`Unavailable`] saying why neither way worked.
pub fn broker_url_or_container(container: Container) -> Result<String, Unavailable> {
    broker_url(container.service()).or_else(|no_env| {
        containers::start(container).map_err(|no_container| {
            Unavailable::new(
                container.service(),
                format!("{}; and no container: {no_container}", no_env.reason),
            )
        })
    })
}

#[cfg(feature = "testcontainers")]
mod containers {
    use std::{
        collections::HashMap,
        sync::{Mutex, OnceLock},
    };

    use testcontainers::{
        Container as Running, GenericImage, ImageExt,
        core::{IntoContainerPort, WaitFor},
        runners::SyncRunner,
    };

    use super::Container;

    /// A running container and the URL that reaches it.
    type Started = Mutex<HashMap<Container, (Running<GenericImage>, String)>>;

    /// Containers started by this process, kept alive until it exits; one per kind.
    fn started() -> &'static Started {
        static STARTED: OnceLock<Started> = OnceLock::new();
        STARTED.get_or_init(Mutex::default)
    }

    fn docker_configured() -> bool {
        std::env::var_os("DOCKER_HOST").is_some()
            || std::path::Path::new("/var/run/docker.sock").exists()
    }

    pub(super) fn start(kind: Container) -> Result<String, String> {
        if !docker_configured() {
            return Err("no Docker engine (DOCKER_HOST unset, no /var/run/docker.sock)".into());
        }
        let mut started = started()
            .lock()
            .map_err(|_| "container registry poisoned")?;
        if let Some((_, url)) = started.get(&kind) {
            return Ok(url.clone());
        }
        let (image, port, ready) = match kind {
            Container::Redis => (
                GenericImage::new("redis", "7"),
                6379,
                WaitFor::message_on_stdout("Ready to accept connections"),
            ),
            Container::Postgres => (
                GenericImage::new("postgres", "15"),
                5432,
                WaitFor::message_on_stderr("database system is ready to accept connections"),
            ),
            Container::RabbitMq => (
                GenericImage::new("rabbitmq", "3"),
                5672,
                WaitFor::message_on_stdout("Server startup complete"),
            ),
        };
        let request = image.with_exposed_port(port.tcp()).with_wait_for(ready);
        let running = match kind {
            Container::Postgres => request
                .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
                .start(),
            _ => request.start(),
        }
        .map_err(|e| format!("the {kind:?} container did not start: {e}"))?;
        let host = running.get_host().map_err(|e| e.to_string())?;
        let mapped = running
            .get_host_port_ipv4(port.tcp())
            .map_err(|e| e.to_string())?;
        let url = match kind {
            Container::Redis => format!("redis://{host}:{mapped}"),
            Container::Postgres => format!("postgres://postgres@{host}:{mapped}/postgres"),
            Container::RabbitMq => format!("amqp://guest:guest@{host}:{mapped}/%2f"),
        };
        started.insert(kind, (running, url.clone()));
        Ok(url)
    }
}

#[cfg(not(feature = "testcontainers"))]
mod containers {
    use super::Container;

    pub(super) fn start(_kind: Container) -> Result<String, String> {
        Err("built without the `testcontainers` feature".into())
    }
}
