//! `taskoverflow queues` and `taskoverflow purge`: how much work waits, and throwing it away.
//!
//! `queues` counts each queue's ready, in-flight and delayed messages and its dead letters,
//! where the broker can tell ([`Capabilities::counting`](broker_core::Capabilities)); `purge`
//! removes a queue's ready messages once the operator confirms.

use std::{
    fmt::Write as _,
    io::{BufRead as _, Write as _},
    time::Duration,
};

use broker_core::{Counting, DeadLetters, ErrorKind, Queue, QueueCounts};
use clap::Args;

use super::broker::BrokerUrl;
use crate::jobs::DEFAULT_QUEUE;

/// Options of `taskoverflow queues`.
#[derive(Debug, Clone, Args)]
pub struct QueuesArgs {
    /// The queues to count (default: the calendar queue).
    pub queues: Vec<String>,

    /// The calendar queue, counted when no queue is named.
    #[arg(long = "queue", env = "CELERY_DEFAULT_QUEUE", default_value = DEFAULT_QUEUE, hide = true)]
    pub default_queue: String,

    /// Which broker.
    #[command(flatten)]
    pub broker: BrokerUrl,
}

/// Options of `taskoverflow purge`.
#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    /// The queue to purge.
    pub queue: String,

    /// Purge without asking.
    #[arg(long)]
    pub yes: bool,

    /// Seconds to wait for more messages before the queue counts as empty.
    #[arg(long, default_value_t = 5)]
    pub wait: u64,

    /// Which broker.
    #[command(flatten)]
    pub broker: BrokerUrl,
}

/// Prints a table of the queues' counts. A queue that does not exist gets a row saying so.
///
/// # Errors
/// The broker's error: it cannot be opened, it cannot count (`Unsupported`, naming the
/// backend), or a count failed.
pub async fn run_queues(args: QueuesArgs) -> Result<(), broker_core::Error> {
    let broker = args.broker.open().await?;
    let names = if args.queues.is_empty() {
        vec![args.default_queue.clone()]
    } else {
        args.queues.clone()
    };
    let caps = broker.capabilities().clone();
    caps.check_count()?;
    let mut rows = Vec::new();
    for name in names {
        let queue = Queue::new(broker.clone(), name.clone());
        let counts = match queue.counts().await {
            Err(missing) if missing.kind() == ErrorKind::QueueNotFound => None,
            other => Some(other?),
        };
        let dead = match (&counts, DeadLetters::of(queue)) {
            (Some(_), Ok(dead)) => Some(dead.queue().counts().await?.ready),
            _ => None,
        };
        rows.push((name, counts, dead));
    }
    let precision = match caps.counting {
        Counting::Approximate => "approximate counts",
        Counting::Exact | Counting::Unsupported => "exact counts",
    };
    print!(
        "broker: {} ({precision})\n\n{}",
        args.broker.redacted(),
        count_table(&rows)
    );
    broker.close().await
}

/// Rows of queue, counts (`None`: no such queue) and dead letters (`None`: no dead-letter
/// queue), as a table; `-` where the broker cannot tell.
#[must_use]
pub fn count_table(rows: &[(String, Option<QueueCounts>, Option<u64>)]) -> String {
    let known = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    let width = rows
        .iter()
        .map(|(name, ..)| name.len())
        .chain(["queue".len()])
        .max()
        .unwrap_or(0);
    let mut table = format!(
        "{:width$}  {:>9}  {:>9}  {:>9}  {:>12}\n",
        "queue", "ready", "in flight", "delayed", "dead letters"
    );
    for (name, counts, dead) in rows {
        let _ = match counts {
            None => writeln!(table, "{name:width$}  (no such queue)"),
            Some(c) => writeln!(
                table,
                "{name:width$}  {:>9}  {:>9}  {:>9}  {:>12}",
                c.ready,
                known(c.in_flight),
                known(c.delayed),
                known(*dead)
            ),
        };
    }
    table
}

/// Purges the queue's ready messages after asking on standard input (unless `--yes`), and
/// prints how many it removed.
///
/// # Errors
/// The broker's error, or a refusal when the answer was not `y`.
pub async fn run_purge(args: PurgeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let broker = args.broker.open().await?;
    let queue = Queue::new(broker.clone(), args.queue.clone());
    if !args.yes {
        let counted = match queue.capabilities().counting {
            Counting::Unsupported => String::new(),
            Counting::Approximate | Counting::Exact => {
                format!(" (about {} now)", queue.counts().await?.ready)
            }
        };
        let question = format!(
            "Remove every ready message{counted} of `{}` on {}? [y/N] ",
            args.queue,
            args.broker.redacted()
        );
        if !confirmed(&question)? {
            broker.close().await?;
            return Err("purge cancelled: nothing was removed (--yes skips the question)".into());
        }
    }
    let removed = queue.purge(Duration::from_secs(args.wait)).await?;
    println!("purged {removed} messages from `{}`", args.queue);
    broker.close().await?;
    Ok(())
}

/// Asks `question` on standard error and reads the answer from standard input: `y` or `yes`
/// confirms; anything else, or no answer, does not.
fn confirmed(question: &str) -> std::io::Result<bool> {
    let mut stderr = std::io::stderr();
    stderr.write_all(question.as_bytes())?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

#[cfg(test)]
mod tests {
    use broker_core::QueueCounts;

    use super::count_table;

    #[test]
    fn the_table_shows_a_dash_where_the_broker_cannot_tell() {
        let rows = [
            (
                "ical".to_owned(),
                Some(QueueCounts {
                    ready: 3,
                    in_flight: None,
                    delayed: Some(1),
                }),
                Some(2),
            ),
            ("gone".to_owned(), None, None),
        ];
        let table = count_table(&rows);
        let lines: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[1], ["ical", "3", "-", "1", "2"], "{table}");
        assert_eq!(lines[2], ["gone", "(no", "such", "queue)"], "{table}");
    }
}
