//! `taskoverflow serve`: the API and the web UI on one port.

use std::{future::IntoFuture, io, path::PathBuf, time::Duration};

use clap::Args;
use tokio::{net::TcpListener, sync::oneshot};

use broker_core::worker::{Worker, shutdown_signal};
use tokio_util::sync::CancellationToken;

use crate::{
    api::{self, AppState},
    backends,
    config::{ConfigError, QueueSettings},
    jobs,
    store::{StoreError, StoreLocation, TodoStore},
};

/// How long requests in flight may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The variable read for the database URL when `DATABASE_URL` is unset (the reference's name).
pub const SQLALCHEMY_DATABASE_URI: &str = "SQLALCHEMY_DATABASE_URI";

/// Options of `taskoverflow serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 6400)]
    pub port: u16,

    /// Directory of the embedded SQLite store, used when no database URL is given.
    #[arg(long, env = "TASKOVERFLOW_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Keep todos in memory only, losing them on exit (overrides any database URL).
    #[arg(long)]
    pub memory: bool,

    /// Todo database: postgres://, postgresql://, postgresql+DRIVER:// or sqlite:// URL
    /// [fallback env: SQLALCHEMY_DATABASE_URI].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Broker, result backend and queue of the calendar jobs.
    #[command(flatten)]
    pub jobs: QueueSettings,

    /// Jobs the in-process worker runs at the same time (embedded broker only).
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 4)]
    pub worker_concurrency: usize,
}

impl ServeArgs {
    /// Where the todos live: `--memory`, else the database URL (`--database-url`,
    /// `DATABASE_URL`, then `SQLALCHEMY_DATABASE_URI`), else the SQLite file in `--data-dir`.
    ///
    /// # Errors
    /// [`StoreError::UnsupportedUrl`] or [`StoreError::InvalidUrl`] for a URL the store cannot
    /// use.
    pub fn store_location(&self) -> Result<StoreLocation, StoreError> {
        let fallback = std::env::var(SQLALCHEMY_DATABASE_URI).ok();
        self.store_location_with_fallback(fallback)
    }

    fn store_location_with_fallback(
        &self,
        fallback_url: Option<String>,
    ) -> Result<StoreLocation, StoreError> {
        if self.memory {
            return Ok(StoreLocation::Memory);
        }
        let url = self
            .database_url
            .clone()
            .or(fallback_url)
            .filter(|url| !url.is_empty());
        match url {
            Some(url) => StoreLocation::from_url(&url),
            None => Ok(StoreLocation::in_data_dir(&self.data_dir)),
        }
    }
}

/// Why `serve` stopped with an error. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The todo store could not be opened.
    #[error("the todo store is unavailable")]
    Store(#[from] StoreError),
    /// The broker or result store settings are wrong, or the services unreachable.
    #[error(transparent)]
    Jobs(#[from] ConfigError),
    /// The address could not be bound.
    #[error("could not listen on {address}")]
    Bind {
        /// `host:port` as given.
        address: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The server failed while running.
    #[error("the server failed")]
    Serve(#[source] io::Error),
}

/// Serves until SIGINT or SIGTERM, then lets requests in flight finish (for up to ten seconds)
/// and closes the store.
///
/// # Errors
/// [`ServeError`] when the store cannot be opened, the address cannot be bound, or the server
/// fails.
pub async fn run(args: ServeArgs) -> Result<(), ServeError> {
    let location = args.store_location()?;
    let backends = backends::compiled_in();
    let in_process = args.jobs.is_in_process(&backends)?;
    // Listen before connecting: a SIGTERM while the services are still being reached is a
    // clean stop, not the signal's default (an abrupt exit).
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        trigger.cancel();
    });
    let calendar = tokio::select! {
        connected = args.jobs.connect(&backends) => connected?,
        () = stop.cancelled() => return Ok(()),
    };
    tracing::info!(store = %location, "opening the todo store");
    let store = tokio::select! {
        opened = TodoStore::open(&location) => opened?,
        () = stop.cancelled() => return Ok(()),
    };
    let state = AppState::new(store.clone(), calendar.clone());

    let address = format!("{}:{}", args.host, args.port);
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|source| ServeError::Bind { address, source })?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;

    // The embedded broker lives in this process, so its worker must too.
    let stop_worker = CancellationToken::new();
    let worker = in_process.then(|| {
        tracing::info!("running the calendar worker in this process (embedded broker)");
        // Nobody else can reach this broker: finish what is queued before the process ends.
        let options = broker_core::worker::WorkerOptions {
            drain_on_shutdown: true,
            ..super::worker::options(args.worker_concurrency, SHUTDOWN_GRACE)
        };
        let worker = Worker::new(
            calendar.queue.clone(),
            calendar.results.clone(),
            jobs::tasks(),
        )
        .with_options(options);
        tokio::spawn(worker.run(stop_worker.clone()))
    });
    tracing::info!(
        "TaskOverflow listening on http://{local}/ (API at {})",
        api::API_BASE
    );

    let result = serve_until(listener, state, stop.clone()).await;
    if let Some(worker) = worker {
        stop_worker.cancel();
        match worker.await {
            Ok(Ok(report)) => tracing::info!(?report, "in-process worker stopped"),
            Ok(Err(error)) => tracing::error!(%error, "in-process worker failed"),
            Err(error) => tracing::error!(%error, "in-process worker panicked"),
        }
    }
    store.close().await;
    tracing::info!("stopped");
    result
}

async fn serve_until(
    listener: TcpListener,
    state: AppState,
    stop: CancellationToken,
) -> Result<(), ServeError> {
    let (signalled, on_signal) = oneshot::channel::<()>();
    let server = axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async move {
            stop.cancelled().await;
            tracing::info!("shutting down: finishing requests in flight");
            let _ = signalled.send(());
        })
        .into_future();
    let grace_expired = async move {
        if on_signal.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result.map_err(ServeError::Serve),
        () = grace_expired => {
            tracing::warn!(
                grace_seconds = SHUTDOWN_GRACE.as_secs(),
                "requests still in flight after the grace period; stopping anyway"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve_args(arguments: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(["taskoverflow", "serve"].iter().chain(arguments).copied())
            .expect("valid arguments");
        let Command::Serve(args) = cli.command else {
            panic!("serve arguments")
        };
        args
    }

    #[test]
    fn memory_flag_wins_over_a_database_url() {
        let args = serve_args(&["--memory", "--database-url", "postgres://db/todo"]);
        let location = args.store_location_with_fallback(Some("postgres://db/other".to_owned()));
        assert_eq!(location.expect("valid"), StoreLocation::Memory);
    }

    #[test]
    fn database_url_flag_wins_over_the_sqlalchemy_fallback() {
        let args = serve_args(&["--database-url", "postgresql+psycopg2://u:p@db/todo"]);
        let location = args.store_location_with_fallback(Some("sqlite:///other.db".to_owned()));
        assert_eq!(
            location.expect("valid"),
            StoreLocation::Postgres("postgres://u:p@db/todo".to_owned())
        );
    }

    #[test]
    fn sqlalchemy_fallback_is_used_without_a_database_url() {
        let mut args = serve_args(&[]);
        args.database_url = None;
        let location = args.store_location_with_fallback(Some("sqlite:///todo.db".to_owned()));
        assert_eq!(
            location.expect("valid"),
            StoreLocation::SqliteFile(PathBuf::from("todo.db"))
        );
    }

    #[test]
    fn data_dir_places_the_sqlite_file_without_any_url() {
        let mut args = serve_args(&["--data-dir", "somewhere"]);
        args.database_url = None;
        assert_eq!(
            args.store_location_with_fallback(None).expect("valid"),
            StoreLocation::SqliteFile(PathBuf::from("somewhere").join("taskoverflow.sqlite"))
        );
    }

    #[test]
    fn port_and_host_flags_are_read() {
        let args = serve_args(&["--port", "8080", "--host", "0.0.0.0"]);
        assert_eq!((args.host.as_str(), args.port), ("0.0.0.0", 8080));
    }
}
