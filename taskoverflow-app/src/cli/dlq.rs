//! `taskoverflow dlq`: a queue's dead letters, listed with their reasons or moved back.
//!
//! Both work on every backend with dead-letter queues, through
//! [`DeadLetters`](broker_core::DeadLetters): listing receives the dead letters and hands them
//! back; a redrive publishes each to its queue before removing it from the dead-letter queue.

use std::{fmt::Write as _, time::Duration};

use broker_core::{DeadLetterSummary, DeadLetters, Queue};
use clap::{Args, Subcommand};

use super::broker::BrokerUrl;

/// Options of `taskoverflow dlq`.
#[derive(Debug, Clone, Args)]
pub struct DlqArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DlqCommand,

    /// Which broker.
    #[command(flatten)]
    pub broker: BrokerUrl,
}

/// The `dlq` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum DlqCommand {
    /// Each dead letter of QUEUE with its reason; they stay where they are.
    List(DlqOptions),
    /// Moves dead letters of QUEUE back to it.
    Redrive(DlqOptions),
}

/// What `dlq list` and `dlq redrive` work on.
#[derive(Debug, Clone, Args)]
pub struct DlqOptions {
    /// The queue whose dead letters to take (not the dead-letter queue's own name).
    pub queue: String,

    /// At most this many dead letters.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,

    /// Seconds to wait for more dead letters before the dead-letter queue counts as empty.
    #[arg(long, default_value_t = 5)]
    pub wait: u64,
}

/// Runs a `dlq` subcommand, printing to standard output.
///
/// # Errors
/// The broker's error: it cannot be opened, the backend (or the queue) has no dead-letter
/// queue, or a receive, publish or ack failed.
pub async fn run(args: DlqArgs) -> Result<(), broker_core::Error> {
    let broker = args.broker.open().await?;
    let (DlqCommand::List(options) | DlqCommand::Redrive(options)) = &args.command;
    let dead = DeadLetters::of(Queue::new(broker.clone(), options.queue.clone()))?;
    let wait = Duration::from_secs(options.wait);
    match &args.command {
        DlqCommand::List(_) => {
            let listed = dead.peek(options.limit, wait).await?;
            print!(
                "dead letters of `{}` (in `{}`): {}\n\n{}",
                options.queue,
                dead.queue().name(),
                listed.len(),
                dead_letter_table(&listed)
            );
        }
        DlqCommand::Redrive(_) => {
            let moved = dead.redrive(options.limit, wait).await?;
            println!(
                "moved {moved} dead letters from `{}` back to `{}`",
                dead.queue().name(),
                options.queue
            );
        }
    }
    broker.close().await
}

/// One row per dead letter: id, task, receive count and reason (`-` where unknown).
#[must_use]
pub fn dead_letter_table(letters: &[DeadLetterSummary]) -> String {
    let id_width = letters
        .iter()
        .map(|l| l.id.len())
        .chain(["id".len()])
        .max()
        .unwrap_or(0);
    let task_width = letters
        .iter()
        .map(|l| l.task.as_deref().map_or(1, str::len))
        .chain(["task".len()])
        .max()
        .unwrap_or(0);
    let mut table = format!(
        "{:id_width$}  {:task_width$}  {:>8}  reason\n",
        "id", "task", "receives"
    );
    for letter in letters {
        let _ = writeln!(
            table,
            "{:id_width$}  {:task_width$}  {:>8}  {}",
            letter.id,
            letter.task.as_deref().unwrap_or("-"),
            letter.receive_count,
            letter.reason.as_deref().unwrap_or("-")
        );
    }
    table
}
