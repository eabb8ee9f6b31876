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
    init_logging();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Serve(args) => serve::run(args).await.map_err(Into::into),
        Command::Worker(args) => worker::run(args).await.map_err(Into::into),
        Command::Queue(args) => queue::run(args).await.map_err(Into::into),
        Command::Broker(args) => broker::run(args).await.map_err(Into::into),
        Command::Queues(args) => queues::run_queues(args).await.map_err(Into::into),
        Command::Purge(args) => queues::run_purge(args).await,
        Command::Dlq(args) => dlq::run(args).await.map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %Report(&*error), "taskoverflow stopped");
            eprintln!("error: {}", Report(&*error));
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info`). Does nothing when a
/// global subscriber is already set.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // An error means a subscriber is already installed (embedding, tests): keep that one.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
