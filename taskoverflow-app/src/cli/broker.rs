//! `taskoverflow broker`: what the configured broker is and what it promises.
//!
//! `broker info` opens the broker `CELERY_BROKER_URL` names (the embedded default when unset)
//! and prints its URL, with the password masked, and its declared capabilities as a table:
//! the same declaration the framework checks every call against.

use std::{fmt::Write as _, sync::Arc};

use broker_core::{Broker, Capabilities, urls::redact};
use clap::{Args, Subcommand};

use crate::{backends, config::EMBEDDED_BROKER};

/// The broker an operator's command works on: `--broker-url`, else `CELERY_BROKER_URL`, else
/// the embedded broker (which lives inside each process, so a command sees only its own).
#[derive(Debug, Clone, Args)]
pub struct BrokerUrl {
    /// Broker URL (default: the embedded broker).
    #[arg(
        long = "broker-url",
        env = "CELERY_BROKER_URL",
        hide_env_values = true,
        global = true
    )]
    pub broker_url: Option<String>,
}

impl BrokerUrl {
    /// The URL, the embedded broker's when none is set.
    #[must_use]
    pub fn url(&self) -> String {
        self.broker_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| EMBEDDED_BROKER.to_owned())
    }

    /// The URL with its password masked, for printing.
    #[must_use]
    pub fn redacted(&self) -> String {
        redact(&self.url())
    }

    /// Opens the broker.
    ///
    /// # Errors
    /// The broker's error when its URL is malformed or it cannot be opened.
    pub async fn open(&self) -> Result<Arc<dyn Broker>, broker_core::Error> {
        backends::compiled_in().broker(&self.url()).await
    }
}

/// Options of `taskoverflow broker`.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// What to show.
    #[command(subcommand)]
    pub command: BrokerCommand,

    /// Which broker.
    #[command(flatten)]
    pub broker: BrokerUrl,
}

/// The `broker` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum BrokerCommand {
    /// The broker's URL (password masked) and its declared capabilities, as a table.
    Info,
}

/// Runs a `broker` subcommand, printing to standard output.
///
/// # Errors
/// The broker's error when its URL is malformed or it cannot be opened.
pub async fn run(args: BrokerArgs) -> Result<(), broker_core::Error> {
    match args.command {
        BrokerCommand::Info => {
            let broker = args.broker.open().await?;
            print!(
                "broker: {}\n\n{}",
                args.broker.redacted(),
                capability_table(broker.capabilities())
            );
            broker.close().await
        }
    }
}

/// `capabilities` as a two-column table, one row per promise, in declaration order.
#[must_use]
pub fn capability_table(capabilities: &Capabilities) -> String {
    let rows = [
        ("backend", capabilities.backend.to_owned()),
        ("delivery", capabilities.delivery.to_string()),
        ("ordering", capabilities.ordering.to_string()),
        ("deduplication", capabilities.deduplication.to_string()),
        ("redelivery", capabilities.redelivery.to_string()),
        ("stale tokens", capabilities.stale_tokens.to_string()),
        ("delay", capabilities.delay.to_string()),
        ("dead letter", capabilities.dead_letter.to_string()),
        ("persistence", capabilities.persistence.to_string()),
        ("counting", capabilities.counting.to_string()),
        (
            "max lease",
            capabilities.max_lease().map_or_else(
                || "none".to_owned(),
                |lease| format!("{} s", lease.as_secs_f64()),
            ),
        ),
        ("max batch", capabilities.max_batch.to_string()),
        ("max payload", format!("{} bytes", capabilities.max_payload)),
        (
            "idle pickup",
            format!("{} s", capabilities.idle_pickup.as_secs_f64()),
        ),
    ];
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut table = format!("{:width$}  value\n", "capability");
    for (name, value) in rows {
        let _ = writeln!(table, "{name:width$}  {value}");
    }
    table
}

#[cfg(test)]
mod tests {
    use broker_core::Capabilities;

    use super::capability_table;

    #[test]
    fn every_promise_gets_a_row_with_its_value() {
        let table = capability_table(&Capabilities::minimal("test"));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 15, "{table}");
        assert!(lines[0].starts_with("capability"), "{table}");
        assert!(lines[1].starts_with("backend ") && lines[1].ends_with(" test"));
        assert!(lines[2].ends_with(" at least once"), "{table}");
        assert!(lines[13].ends_with(" bytes"), "{table}");
    }
}
