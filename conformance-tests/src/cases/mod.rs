//! The table of cases and the gates that decide which apply.

mod backlog;
mod counting;
mod delivery;
mod durability;
mod faults;
mod housekeeping;
mod limits;
mod order;
mod redelivery;
mod results;
mod worker;

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use broker_core::{
    Broker, Capabilities, Delivery, ErrorKind, Queue, Requirement, ResultStore, StaleTokens,
};

pub use faults::SOAK_ENV;
pub(crate) use faults::worker_process;

use crate::{Harness, HarnessFeature, Settings, Skip};

type CaseFuture = Pin<Box<dyn Future<Output = Result<(), Skip>> + Send>>;

/// One conformance case: its name (which states the guarantee), its gate and its body.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// The test's name.
    pub name: &'static str,
    /// What the backend and its harness must declare for the case to apply.
    pub gate: Gate,
    /// The body; panics when the guarantee is broken.
    pub run: fn(Ctx) -> CaseFuture,
}

/// What a case needs to apply: guarantees the backend declares in its [`Capabilities`]
/// (decided by [`Capabilities::satisfies`]) and features its harness declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    /// Guarantees the backend must keep.
    pub requirements: &'static [Requirement],
    /// What the harness must be able to do.
    pub features: &'static [HarnessFeature],
}

impl Gate {
    /// Applies to every backend.
    pub const ALWAYS: Self = Self {
        requirements: &[],
        features: &[],
    };

    /// Applies to backends that keep every one of `requirements`.
    #[must_use]
    pub const fn requires(requirements: &'static [Requirement]) -> Self {
        Self {
            requirements,
            features: &[],
        }
    }

    /// Applies to backends whose harness has every one of `features`.
    #[must_use]
    pub const fn needs(features: &'static [HarnessFeature]) -> Self {
        Self {
            requirements: &[],
            features,
        }
    }

    /// Whether the case applies to a backend with `caps` and a harness with `features`.
    ///
    /// # Errors
    /// [`Skip::NotDeclared`] naming every unmet requirement, else [`Skip::HarnessCannot`]
    /// naming the first missing feature.
    pub fn check(&self, caps: &Capabilities, features: &[HarnessFeature]) -> Result<(), Skip> {
        let missing: Vec<Requirement> = self
            .requirements
            .iter()
            .copied()
            .filter(|requirement| !caps.satisfies(*requirement))
            .collect();
        if !missing.is_empty() {
            return Err(Skip::NotDeclared {
                backend: caps.backend,
                missing,
            });
        }
        match self.features.iter().find(|f| !features.contains(f)) {
            Some(feature) => Err(Skip::HarnessCannot(*feature)),
            None => Ok(()),
        }
    }
}

/// The delay the delay cases publish and nack with.
const DELAY: Duration = Duration::from_secs(2);

macro_rules! case {
    ($outer:ident :: $module:ident :: $name:ident, $gate:expr) => {
        Case {
            name: stringify!($name),
            gate: $gate,
            run: |ctx| Box::pin($outer::$module::$name(ctx)),
        }
    };
    ($module:ident :: $name:ident, $gate:expr) => {
        Case {
            name: stringify!($name),
            gate: $gate,
            run: |ctx| Box::pin($module::$name(ctx)),
        }
    };
}

/// Every case, in the order the README lists them.
pub static CASES: &[Case] = &[
    case!(delivery::payload_and_headers_round_trip, Gate::ALWAYS),
    case!(
        delivery::oversized_payload_is_rejected_before_anything_is_sent,
        Gate::ALWAYS
    ),
    case!(
        delivery::concurrent_publishers_and_consumers_lose_and_invent_nothing,
        Gate::ALWAYS
    ),
    case!(redelivery::nack_requeues_the_delivery, Gate::ALWAYS),
    case!(
        redelivery::nack_with_delay_is_not_redelivered_before_the_delay,
        Gate::requires(&[Requirement::Delay(DELAY)])
    ),
    case!(
        redelivery::unacked_delivery_returns_after_its_lease,
        Gate::requires(&[Requirement::LeaseRedelivery])
    ),
    case!(
        redelivery::unacked_delivery_returns_when_its_consumer_disconnects,
        Gate::requires(&[Requirement::RedeliveryOnDisconnect])
    ),
    case!(
        redelivery::extended_lease_keeps_the_delivery_hidden,
        Gate::requires(&[Requirement::LeaseExtension])
    ),
    case!(
        redelivery::old_token_of_a_redelivered_message_settles_nothing,
        Gate::requires(&[
            Requirement::LeaseRedelivery,
            Requirement::StaleTokens(StaleTokens::RejectedOnceRedelivered),
        ])
    ),
    case!(
        redelivery::ack_after_the_lease_ended_is_lease_lost,
        Gate::requires(&[
            Requirement::LeaseRedelivery,
            Requirement::StaleTokens(StaleTokens::Rejected),
        ])
    ),
    case!(
        order::order_is_kept_per_queue_under_concurrent_consumers,
        Gate::requires(&[Requirement::OrderingPerQueue])
    ),
    case!(
        order::order_is_kept_per_key_under_concurrent_consumers,
        Gate::requires(&[Requirement::OrderingPerKey])
    ),
    case!(
        order::duplicate_within_the_window_is_delivered_once,
        Gate::requires(&[Requirement::Deduplication])
    ),
    case!(
        order::delayed_message_is_never_delivered_early,
        Gate::requires(&[Requirement::Delay(DELAY)])
    ),
    case!(
        redelivery::dead_letter_after_max_receives,
        Gate::requires(&[Requirement::DeadLetter])
    ),
    case!(
        redelivery::nack_to_dead_letter_keeps_the_reason,
        Gate::requires(&[Requirement::DeadLetter])
    ),
    case!(
        limits::publish_batch_over_the_limit_is_split_and_every_message_arrives,
        Gate::ALWAYS
    ),
    case!(
        limits::receive_asking_for_more_than_the_limit_gets_at_most_the_limit,
        Gate::ALWAYS
    ),
    case!(
        limits::publish_delay_over_the_maximum_is_refused_before_anything_is_sent,
        Gate::requires(&[Requirement::Delay(DELAY)])
    ),
    case!(
        limits::nack_delay_over_the_maximum_is_refused_and_the_delivery_kept,
        Gate::requires(&[Requirement::Delay(DELAY)])
    ),
    case!(
        limits::lease_extension_over_the_maximum_is_refused_and_the_lease_kept,
        Gate::requires(&[Requirement::LeaseExtension])
    ),
    case!(
        limits::dead_letter_queue_has_none_of_its_own,
        Gate::requires(&[Requirement::DeadLetter])
    ),
    case!(
        counting::counts_follow_messages_through_their_states,
        Gate::requires(&[Requirement::Counting])
    ),
    case!(
        housekeeping::purge_removes_ready_messages_and_keeps_leased_ones,
        Gate::ALWAYS
    ),
    case!(
        housekeeping::dead_letters_are_listed_in_place_and_redriven_home,
        Gate::requires(&[Requirement::DeadLetter])
    ),
    case!(delivery::missing_queue_is_a_typed_error, Gate::ALWAYS),
    case!(delivery::closed_broker_gives_closed_errors, Gate::ALWAYS),
    case!(
        backlog::a_backlog_older_than_the_lease_is_delivered_once,
        Gate::requires(&[Requirement::LeaseRedelivery])
    ),
    case!(backlog::a_large_backlog_drains, Gate::ALWAYS),
    case!(
        backlog::an_idle_consumer_wakes_when_work_arrives,
        Gate::ALWAYS
    ),
    case!(
        worker::a_slow_handler_keeps_its_message,
        Gate::requires(&[Requirement::LeaseRedelivery, Requirement::LeaseExtension])
    ),
    case!(
        durability::killed_consumer_loses_nothing,
        Gate::needs(&[HarnessFeature::SharedAcrossProcesses])
    ),
    case!(
        durability::restart_loses_nothing,
        Gate {
            requirements: &[Requirement::Durable],
            features: &[HarnessFeature::Restart],
        }
    ),
    case!(
        results::result_store_records_state_transitions,
        Gate::needs(&[HarnessFeature::ResultStore])
    ),
    case!(
        results::a_batch_of_records_reads_back_as_written_one_by_one,
        Gate::needs(&[HarnessFeature::ResultStore])
    ),
    case!(
        results::result_records_expire,
        Gate::needs(&[HarnessFeature::ResultStore])
    ),
];

/// The fault suite: every case, in the order the README lists them. Each runs with
/// [`Settings::FAULTS`].
pub static FAULTS: &[Case] = &[
    case!(
        faults::poison::poison_messages_are_dead_lettered_and_the_worker_goes_on,
        Gate::requires(&[Requirement::DeadLetter])
    ),
    case!(
        faults::worker_kill::killed_workers_lose_no_task,
        Gate::needs(&[HarnessFeature::SharedAcrossProcesses])
    ),
    case!(
        faults::connection_cut::cut_connections_lose_no_task,
        Gate::needs(&[HarnessFeature::Proxy])
    ),
    case!(
        faults::restart::a_restart_mid_run_loses_no_task,
        Gate {
            requirements: &[Requirement::Durable],
            features: &[HarnessFeature::Restart],
        }
    ),
];

/// The case called `name`, in the conformance suite or the fault suite.
pub(crate) fn find(name: &str) -> Option<&'static Case> {
    CASES.iter().chain(FAULTS).find(|c| c.name == name)
}

/// What a case works with: the harness, a connected broker, and the queues it made.
#[derive(Clone)]
pub struct Ctx {
    harness: Arc<dyn Harness>,
    broker: Arc<dyn Broker>,
    settings: Settings,
    case: &'static str,
    module: &'static str,
    queues: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("case", &self.case)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    pub(crate) fn new(
        harness: Arc<dyn Harness>,
        broker: Arc<dyn Broker>,
        settings: Settings,
        case: &str,
        module: &'static str,
    ) -> Self {
        let case = find(case).map_or("case", |c| c.name);
        Self {
            harness,
            broker,
            settings,
            case,
            module,
            queues: Arc::default(),
        }
    }

    fn caps(&self) -> &Capabilities {
        self.broker.capabilities()
    }

    /// A fresh, declared queue with a unique name, deleted after the case passes.
    async fn queue(&self) -> Queue {
        Queue::declare(self.broker.clone(), self.queue_name())
            .await
            .expect("declare a fresh queue")
    }

    /// A unique queue name, deleted after the case passes; the case declares it.
    fn queue_name(&self) -> String {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let short: String = self.case.split('_').map(|w| &w[..1]).collect();
        let name = self.harness.queue_name(&format!("ct-{short}-{suffix}"));
        self.queues.lock().expect("queue list").push(name.clone());
        name
    }

    /// Another connection to the same broker.
    async fn connect(&self) -> Arc<dyn Broker> {
        self.harness
            .broker(self.settings)
            .await
            .expect("a second connection opens")
    }

    /// The backend's result store, records expiring after `expires`.
    async fn result_store(&self, expires: Duration) -> Result<Arc<dyn ResultStore>, Skip> {
        Ok(self.harness.result_store(expires).await?)
    }

    pub(crate) async fn cleanup(&self) {
        let queues = std::mem::take(&mut *self.queues.lock().expect("queue list"));
        for queue in queues {
            let _ = self.broker.delete_queue(&queue).await;
        }
    }
}

/// Receives until `count` deliveries arrived or `within` passed; acks none of them.
async fn receive_at_least(queue: &Queue, count: usize, within: Duration) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < count {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let wait = left.min(Duration::from_secs(1));
        got.extend(
            queue
                .receive(count - got.len(), wait)
                .await
                .expect("receive works"),
        );
    }
    got
}

/// Acks `deliveries` at once. A lease that ran out before the ack (a loaded machine) is the
/// at-least-once promise at work, not a failure: that delivery comes back marked as received
/// again, which the calling case counts. Any other error fails the case.
async fn ack_promptly(queue: &Queue, deliveries: Vec<Delivery>) {
    match queue.ack_all(deliveries).await {
        Err(e) if e.kind() != ErrorKind::LeaseLost => panic!("prompt acks work: {e}"),
        _ => {}
    }
}

/// The payload as text.
fn text(delivery: &Delivery) -> String {
    String::from_utf8_lossy(delivery.payload()).into_owned()
}

/// Counts of each payload.
fn tally(payloads: impl IntoIterator<Item = String>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for p in payloads {
        *counts.entry(p).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use broker_core::{LeaseExtension, Redelivery};

    use super::*;

    const STALE_AFTER_LEASE: Gate = Gate {
        requirements: &[
            Requirement::LeaseRedelivery,
            Requirement::StaleTokens(StaleTokens::Rejected),
        ],
        features: &[HarnessFeature::Restart],
    };

    fn leased() -> Capabilities {
        Capabilities {
            redelivery: Redelivery::Lease {
                default_lease: Duration::from_secs(30),
                extension: LeaseExtension::Unsupported,
            },
            stale_tokens: StaleTokens::Rejected,
            ..Capabilities::minimal("memory")
        }
    }

    #[test]
    fn gate_applies_when_backend_and_harness_declare_everything() {
        assert_eq!(
            Gate::ALWAYS.check(&Capabilities::minimal("sqs"), &[]),
            Ok(())
        );
        let everything = [HarnessFeature::Restart, HarnessFeature::ResultStore];
        assert_eq!(STALE_AFTER_LEASE.check(&leased(), &everything), Ok(()));
    }

    #[test]
    fn gate_names_every_undeclared_requirement_before_any_missing_feature() {
        let skip = STALE_AFTER_LEASE.check(&Capabilities::minimal("amqp"), &[]);
        assert_eq!(
            skip,
            Err(Skip::NotDeclared {
                backend: "amqp",
                missing: STALE_AFTER_LEASE.requirements.to_vec(),
            })
        );
        let skip = STALE_AFTER_LEASE.check(&leased(), &[HarnessFeature::ResultStore]);
        assert_eq!(skip, Err(Skip::HarnessCannot(HarnessFeature::Restart)));
    }
}
