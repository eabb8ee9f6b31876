//! The conformance suite: one table of cases that every backend runs.
//!
//! A backend's test file implements [`Harness`] (how to open a broker, a result store, how to
//! restart the broker) and invokes [`suite!`], which expands to one `#[test]` per case. Each
//! case is gated by the capabilities it needs: a case whose guarantee the backend does not
//! declare is skipped with its reason printed, and a case whose guarantee is declared must
//! pass. Nothing undeclared is assumed.
//!
//! Brokers are found by the harness (an environment URL, else testcontainers where a Docker
//! engine answers). When none is reachable the case is skipped with the reason printed, unless
//! `BROKER_TEST_REQUIRE=all` is set (CI), which turns every such skip into a failure.

mod cases;
pub mod endpoint;
mod runner;

use std::{process::Command, sync::Arc, time::Duration};

use async_trait::async_trait;
use broker_core::{Broker, ResultStore};

pub use cases::{CASES, Case, Gate};
pub use runner::{CHILD_ENV, CHILD_LOCATOR_ENV, assert_covers, run_case, run_child};

/// Why a broker or store could not be opened; the case is skipped (or fails under
/// `BROKER_TEST_REQUIRE=all`).
#[derive(Debug, Clone)]
pub struct Unavailable(pub String);

/// Settings every broker opened for the suite must use, so that timing cases run in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The lease (visibility timeout) a delivery gets at receipt.
    pub lease: Duration,
    /// Receives after which an unacked message is dead-lettered.
    pub max_receives: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(2),
            max_receives: 3,
        }
    }
}

/// What a backend provides to run the suite.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// Opens a new connection to the broker under test, configured with `settings`. Each call
    /// is a separate connection (the crash and disconnect cases rely on it).
    async fn broker(&self, settings: Settings) -> Result<Arc<dyn Broker>, Unavailable>;

    /// Opens the backend's result store with records expiring after `expires`; `None` when the
    /// backend has no result store.
    async fn result_store(
        &self,
        expires: Duration,
    ) -> Option<Result<Arc<dyn ResultStore>, Unavailable>> {
        let _ = expires;
        None
    }

    /// A queue name for this backend built from `base` (which is unique per case); for example
    /// SQS FIFO adds `.fifo`.
    fn queue_name(&self, base: &str) -> String {
        base.to_owned()
    }

    /// Restarts the broker (stop, start, wait until it answers). `None` when this harness
    /// cannot restart its broker; the restart case is then skipped.
    async fn restart(&self) -> Option<Result<(), String>> {
        None
    }

    /// Whether a consumer in another process reaches the same broker (false for in-process
    /// brokers); the crash case needs it.
    fn shared_across_processes(&self) -> bool {
        true
    }

    /// What the crash case's child process needs to reach this harness's broker (a schema, a
    /// key prefix, a private server's port), when it cannot find it alone. The child's harness
    /// constructor reads it back with [`child_locator`]. Default: nothing.
    fn child_locator(&self) -> Option<String> {
        None
    }
}

/// In the crash case's child process, what the parent's harness returned from
/// [`Harness::child_locator`]; `None` in any other process.
#[must_use]
pub fn child_locator() -> Option<String> {
    std::env::var(CHILD_ENV).ok()?;
    std::env::var(CHILD_LOCATOR_ENV).ok()
}

/// The command that re-runs the current test binary as a child consumer process (see
/// [`run_child`]).
#[must_use]
pub fn child_command(test_path: &str) -> Command {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let mut command = Command::new(exe);
    command.args(["--exact", test_path, "--nocapture", "--test-threads=1"]);
    command
}

/// Expands to one `#[test]` per conformance case for the harness `$harness` (an expression
/// evaluated once per test), inside a module named `conformance`, or `$module` with the
/// `suite!(module_name => harness)` form (for a crate that runs the suite more than once, say
/// against two broker configurations). The module must sit at the test crate's root.
#[macro_export]
macro_rules! suite {
    ($harness:expr) => {
        $crate::suite!(conformance => $harness);
    };
    ($module:ident => $harness:expr) => {
        $crate::suite!(@cases $module, $harness;
            payload_and_headers_round_trip,
            oversized_payload_is_rejected_before_anything_is_sent,
            concurrent_publishers_and_consumers_lose_and_invent_nothing,
            nack_requeues_the_delivery,
            nack_with_delay_is_not_redelivered_before_the_delay,
            unacked_delivery_returns_after_its_lease,
            unacked_delivery_returns_when_its_consumer_disconnects,
            extended_lease_keeps_the_delivery_hidden,
            old_token_of_a_redelivered_message_settles_nothing,
            ack_after_the_lease_ended_is_lease_lost,
            order_is_kept_per_queue_under_concurrent_consumers,
            order_is_kept_per_key_under_concurrent_consumers,
            duplicate_within_the_window_is_delivered_once,
            delayed_message_is_never_delivered_early,
            dead_letter_after_max_receives,
            nack_to_dead_letter_keeps_the_reason,
            publish_batch_over_the_limit_is_split_and_every_message_arrives,
            receive_asking_for_more_than_the_limit_gets_at_most_the_limit,
            publish_delay_over_the_maximum_is_refused_before_anything_is_sent,
            nack_delay_over_the_maximum_is_refused_and_the_delivery_kept,
            lease_extension_over_the_maximum_is_refused_and_the_lease_kept,
            dead_letter_queue_has_none_of_its_own,
            missing_queue_is_a_typed_error,
            closed_broker_gives_closed_errors,
            killed_consumer_loses_nothing,
            restart_loses_nothing,
            result_store_records_state_transitions,
            result_records_expire,
        );
    };
    (@cases $module:ident, $harness:expr; $($case:ident),+ $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            $(
                #[test]
                fn $case() {
                    $crate::run_case(stringify!($module), stringify!($case), || $harness);
                }
            )+

            /// Not a case: fails when a case of the suite has no test above (or the list
            /// names one the suite does not have).
            #[test]
            fn every_case_of_the_suite_has_a_test() {
                $crate::assert_covers(&[$(stringify!($case)),+]);
            }

            /// Not a case: the entry point of the child consumer process that the crash case
            /// spawns from this same binary. Does nothing unless that case set its variable.
            #[test]
            fn child_process_entry() {
                $crate::run_child(|| $harness);
            }
        }
    };
}
