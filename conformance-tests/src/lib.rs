//! The conformance suite: one table of cases that every backend runs.
//!
//! A backend's test file implements [`Harness`] (how to open a broker, and what else the
//! harness can do: open a result store, restart the broker) and invokes [`suite!`], which
//! expands to one `#[test]` per case. Each case has a [`Gate`]: the
//! [`Requirement`](broker_core::Requirement)s the backend must declare in its capabilities and
//! the [`HarnessFeature`]s its harness must declare. A case whose gate is not met is skipped
//! with its reason printed, and a case whose gate is met must pass. Nothing undeclared is
//! assumed.
//!
//! The fault suite ([`faults!`], the table [`FAULTS`]) is invoked the same way and gated the
//! same way: poison messages, worker processes killed again and again, connections cut by a
//! [`FaultProxy`], and a broker restarted under running clients. Each run counts lost tasks
//! (none may be) and duplicates (printed, never hidden).
//!
//! Brokers are found by the harness through [`endpoint::broker_url_or_container`]: an
//! environment URL, else the broker's image started by testcontainers where a Docker engine is
//! configured ([`endpoint`] says what a test may rely on then). When none is reachable the case
//! is skipped with the reason printed, unless `BROKER_TEST_REQUIRE` requires the service
//! ([`skip`] has the rule, which every test of the workspace that needs a service outside its
//! process follows).

mod cases;
pub mod endpoint;
mod fault_proxy;
pub mod private_postgres;
mod runner;
pub mod skip;

use std::{fmt, process::Command, sync::Arc, time::Duration};

use async_trait::async_trait;
use broker_core::{Broker, ResultStore};

pub use cases::{CASES, Case, FAULTS, Gate, SOAK_ENV};
pub use fault_proxy::FaultProxy;
pub use runner::{
    CHILD_ENV, CHILD_LOCATOR_ENV, WORKER_CHILD_ENV, assert_covers, run_case, run_child,
    run_worker_child,
};
pub use skip::{Skip, Unavailable};

/// Settings every broker opened for the suite must use, so that timing cases run in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The lease (visibility timeout) a delivery gets at receipt.
    pub lease: Duration,
    /// Receives after which an unacked message is dead-lettered.
    pub max_receives: u32,
}

impl Settings {
    /// The settings of the fault suite: the default lease, and more receives before the
    /// dead-letter queue, since each kill or cut adds a receive to the tasks it interrupted
    /// (a task moved to the dead-letter queue would count as lost).
    pub const FAULTS: Self = Self {
        lease: Duration::from_secs(2),
        max_receives: 20,
    };
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(2),
            max_receives: 3,
        }
    }
}

/// What a harness can do besides opening brokers. These are test knobs, not guarantees: what
/// the broker promises is in its [`Capabilities`](broker_core::Capabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HarnessFeature {
    /// A consumer in another process reaches the same broker, so a consumer can die without
    /// the broker (not so for an in-process broker). The crash case needs it.
    SharedAcrossProcesses,
    /// [`Harness::restart`] stops the broker and starts it again.
    Restart,
    /// [`Harness::result_store`] opens the backend's result store.
    ResultStore,
    /// [`Harness::broker_through`] opens connections that pass through a [`FaultProxy`].
    Proxy,
}

impl fmt::Display for HarnessFeature {
    /// What the harness does, after "the harness cannot".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SharedAcrossProcesses => "reach its broker from another process",
            Self::Restart => "restart its broker",
            Self::ResultStore => "open a result store",
            Self::Proxy => "route its connections through a fault proxy",
        })
    }
}

/// What a backend provides to run the suite.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// Opens a new connection to the broker under test, configured with `settings`. Each call
    /// is a separate connection (the crash and disconnect cases rely on it).
    ///
    /// # Errors
    /// [`Unavailable`] when the broker cannot be reached; the case is skipped (or fails when
    /// `BROKER_TEST_REQUIRE` requires the service).
    async fn broker(&self, settings: Settings) -> Result<Arc<dyn Broker>, Unavailable>;

    /// What this harness can do besides opening brokers. Default: nothing.
    fn features(&self) -> Vec<HarnessFeature> {
        Vec::new()
    }

    /// Opens the backend's result store with records expiring after `expires`. Called only
    /// when [`Harness::features`] has [`HarnessFeature::ResultStore`].
    ///
    /// # Errors
    /// [`Unavailable`] when the store cannot be reached.
    ///
    /// # Panics
    /// Unless overridden: a harness that declares the feature must open a store.
    async fn result_store(&self, expires: Duration) -> Result<Arc<dyn ResultStore>, Unavailable> {
        let _ = expires;
        panic!("this harness declares HarnessFeature::ResultStore but does not open a store")
    }

    /// A queue name for this backend built from `base` (which is unique per case); for example
    /// SQS FIFO adds `.fifo`.
    fn queue_name(&self, base: &str) -> String {
        base.to_owned()
    }

    /// Restarts the broker (stop, start, wait until it answers). Called only when
    /// [`Harness::features`] has [`HarnessFeature::Restart`].
    ///
    /// # Errors
    /// Why the restart failed; the case fails.
    ///
    /// # Panics
    /// Unless overridden: a harness that declares the feature must restart its broker.
    async fn restart(&self) -> Result<(), String> {
        panic!("this harness declares HarnessFeature::Restart but does not restart its broker")
    }

    /// Opens a connection like [`Harness::broker`] that passes through `proxy`: the harness
    /// points the proxy at its broker ([`FaultProxy::forward_to`]) and connects to
    /// [`FaultProxy::address`] instead. Called only when [`Harness::features`] has
    /// [`HarnessFeature::Proxy`].
    ///
    /// # Errors
    /// [`Unavailable`] when the broker cannot be reached.
    ///
    /// # Panics
    /// Unless overridden: a harness that declares the feature must route through the proxy.
    async fn broker_through(
        &self,
        settings: Settings,
        proxy: &FaultProxy,
    ) -> Result<Arc<dyn Broker>, Unavailable> {
        let _ = (settings, proxy);
        panic!("this harness declares HarnessFeature::Proxy but does not use the proxy")
    }

    /// What a child process (the crash case's consumer, the fault suite's workers) needs to
    /// reach this harness's broker (a schema, a
    /// key prefix, a private server's port), when it cannot find it alone. The child's harness
    /// constructor reads it back with [`child_locator`]. Default: nothing.
    fn child_locator(&self) -> Option<String> {
        None
    }
}

/// In a child process (the crash case's consumer, the fault suite's workers), what the
/// parent's harness returned from [`Harness::child_locator`]; `None` in any other process.
#[must_use]
pub fn child_locator() -> Option<String> {
    std::env::var(CHILD_ENV)
        .or_else(|_| std::env::var(WORKER_CHILD_ENV))
        .ok()?;
    std::env::var(CHILD_LOCATOR_ENV).ok()
}

/// The command that re-runs the current test binary as a child consumer process (see
/// [`run_child`]). The child reaches the brokers this process started in containers: their
/// URLs are set as `BROKER_TEST_<SERVICE>_URL` (see [`endpoint::running_containers`]).
#[must_use]
pub fn child_command(test_path: &str) -> Command {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let mut command = Command::new(exe);
    command.args(["--exact", test_path, "--nocapture", "--test-threads=1"]);
    for (service, url) in endpoint::running_containers() {
        command.env(endpoint::url_variable(service), url);
    }
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
        $crate::suite!(@cases CASES, $module, $harness;
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
            counts_follow_messages_through_their_states,
            purge_removes_ready_messages_and_keeps_leased_ones,
            dead_letters_are_listed_in_place_and_redriven_home,
            missing_queue_is_a_typed_error,
            closed_broker_gives_closed_errors,
            a_backlog_older_than_the_lease_is_delivered_once,
            a_large_backlog_drains,
            an_idle_consumer_wakes_when_work_arrives,
            a_slow_handler_keeps_its_message,
            killed_consumer_loses_nothing,
            restart_loses_nothing,
            result_store_records_state_transitions,
            a_batch_of_records_reads_back_as_written_one_by_one,
            result_records_expire,
        );
    };
    (@cases $table:ident, $module:ident, $harness:expr; $($case:ident),+ $(,)?) => {
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
                $crate::assert_covers($crate::$table, &[$(stringify!($case)),+]);
            }

            /// Not a case: the entry point of the child consumer process that the crash case
            /// spawns from this same binary. Does nothing unless that case set its variable.
            #[test]
            fn child_process_entry() {
                $crate::run_child(|| $harness);
            }

            /// Not a case: the entry point of the worker processes that the fault suite
            /// spawns from this same binary. Does nothing unless that case set its variable.
            #[test]
            fn worker_child_entry() {
                $crate::run_worker_child(|| $harness);
            }
        }
    };
}

/// Expands to one `#[test]` per case of the fault suite ([`FAULTS`]) for the harness
/// `$harness`, inside a module named `faults`, or `$module` with the
/// `faults!(module_name => harness)` form. Like [`suite!`], each case is gated, and the module
/// must sit at the test crate's root. Each run prints a `FAULT RUN` line with its figures;
/// [`SOAK_ENV`] multiplies its tasks.
#[macro_export]
macro_rules! faults {
    ($harness:expr) => {
        $crate::faults!(faults => $harness);
    };
    ($module:ident => $harness:expr) => {
        $crate::suite!(@cases FAULTS, $module, $harness;
            poison_messages_are_dead_lettered_and_the_worker_goes_on,
            killed_workers_lose_no_task,
            cut_connections_lose_no_task,
            a_restart_mid_run_loses_no_task,
        );
    };
}
