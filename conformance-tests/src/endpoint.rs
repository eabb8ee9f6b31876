//! Where a test finds its broker: an environment URL, else a container, else a skip.
//!
//! [`broker_url_or_container`] looks in this order:
//!
//! 1. `BROKER_TEST_<SERVICE>_URL` (printed by `scripts/services.sh`): when set, it always wins.
//! 2. With the `testcontainers` feature on (the Redis, PostgreSQL and RabbitMQ backends turn it
//!    on for their tests) and a Docker engine configured (`DOCKER_HOST`, or the usual socket),
//!    the broker's image (`redis:7`, `postgres:15`, `rabbitmq:3`) started by testcontainers.
//! 3. Otherwise [`Unavailable`] with both reasons: the test is skipped, or fails when
//!    `BROKER_TEST_REQUIRE` requires the service (see [`skip`](crate::skip)).
//!
//! # Containers
//!
//! What a test may rely on when its broker runs in a container:
//!
//! - **One per kind and test process.** The first test that asks starts it, and every test of
//!   the process shares it, as they share a server named by the environment: each keeps its
//!   own names (queue, key prefix, schema).
//! - **Gone with the process.** However the process ends (passing, failing, SIGINT, even
//!   SIGKILL), the server stops and Docker removes its container within a second or so: a
//!   shell in the container waits on a stdin this process holds open, and the container runs
//!   with `AutoRemove`. (testcontainers removes a container when its handle is dropped, but a
//!   handle shared by every test lives in a static, and Rust never drops statics.) Containers
//!   carry the label `org.switchyard.conformance`, with the service as its value.
//! - **127.0.0.1 only.** The URL always names `127.0.0.1`, never the host testcontainers guesses
//!   (`get_host()`), so the engine must run on this machine. By default the container's port is
//!   published on the host's loopback at a port Docker picks (the official images, ordinary
//!   port mapping). With `BROKER_TEST_CONTAINER_NETWORK=host` the container shares the host's
//!   network instead (for an engine without a bridge, as `scripts/docker.sh` starts it): the
//!   fixture picks a free port and passes it on the server's command line (`redis-server
//!   --port`, `postgres -p`), and the server listens on 127.0.0.1 only.
//! - **Ready means answering.** The URL is handed out once the server answers its own protocol
//!   (Redis `PING`, a PostgreSQL login, the AMQP greeting), not when a port opens. A container
//!   that exits first, or does not answer within two minutes, is removed and reported (with the
//!   end of its log while Docker still has it).
//! - **Visible.** Each start writes one line on stderr past libtest's capture
//!   (`conformance-tests: started redis:7 as container ...`).
//! - **Children reach the same broker.** [`child_command`](crate::child_command) passes the URLs
//!   of the running containers to the child as `BROKER_TEST_<SERVICE>_URL`.
//! - **A failure is final.** When a container cannot start, the reason is kept for the rest of
//!   the process, so every later test skips (or fails) at once with it.

#[cfg(any(test, feature = "testcontainers"))]
mod ready;

use crate::Unavailable;

/// The variable that picks how containers are reached: unset (or empty) publishes the
/// container's port on 127.0.0.1, `host` runs the container on the host's network.
pub const CONTAINER_NETWORK_ENV: &str = "BROKER_TEST_CONTAINER_NETWORK";

/// A broker the suite knows how to start in a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// `redis:7`, reached as `redis://127.0.0.1:PORT`.
    Redis,
    /// `postgres:15` with trust authentication, reached as
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    Postgres,
    /// `rabbitmq:3`, reached as `amqp://guest:guest@127.0.0.1:PORT/%2f`.
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

    /// The image it runs, by its official name.
    #[must_use]
    pub fn image_name(self) -> &'static str {
        match self {
            Self::Redis => "redis:7",
            Self::Postgres => "postgres:15",
            Self::RabbitMq => "rabbitmq:3",
        }
    }

    /// The URL of its server listening on 127.0.0.1 at `port`.
    #[must_use]
    pub fn url(self, port: u16) -> String {
        match self {
            Self::Redis => format!("redis://127.0.0.1:{port}"),
            Self::Postgres => format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            Self::RabbitMq => format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        }
    }

    /// The port its server listens on inside its container.
    #[cfg_attr(not(feature = "testcontainers"), allow(dead_code))]
    fn port(self) -> u16 {
        match self {
            Self::Redis => 6379,
            Self::Postgres => 5432,
            Self::RabbitMq => 5672,
        }
    }

    /// The signal that makes its server stop at once (PostgreSQL's SIGTERM waits for every
    /// session to end; SIGINT does not).
    #[cfg_attr(not(feature = "testcontainers"), allow(dead_code))]
    fn stop_signal(self) -> &'static str {
        match self {
            Self::Redis | Self::RabbitMq => "TERM",
            Self::Postgres => "INT",
        }
    }

    /// The variables its image reads.
    #[cfg_attr(not(feature = "testcontainers"), allow(dead_code))]
    fn environment(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Postgres => &[("POSTGRES_HOST_AUTH_METHOD", "trust")],
            Self::Redis | Self::RabbitMq => &[],
        }
    }

    /// The command that makes its server listen on 127.0.0.1 at `port`, for the host network:
    /// what the official image takes (and what `scripts/docker.sh` builds its images to take).
    ///
    /// # Errors
    /// For RabbitMQ, whose node also needs an Erlang distribution port and a node name of its
    /// own beside a host's RabbitMQ: not built, so `rabbitmq:3` runs with its port published.
    #[cfg_attr(not(feature = "testcontainers"), allow(dead_code))]
    fn host_network_command(self, port: u16) -> Result<Vec<String>, String> {
        let port = port.to_string();
        let command: Vec<&str> = match self {
            Self::Redis => vec![
                "redis-server",
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            Self::Postgres => vec!["postgres", "-p", &port, "-c", "listen_addresses=127.0.0.1"],
            Self::RabbitMq => {
                return Err(format!(
                    "{} does not run on the host network here; unset {CONTAINER_NETWORK_ENV} \
                     on an engine that publishes ports",
                    self.image_name()
                ));
            }
        };
        Ok(command.into_iter().map(str::to_owned).collect())
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
    tool("celery", "BROKER_TEST_CELERY_PYTHON")
}

/// The `schemathesis` command (`BROKER_TEST_SCHEMATHESIS`, which `scripts/services.sh`
/// installs from PyPI), for the test that runs it against the API. Its service is
/// `schemathesis`.
///
/// # Errors
/// [`Unavailable`] when it is not set.
pub fn schemathesis() -> Result<String, Unavailable> {
    tool("schemathesis", "BROKER_TEST_SCHEMATHESIS")
}

/// The `tansu` binary (`BROKER_TEST_TANSU`, which `scripts/services.sh` installs), for the
/// Kafka tests that start a broker of their own. Its service is `kafka`.
///
/// # Errors
/// [`Unavailable`] when it is not set.
pub fn tansu() -> Result<String, Unavailable> {
    tool("kafka", "BROKER_TEST_TANSU")
}

/// A program or path that `scripts/services.sh` installs and names in `variable`.
fn tool(service: &'static str, variable: &str) -> Result<String, Unavailable> {
    match std::env::var(variable) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(Unavailable::new(
            service,
            format!("{variable} is not set; run `eval \"$(scripts/services.sh)\"`"),
        )),
    }
}

/// Like [`broker_url`] for the `container`'s service, falling back to `container` started by
/// testcontainers when the `testcontainers` feature is on and a Docker engine is configured
/// (see [the module](self) for what a caller may rely on then).
///
/// # Errors
/// [`Unavailable`] saying why neither way worked: the variable that is not set, and why no
/// container runs (no Docker engine, the image did not start, the server did not answer).
pub fn broker_url_or_container(container: Container) -> Result<String, Unavailable> {
    broker_url(container.service()).or_else(|no_env| {
        network_mode(std::env::var(CONTAINER_NETWORK_ENV).ok().as_deref())
            .and_then(|network| containers::url(container, network))
            .map_err(|no_container| {
                Unavailable::new(
                    container.service(),
                    format!("{}; and no container: {no_container}", no_env.reason),
                )
            })
    })
}

/// The service and URL of every container this process runs.
/// [`child_command`](crate::child_command) hands them to a child process as
/// `BROKER_TEST_<SERVICE>_URL`.
#[must_use]
pub fn running_containers() -> Vec<(&'static str, String)> {
    containers::running()
}

/// How a container's server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Network {
    /// The container's port is published on the host's 127.0.0.1 at a port Docker picks.
    Published,
    /// The container shares the host's network; its server listens on 127.0.0.1 at a free port
    /// the fixture picks.
    Host,
}

/// The network mode a value of [`CONTAINER_NETWORK_ENV`] asks for.
fn network_mode(setting: Option<&str>) -> Result<Network, String> {
    match setting.map(str::trim) {
        None | Some("") => Ok(Network::Published),
        Some("host") => Ok(Network::Host),
        Some(other) => Err(format!(
            "{CONTAINER_NETWORK_ENV}={other} is not a mode: leave it unset to publish the \
             container's port, or set it to `host`"
        )),
    }
}

#[cfg(feature = "testcontainers")]
mod containers {
    //! The containers this process started: one per kind, for the rest of the process.

    use std::{
        collections::HashMap,
        io::Write,
        net::{Ipv4Addr, TcpListener},
        path::PathBuf,
        sync::{Mutex, OnceLock, PoisonError},
        thread,
        time::{Duration, Instant},
    };

    use testcontainers::{
        Container as Running, GenericImage, ImageExt,
        bollard::{
            exec::StartExecResults,
            models::{ExecConfig, HostConfig, PortBinding},
        },
        core::{IntoContainerPort, client::docker_client_instance},
        runners::SyncRunner,
    };

    use super::{CONTAINER_NETWORK_ENV, Container, Network};

    /// How long a server may take to answer after its container started: RabbitMQ boots in
    /// seconds, and the official PostgreSQL image runs initdb first.
    const READY_WITHIN: Duration = Duration::from_secs(120);
    /// The label every container started here carries, with the service as its value:
    /// `docker ps --filter label=org.switchyard.conformance` lists them.
    const LABEL: &str = "org.switchyard.conformance";

    /// A container this process started, kept (never dropped) until the process exits.
    struct Started {
        url: String,
        /// Never read: holding it keeps testcontainers from removing the container.
        _container: Running<GenericImage>,
        /// Never read: holding it keeps the lifeline's stdin open (see [`lifeline`]).
        _lifeline: StartExecResults,
    }

    fn registry() -> &'static Mutex<HashMap<Container, Result<Started, String>>> {
        static REGISTRY: OnceLock<Mutex<HashMap<Container, Result<Started, String>>>> =
            OnceLock::new();
        REGISTRY.get_or_init(Mutex::default)
    }

    /// The URL of this process's container of `kind`, started on `network` the first time; or
    /// why it could not start (the same reason every time).
    pub(super) fn url(kind: Container, network: Network) -> Result<String, String> {
        // Held while starting, so that tests running at once share one container.
        let mut registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
        let started = registry.entry(kind).or_insert_with(|| {
            // testcontainers' blocking runner panics inside an async runtime, and tests call
            // this from inside one: it runs on a thread of its own.
            thread::spawn(move || start(kind, network))
                .join()
                .unwrap_or_else(|_| Err(format!("starting {} panicked", kind.image_name())))
        });
        started
            .as_ref()
            .map(|started| started.url.clone())
            .map_err(Clone::clone)
    }

    pub(super) fn running() -> Vec<(&'static str, String)> {
        let registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
        registry
            .iter()
            .filter_map(|(kind, started)| {
                let started = started.as_ref().ok()?;
                Some((kind.service(), started.url.clone()))
            })
            .collect()
    }

    fn start(kind: Container, network: Network) -> Result<Started, String> {
        docker_configured()?;
        let image = kind.image_name();
        let (name, tag) = image.split_once(':').unwrap_or((image, "latest"));
        let published = format!("{}/tcp", kind.port());
        let image_request = GenericImage::new(name, tag);
        let image_request = match network {
            Network::Published => image_request.with_exposed_port(kind.port().tcp()),
            Network::Host => image_request,
        };
        let mut request = image_request
            .with_label(LABEL, kind.service())
            .with_host_config_modifier(move |config: &mut HostConfig| {
                // Docker removes the container once its server exits (see `lifeline`).
                config.auto_remove = Some(true);
                if network == Network::Published {
                    // Published on loopback only, never on every interface of the machine.
                    config.publish_all_ports = Some(false);
                    config.port_bindings = Some(HashMap::from([(
                        published.clone(),
                        Some(vec![PortBinding {
                            host_ip: Some(Ipv4Addr::LOCALHOST.to_string()),
                            host_port: None,
                        }]),
                    )]));
                }
            });
        for &(variable, value) in kind.environment() {
            request = request.with_env_var(variable, value);
        }
        let (request, host_port, where_) = match network {
            Network::Host => {
                let port = free_port()?;
                let request = request
                    .with_network("host")
                    .with_cmd(kind.host_network_command(port)?);
                (request, Some(port), "on the host network")
            }
            Network::Published => (request, None, "with its port published"),
        };
        let container = request
            .start()
            .map_err(|err| format!("testcontainers could not start {image} {where_}: {err}"))?;
        // From here on, an early return drops `container`, and testcontainers removes it.
        let lifeline = lifeline(kind, container.id())
            .map_err(|err| format!("{image} {where_}: no lifeline into the container: {err}"))?;
        let port = match host_port {
            Some(port) => port,
            // 127.0.0.1 always: the engine is on this machine, whatever get_host() guesses.
            None => container
                .get_host_port_ipv4(kind.port().tcp())
                .map_err(|err| {
                    format!(
                        "{image} {where_}: no port published for {} ({err}); an engine without a \
                     bridge publishes none: set {CONTAINER_NETWORK_ENV}=host",
                        kind.port()
                    )
                })?,
        };
        wait_until_ready(kind, port, &container)
            .map_err(|reason| format!("{image} {where_} at 127.0.0.1:{port}: {reason}"))?;
        let url = kind.url(port);
        announce(&format!(
            "started {image} as container {} {where_}: {url}",
            &container.id()[..container.id().len().min(12)]
        ));
        Ok(Started {
            url,
            _container: container,
            _lifeline: lifeline,
        })
    }

    /// Ties the container's life to this process, however the process ends (even SIGKILL,
    /// when no code of ours runs): a shell in the container waits for the end of its stdin,
    /// which this process holds open (the socket is close-on-exec, so child processes do not
    /// hold it), then signals the server to stop; the server exits and Docker removes the
    /// container (`AutoRemove`). Rust never drops statics, so without it every run would leave
    /// its containers behind. (While the official PostgreSQL image still runs initdb, its
    /// process 1 is a shell that ignores the signal: a process killed in those seconds leaves
    /// the container running.)
    fn lifeline(kind: Container, id: &str) -> Result<StartExecResults, String> {
        // The connection must outlive this call, so the runtime it lives on is never dropped.
        static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
        let runtime = RUNTIME
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .map_err(|err| format!("no runtime for the lifeline: {err}"))
            })
            .as_ref()?;
        let script = format!(
            "while read -r _; do :; done; kill -{} 1",
            kind.stop_signal()
        );
        runtime.block_on(async {
            let docker = docker_client_instance()
                .await
                .map_err(|err| err.to_string())?;
            let config = ExecConfig {
                attach_stdin: Some(true),
                cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), script]),
                ..ExecConfig::default()
            };
            let exec = docker
                .create_exec(id, config)
                .await
                .map_err(|err| err.to_string())?;
            match docker.start_exec(&exec.id, None).await {
                Ok(attached @ StartExecResults::Attached { .. }) => Ok(attached),
                Ok(StartExecResults::Detached) => Err("the engine detached the exec".to_owned()),
                Err(err) => Err(err.to_string()),
            }
        })
    }

    fn wait_until_ready(
        kind: Container,
        port: u16,
        container: &Running<GenericImage>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let Err(not_yet) = super::ready::answers(kind, port) else {
                return Ok(());
            };
            match container.is_running() {
                Ok(true) => {}
                Ok(false) => {
                    return Err(format!(
                        "the container exited before the server answered; its log ends: {}",
                        log_tail(container)
                    ));
                }
                Err(err) => {
                    return Err(format!(
                        "the container is gone before the server answered ({err}); run the \
                         image by hand to see why"
                    ));
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the server did not answer within {}s ({not_yet}); its log ends: {}",
                    READY_WITHIN.as_secs(),
                    log_tail(container)
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines the container wrote, on one line.
    fn log_tail(container: &Running<GenericImage>) -> String {
        let mut log = container.stdout_to_vec().unwrap_or_default();
        log.extend(container.stderr_to_vec().unwrap_or_default());
        let log = String::from_utf8_lossy(&log);
        let lines: Vec<&str> = log.lines().filter(|line| !line.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(8)..].join(" | ");
        if tail.is_empty() {
            "(nothing)".to_owned()
        } else {
            tail
        }
    }

    /// A port on 127.0.0.1 that nothing listens on now (another process may take it before
    /// the server does; then the container exits and the error says so).
    fn free_port() -> Result<u16, String> {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .map_err(|err| format!("no free port on 127.0.0.1: {err}"))
    }

    /// Whether testcontainers has an engine to talk to: `DOCKER_HOST`, or a socket where
    /// Docker, rootless Docker or Docker Desktop put theirs.
    fn docker_configured() -> Result<(), String> {
        if std::env::var_os("DOCKER_HOST").is_some() {
            return Ok(());
        }
        let mut sockets = vec![PathBuf::from("/var/run/docker.sock")];
        if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR") {
            sockets.push(PathBuf::from(runtime).join(".docker/run/docker.sock"));
        }
        if let Some(home) = std::env::var_os("HOME") {
            let home = PathBuf::from(home);
            sockets.push(home.join(".docker/run/docker.sock"));
            sockets.push(home.join(".docker/desktop/docker.sock"));
        }
        if sockets.iter().any(|socket| socket.exists()) {
            return Ok(());
        }
        Err(
            "no Docker engine: DOCKER_HOST is not set and no Docker socket exists; \
             `set -a; eval \"$(scripts/docker.sh up)\"; set +a` starts one on Debian or Ubuntu"
                .to_owned(),
        )
    }

    /// One line on stderr, written past libtest's capture so that a run shows its containers.
    fn announce(line: &str) {
        let _ = writeln!(std::io::stderr(), "conformance-tests: {line}");
    }
}

#[cfg(not(feature = "testcontainers"))]
mod containers {
    use super::{Container, Network};

    pub(super) fn url(_kind: Container, _network: Network) -> Result<String, String> {
        Err("built without the `testcontainers` feature of conformance-tests".into())
    }

    pub(super) fn running() -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_network_is_published_unless_it_says_host() {
        assert_eq!(network_mode(None), Ok(Network::Published));
        assert_eq!(network_mode(Some("")), Ok(Network::Published));
        assert_eq!(network_mode(Some(" host ")), Ok(Network::Host));
        let err = network_mode(Some("bridge")).expect_err("only host is a mode");
        assert!(
            err.starts_with("BROKER_TEST_CONTAINER_NETWORK=bridge is not a mode"),
            "{err}"
        );
    }

    #[test]
    fn host_network_servers_listen_on_loopback_at_the_given_port() {
        assert_eq!(
            Container::Redis
                .host_network_command(40123)
                .expect("redis runs there"),
            [
                "redis-server",
                "--port",
                "40123",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no"
            ]
        );
        assert_eq!(
            Container::Postgres
                .host_network_command(40124)
                .expect("postgres runs there"),
            [
                "postgres",
                "-p",
                "40124",
                "-c",
                "listen_addresses=127.0.0.1"
            ]
        );
        assert!(Container::RabbitMq.host_network_command(40125).is_err());
    }

    #[test]
    fn container_urls_name_loopback() {
        for kind in [Container::Redis, Container::Postgres, Container::RabbitMq] {
            let url = kind.url(40123);
            let authority = url.split('/').nth(2).expect("scheme://authority/...");
            assert!(authority.ends_with("127.0.0.1:40123"), "{url}");
        }
    }
}
