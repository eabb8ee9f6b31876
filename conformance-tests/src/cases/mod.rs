//! The table of cases and the gates that decide which apply.

mod delivery;
mod durability;
mod limits;
mod order;
mod redelivery;
mod results;

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use broker_core::{
    Broker, Capabilities, DeadLetter, Deduplication, Delay, Delivery, Ordering, Persistence, Queue,
    Redelivery, StaleTokens,
};

use crate::{Harness, Settings};

/// Why a case did not run, and whether that is because the broker was missing.
#[derive(Debug)]
pub struct Skip(pub String, pub bool);

type CaseFuture = Pin<Box<dyn Future<Output = Result<(), Skip>> + Send>>;

/// One conformance case: its name (which states the guarantee), its gate and its body.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// The test's name.
    pub name: &'static str,
    /// What the backend must declare for the case to apply.
    pub gate: Gate,
    /// The body; panics when the guarantee is broken.
    pub run: fn(Ctx) -> CaseFuture,
}

/// The capability a case needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Every backend.
    Always,
    /// Redelivery by lease (visibility timeout).
    Lease,
    /// Redelivery when the consumer's connection closes.
    OnDisconnect,
    /// Extendable leases.
    LeaseExtension,
    /// Leases, and the token of a message handed out again settles nothing.
    StaleTokenAfterRedelivery,
    /// Leases, and a token settles nothing once its lease ended.
    StaleTokenAfterLease,
    /// Delayed delivery.
    Delay,
    /// Deduplication by id.
    Deduplication,
    /// First-in first-out per queue.
    OrderPerQueue,
    /// Order per ordering key (per-queue order implies it).
    OrderPerKey,
    /// A dead-letter queue.
    DeadLetter,
    /// A broker another process can reach (a consumer can die without the broker).
    SharedAcrossProcesses,
    /// Messages survive a broker restart.
    Durable,
    /// A result store.
    ResultStore,
}

impl Gate {
    /// Why the case does not apply to a backend with `caps`, or `None` when it does.
    #[must_use]
    pub fn unmet(self, caps: &Capabilities, harness: &dyn Harness) -> Option<String> {
        let backend = caps.backend;
        let applies = match self {
            Self::Always | Self::ResultStore => true,
            Self::Lease => matches!(caps.redelivery, Redelivery::Lease { .. }),
            Self::OnDisconnect => caps.redelivery == Redelivery::OnDisconnect,
            Self::LeaseExtension => caps.max_lease().is_some(),
            Self::StaleTokenAfterRedelivery => {
                matches!(caps.redelivery, Redelivery::Lease { .. })
                    && caps.stale_tokens >= StaleTokens::RejectedOnceRedelivered
            }
            Self::StaleTokenAfterLease => {
                matches!(caps.redelivery, Redelivery::Lease { .. })
                    && caps.stale_tokens == StaleTokens::Rejected
            }
            Self::Delay => caps.delay != Delay::Unsupported,
            Self::Deduplication => caps.deduplication != Deduplication::None,
            Self::OrderPerQueue => caps.ordering == Ordering::PerQueue,
            Self::OrderPerKey => caps.ordering >= Ordering::PerKey,
            Self::DeadLetter => caps.dead_letter != DeadLetter::Unsupported,
            Self::SharedAcrossProcesses => harness.shared_across_processes(),
            Self::Durable => caps.persistence == Persistence::Durable,
        };
        (!applies).then(|| format!("{backend} does not declare {}", self.describe()))
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Always => "anything",
            Self::Lease => "lease-based redelivery",
            Self::OnDisconnect => "redelivery on disconnect",
            Self::LeaseExtension => "lease extension",
            Self::StaleTokenAfterRedelivery => "leases whose old tokens fail once redelivered",
            Self::StaleTokenAfterLease => "leases whose tokens fail once they end",
            Self::Delay => "delayed delivery",
            Self::Deduplication => "deduplication",
            Self::OrderPerQueue => "ordering per queue",
            Self::OrderPerKey => "ordering per key",
            Self::DeadLetter => "dead-lettering",
            Self::SharedAcrossProcesses => "a broker shared across processes",
            Self::Durable => "durable messages",
            Self::ResultStore => "a result store",
        }
    }
}

macro_rules! case {
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
    case!(delivery::payload_and_headers_round_trip, Gate::Always),
    case!(
        delivery::oversized_payload_is_rejected_before_anything_is_sent,
        Gate::Always
    ),
    case!(
        delivery::concurrent_publishers_and_consumers_lose_and_invent_nothing,
        Gate::Always
    ),
    case!(redelivery::nack_requeues_the_delivery, Gate::Always),
    case!(
        redelivery::nack_with_delay_is_not_redelivered_before_the_delay,
        Gate::Delay
    ),
    case!(
        redelivery::unacked_delivery_returns_after_its_lease,
        Gate::Lease
    ),
    case!(
        redelivery::unacked_delivery_returns_when_its_consumer_disconnects,
        Gate::OnDisconnect
    ),
    case!(
        redelivery::extended_lease_keeps_the_delivery_hidden,
        Gate::LeaseExtension
    ),
    case!(
        redelivery::old_token_of_a_redelivered_message_settles_nothing,
        Gate::StaleTokenAfterRedelivery
    ),
    case!(
        redelivery::ack_after_the_lease_ended_is_lease_lost,
        Gate::StaleTokenAfterLease
    ),
    case!(
        order::order_is_kept_per_queue_under_concurrent_consumers,
        Gate::OrderPerQueue
    ),
    case!(
        order::order_is_kept_per_key_under_concurrent_consumers,
        Gate::OrderPerKey
    ),
    case!(
        order::duplicate_within_the_window_is_delivered_once,
        Gate::Deduplication
    ),
    case!(order::delayed_message_is_never_delivered_early, Gate::Delay),
    case!(redelivery::dead_letter_after_max_receives, Gate::DeadLetter),
    case!(
        redelivery::nack_to_dead_letter_keeps_the_reason,
        Gate::DeadLetter
    ),
    case!(
        limits::publish_batch_over_the_limit_is_split_and_every_message_arrives,
        Gate::Always
    ),
    case!(
        limits::receive_asking_for_more_than_the_limit_gets_at_most_the_limit,
        Gate::Always
    ),
    case!(
        limits::publish_delay_over_the_maximum_is_refused_before_anything_is_sent,
        Gate::Delay
    ),
    case!(
        limits::nack_delay_over_the_maximum_is_refused_and_the_delivery_kept,
        Gate::Delay
    ),
    case!(
        limits::lease_extension_over_the_maximum_is_refused_and_the_lease_kept,
        Gate::LeaseExtension
    ),
    case!(
        limits::dead_letter_queue_has_none_of_its_own,
        Gate::DeadLetter
    ),
    case!(delivery::missing_queue_is_a_typed_error, Gate::Always),
    case!(delivery::closed_broker_gives_closed_errors, Gate::Always),
    case!(
        durability::killed_consumer_loses_nothing,
        Gate::SharedAcrossProcesses
    ),
    case!(durability::restart_loses_nothing, Gate::Durable),
    case!(
        results::result_store_records_state_transitions,
        Gate::ResultStore
    ),
    case!(results::result_records_expire, Gate::ResultStore),
];

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
        let case = CASES
            .iter()
            .find(|c| c.name == case)
            .map_or("case", |c| c.name);
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
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let short: String = self.case.split('_').map(|w| &w[..1]).collect();
        let name = self.harness.queue_name(&format!("ct-{short}-{suffix}"));
        self.queues.lock().expect("queue list").push(name.clone());
        Queue::declare(self.broker.clone(), name)
            .await
            .expect("declare a fresh queue")
    }

    /// Another connection to the same broker.
    async fn connect(&self) -> Arc<dyn Broker> {
        self.harness
            .broker(self.settings)
            .await
            .expect("a second connection opens")
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
