//! `taskoverflow worker`: runs calendar jobs from the configured broker.

use std::time::Duration;

use broker_core::worker::{Worker, WorkerOptions, shutdown_signal};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::{
    backends,
    config::{ConfigError, QueueSettings},
    jobs, prometheus,
};

/// Options of `taskoverflow worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Broker, result backend and queue.
    #[command(flatten)]
    pub settings: QueueSettings,

    /// Jobs run at the same time.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,

    /// Seconds running jobs may take to finish after SIGTERM before they are handed back.
    #[arg(long, default_value_t = 30)]
    pub shutdown_grace: u64,

    /// Serve Prometheus metrics at `/metrics` on this port (off when unset).
    #[arg(long, env = "WORKER_METRICS_PORT")]
    pub metrics_port: Option<u16>,

    /// The address the metrics port listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub metrics_host: String,
}

/// Why the worker stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The settings are wrong or the services unreachable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The broker is the in-process one, which another process cannot reach.
    #[error(
        "the embedded broker lives inside `taskoverflow serve`, which runs its own worker; a \
         separate worker needs CELERY_BROKER_URL naming a shared broker (redis://, postgres://, ...)"
    )]
    InProcessBroker,
    /// The metrics port could not be bound.
    #[error("cannot serve metrics on {address}")]
    MetricsPort {
        /// The address asked for.
        address: String,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// The broker was closed under the worker.
    #[error("the worker stopped")]
    Run(#[source] broker_core::Error),
}

/// Options for a worker with `concurrency` slots and `grace` to finish at shutdown.
#[must_use]
pub fn options(concurrency: usize, grace: Duration) -> WorkerOptions {
    WorkerOptions {
        concurrency,
        prefetch: concurrency,
        shutdown_grace: grace,
        // The job status page shows a running job as STARTED.
        track_started: true,
        ..WorkerOptions::default()
    }
}

/// Runs jobs until SIGINT or SIGTERM, then finishes or hands back the running ones.
///
/// # Errors
/// [`WorkerError`] when the settings are wrong, the services unreachable or the broker closed.
pub async fn run(args: WorkerArgs) -> Result<(), WorkerError> {
    let backends = backends::compiled_in();
    if args.settings.is_in_process(&backends)? {
        return Err(WorkerError::InProcessBroker);
    }
    // Listen before connecting: a SIGTERM that arrives while the broker is still being
    // reached is a clean stop too, not the signal's default (an abrupt exit).
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    let metrics = match args.metrics_port {
        Some(port) => Some(
            prometheus::serve_metrics(&args.metrics_host, port, stop.clone())
                .await
                .map_err(|source| WorkerError::MetricsPort {
                    address: format!("{}:{port}", args.metrics_host),
                    source,
                })?,
        ),
        None => None,
    };
    let calendar = tokio::select! {
        connected = args.settings.connect(&backends) => connected?,
        () = stop.cancelled() => return Ok(()),
    };
    let worker = Worker::new(calendar.queue, calendar.results, jobs::tasks()).with_options(
        options(args.concurrency, Duration::from_secs(args.shutdown_grace)),
    );
    let report = worker.run(stop.clone()).await.map_err(WorkerError::Run)?;
    tracing::info!(?report, "worker finished");
    stop.cancel();
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    Ok(())
}
