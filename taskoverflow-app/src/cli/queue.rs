//! `taskoverflow queue`: the course's queue demo, on any broker.
//!
//! `--send` publishes 100 messages `"<prepend>Message <n>"` (n = 0..99), each carrying the
//! client name in header `client`; on a `.fifo` queue they all go to ordering group `default`
//! and are deduplicated by content. `--receive` prints `<client>: <body>` for each message and
//! acks it, until Ctrl-C (or `--limit`, or `--idle` seconds without a message), then the
//! summary line `received N, out of order K, duplicates D`. Running it against different
//! brokers shows how their ordering and deduplication differ.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::Arc,
    time::Duration,
};

use broker_core::{Broker, ErrorKind, Message, Queue};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::{backends, config::EMBEDDED_BROKER};

/// How many messages `--send` publishes.
pub const MESSAGES: usize = 100;

/// Options of `taskoverflow queue`.
#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).multiple(true).args(["send", "receive"]))]
pub struct QueueArgs {
    /// The queue's name; a name ending in `.fifo` orders and deduplicates as SQS FIFO does.
    #[arg(long)]
    pub name: String,

    /// Who is sending or receiving, carried in header `client`.
    #[arg(long = "client-name")]
    pub client_name: String,

    /// Publish the 100 messages.
    #[arg(long)]
    pub send: bool,

    /// Receive, print and ack messages (after sending, when both are given).
    #[arg(long)]
    pub receive: bool,

    /// Text put before each message's body.
    #[arg(long, default_value = "")]
    pub prepend: String,

    /// Create the queue when it is missing (otherwise a missing queue is an error).
    #[arg(long)]
    pub create: bool,

    /// Stop receiving after this many messages (default: until Ctrl-C).
    #[arg(long)]
    pub limit: Option<usize>,

    /// Stop receiving once nothing arrived for this many seconds (default: wait on).
    #[arg(long)]
    pub idle: Option<u64>,

    /// Broker URL; the embedded broker only lives as long as this command.
    #[arg(long = "broker-url", env = "CELERY_BROKER_URL", hide_env_values = true)]
    pub broker_url: Option<String>,
}

/// Why the demo stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue does not exist (the practical's wording).
    #[error("Unable to find a Queue by this name {0}")]
    Missing(String),
    /// The broker failed.
    #[error(transparent)]
    Broker(#[from] broker_core::Error),
}

/// The message number `n` of the demo.
#[must_use]
pub fn demo_message(args: &QueueArgs, n: usize) -> Message {
    let body = format!("{}Message {n}", args.prepend);
    let mut message = Message::new(body.clone()).header("client", args.client_name.clone());
    if args.name.ends_with(".fifo") {
        message = message
            .ordering_key("default")
            .deduplication_id(content_key(&body));
    }
    message
}

/// A deduplication id standing for `body` (SQS allows at most 128 characters).
fn content_key(body: &str) -> String {
    if body.len() <= 128 {
        return body.to_owned();
    }
    // FNV-1a: stable across runs and builds, which is all a dedup key needs.
    let hash = body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:.100}#{hash:016x}", body)
}

fn missing(queue: &str, error: broker_core::Error) -> QueueError {
    if error.kind() == ErrorKind::QueueNotFound {
        QueueError::Missing(queue.to_owned())
    } else {
        QueueError::Broker(error)
    }
}

/// Runs the demo.
///
/// # Errors
/// [`QueueError::Missing`] for a missing queue; broker errors.
pub async fn run(args: QueueArgs) -> Result<(), QueueError> {
    let url = args
        .broker_url
        .clone()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| EMBEDDED_BROKER.to_owned());
    let broker: Arc<dyn Broker> = backends::compiled_in().broker(&url).await?;
    let queue = if args.create {
        Queue::declare(broker, args.name.clone()).await?
    } else {
        Queue::new(broker, args.name.clone())
    };
    if args.send {
        send(&args, &queue).await?;
    }
    if args.receive {
        receive(&args, &queue).await?;
    }
    Ok(())
}

async fn send(args: &QueueArgs, queue: &Queue) -> Result<(), QueueError> {
    let bar = ProgressBar::new(MESSAGES as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("sending to {}", args.name));
    for n in 0..MESSAGES {
        queue
            .publish(demo_message(args, n))
            .await
            .map_err(|e| missing(&args.name, e))?;
        bar.inc(1);
    }
    bar.finish();
    Ok(())
}

/// What a receiver saw: how many messages, how many came after a later one of the same
/// sender, and how many repeated a body already received.
#[derive(Debug, Default)]
pub struct Tally {
    received: usize,
    out_of_order: usize,
    duplicates: usize,
    last_of_sender: HashMap<String, usize>,
    bodies: HashSet<String>,
}

impl Tally {
    /// Counts one message `body` from `client`. A body ending in its number (`Message 7`)
    /// is out of order when the same sender's last message had a higher number.
    pub fn record(&mut self, client: &str, body: &str) {
        self.received += 1;
        if !self.bodies.insert(body.to_owned()) {
            self.duplicates += 1;
        }
        let number = body
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(number) = number {
            if let Some(last) = self.last_of_sender.insert(client.to_owned(), number) {
                if number < last {
                    self.out_of_order += 1;
                }
            }
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {}, out of order {}, duplicates {}",
            self.received, self.out_of_order, self.duplicates
        )
    }
}

async fn receive(args: &QueueArgs, queue: &Queue) -> Result<(), QueueError> {
    let mut tally = Tally::default();
    let stop = broker_core::worker::shutdown_signal();
    tokio::pin!(stop);
    let mut idle = Duration::ZERO;
    while args.limit.is_none_or(|limit| tally.received < limit)
        && args
            .idle
            .is_none_or(|seconds| idle < Duration::from_secs(seconds))
    {
        let want = args
            .limit
            .map_or(10, |limit| (limit - tally.received).min(10));
        let started = tokio::time::Instant::now();
        let deliveries = tokio::select! {
            got = queue.receive(want, Duration::from_secs(1)) => got.map_err(|e| missing(&args.name, e))?,
            () = &mut stop => break,
        };
        if deliveries.is_empty() {
            idle += started.elapsed();
        } else {
            idle = Duration::ZERO;
        }
        for delivery in deliveries {
            let client = delivery
                .header_str("client")
                .unwrap_or("unknown")
                .to_owned();
            let body = String::from_utf8_lossy(delivery.payload()).into_owned();
            println!("{client}: {body}");
            tally.record(&client, &body);
            if let Err(failed) = delivery.ack().await {
                tracing::warn!(error = %failed.error, "could not ack; the message will come back");
            }
        }
    }
    println!("{tally}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_repeated_bodies_and_numbers_going_back_per_sender() {
        let mut tally = Tally::default();
        for (client, body) in [
            ("alice", "Message 0"),
            ("alice", "Message 2"),
            ("bob", "Message 1"),
            ("alice", "Message 1"),
            ("bob", "Message 0"),
            ("alice", "Message 2"),
        ] {
            tally.record(client, body);
        }
        assert_eq!(
            tally.to_string(),
            "received 6, out of order 2, duplicates 3"
        );
    }
}
