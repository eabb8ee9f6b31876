//! The `taskoverflow` command line.
//!
//! One subcommand per process role. `serve` runs the API and the web UI; the worker and the
//! queue demo join [`Command`] as further variants, each with its own module like [`serve`].

pub mod broker;
pub mod dlq;
pub mod queue;
pub mod queues;
pub mod serve;
pub mod worker;

use std::{io::IsTerminal, process::ExitCode};

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::report::Report;

/// TaskOverflow: a todo API whose calendar export runs on a worker queue.
#[derive(Debug, Parser)]
#[command(name = "taskoverflow", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The roles a `taskoverflow` process can play.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the JSON API under /api/v1 and the web UI at /.
    Serve(serve::ServeArgs),
    /// Run calendar jobs from the configured broker.
    Worker(worker::WorkerArgs),
    /// The queue demo: send 100 numbered messages, or receive and print them.
    Queue(queue::QueueArgs),
    /// The configured broker: `broker info` shows its declared capabilities.
    Broker(broker::BrokerArgs),
    /// Each queue's ready, in-flight, delayed and dead-lettered messages.
    Queues(queues::QueuesArgs),
    /// Removes every ready message of a queue.
    Purge(queues::PurgeArgs),
    /// A queue's dead letters: `dlq list` shows them, `dlq redrive` moves them back.
    Dlq(dlq::DlqArgs),
}

/// Runs the command line to completion: sets up logging from `RUST_LOG` (default `info`),
/// runs the subcommand, and reports a failure on standard error.
///
/// Returns success when the subcommand ended normally (for `serve`, after a graceful shutdown
/// on SIGINT or SIGTERM).
pub async fn run(cli: Cli) -> ExitCode {
    let telemetry = init_logging();
    if matches!(cli.command, Command::Serve(_) | Command::Worker(_)) {
        crate::prometheus::install();
    }
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Serve(args) => serve::run(args).await.map_err(Into::into),
        Command::Worker(args) => worker::run(args).await.map_err(Into::into),
        Command::Queue(args) => queue::run(args).await.map_err(Into::into),
        Command::Broker(args) => broker::run(args).await.map_err(Into::into),
        Command::Queues(args) => queues::run_queues(args).await.map_err(Into::into),
        Command::Purge(args) => queues::run_purge(args).await,
        Command::Dlq(args) => dlq::run(args).await.map_err(Into::into),
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %Report(&*error), "taskoverflow stopped");
            eprintln!("error: {}", Report(&*error));
            ExitCode::FAILURE
        }
    };
    telemetry.finish();
    code
}

/// What must outlive the command for its spans to reach their exporter.
#[derive(Default)]
struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered (with the `otel` feature and a collector configured).
    fn finish(self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("warning: the last spans were not exported: {error}");
        }
    }
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info`); with the `otel` feature and
/// `OTEL_EXPORTER_OTLP_ENDPOINT` set, exports the same spans too. Does nothing when a global
/// subscriber is already set.
fn init_logging() -> Telemetry {
    use tracing_subscriber::{layer::SubscriberExt as _, util::SubscriberInitExt as _};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let subscriber = tracing_subscriber::registry().with(filter).with(log);
    #[cfg(feature = "otel")]
    {
        let provider = match crate::otel::provider_from_env() {
            Some(Ok(provider)) => Some(provider),
            Some(Err(error)) => {
                eprintln!("warning: spans are not exported: {error}");
                None
            }
            None => None,
        };
        let export = provider.as_ref().map(crate::otel::layer);
        // An error means a subscriber is already installed (embedding, tests): keep that one.
        if subscriber.with(export).try_init().is_ok() && provider.is_some() {
            broker_core::trace_context::set_propagation(crate::otel::OtelPropagation);
        }
        Telemetry { provider }
    }
    #[cfg(not(feature = "otel"))]
    {
        // An error means a subscriber is already installed (embedding, tests): keep that one.
        let _ = subscriber.try_init();
        Telemetry::default()
    }
}
