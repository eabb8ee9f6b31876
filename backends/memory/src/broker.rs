//! The in-process broker.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, Weak,
        atomic::{AtomicBool, Ordering as AtomicOrdering},
    },
    time::Duration,
};

use async_trait::async_trait;
use broker_core::{
    AckToken, Broker, Capabilities, Capacity, DEAD_LETTER_REASON_HEADER, DeadLetter, Deduplication,
    Delay, DeliveryGuarantee, Error, ErrorKind, LeaseExtension, Message, NackAction, Operation,
    Ordering, Persistence, Received, Redelivery, Result, StaleTokens,
};
use tokio::time::Instant;

use crate::queue::{QueueState, Return, Stored};

use crate::{BACKEND, MemoryConfig};
const DEAD_LETTER_SUFFIX: &str = ".dlq";

#[derive(Debug, Default)]
struct State {
    queues: HashMap<String, QueueState>,
    next_seq: u64,
    next_lease: u64,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that loses
        // messages we promised to keep, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An in-process broker; see the crate documentation for its guarantees.
///
/// Each value is one "connection": [`Broker::close`] closes this handle only; other handles to
/// the same named broker keep working, and deliveries this handle did not settle come back
/// when their leases end.
#[derive(Debug)]
pub struct MemoryBroker {
    shared: Arc<Shared>,
    config: MemoryConfig,
    capabilities: Capabilities,
    closed: AtomicBool,
}

fn instances() -> &'static Mutex<HashMap<String, Weak<Shared>>> {
    static NAMED: OnceLock<Mutex<HashMap<String, Weak<Shared>>>> = OnceLock::new();
    NAMED.get_or_init(Mutex::default)
}

impl MemoryBroker {
    /// A broker shared with every other broker of this process opened under the same
    /// [`name`](MemoryConfig::name), or with nobody when the config names none.
    #[must_use]
    pub fn new(config: MemoryConfig) -> Self {
        let Some(name) = config.name.clone() else {
            return Self::with_shared(Arc::default(), config);
        };
        let mut named = instances()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let shared = named.get(&name).and_then(Weak::upgrade).unwrap_or_else(|| {
            let shared = Arc::<Shared>::default();
            named.insert(name, Arc::downgrade(&shared));
            shared
        });
        Self::with_shared(shared, config)
    }

    fn with_shared(shared: Arc<Shared>, config: MemoryConfig) -> Self {
        let capabilities = Capabilities {
            delivery: DeliveryGuarantee::AtLeastOnce,
            ordering: Ordering::PerQueue,
            deduplication: if config.dedup_window.is_zero() {
                Deduplication::None
            } else {
                Deduplication::ById {
                    window: config.dedup_window,
                }
            },
            redelivery: Redelivery::Lease {
                default_lease: config.visibility_timeout,
                extension: LeaseExtension::UpTo {
                    max: Duration::from_secs(24 * 3600),
                },
            },
            stale_tokens: StaleTokens::Rejected,
            delay: Delay::UpTo {
                max: Duration::from_secs(365 * 24 * 3600),
            },
            dead_letter: DeadLetter::Queue {
                max_receives: config.max_receives,
            },
            persistence: Persistence::Transient,
            max_batch: 100,
            max_payload: 8 * 1024 * 1024,
            ..Capabilities::minimal(BACKEND)
        };
        Self {
            shared,
            config,
            capabilities,
            closed: AtomicBool::new(false),
        }
    }

    fn open(&self, operation: Operation) -> Result<MutexGuard<'_, State>> {
        if self.closed.load(AtomicOrdering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                BACKEND,
                operation,
                "the broker was closed",
            ));
        }
        Ok(self.shared.lock())
    }

    /// Dead-letter queues keep what they hold: they never dead-letter further.
    fn max_receives(&self, queue: &str) -> Option<u32> {
        (!queue.ends_with(DEAD_LETTER_SUFFIX)).then_some(self.config.max_receives)
    }

    fn exhausted_reason(&self) -> String {
        format!("received {} times without an ack", self.config.max_receives)
    }

    /// Reaps `queue` and moves what it dead-letters into the dead-letter queue.
    fn reap(&self, state: &mut State, queue: &str, now: Instant) {
        let mut dead = Vec::new();
        if let Some(q) = state.queues.get_mut(queue) {
            q.reap(now, self.max_receives(queue), &mut dead);
        }
        Self::bury(state, queue, dead, &self.exhausted_reason(), now);
    }

    fn bury(state: &mut State, queue: &str, dead: Vec<Stored>, reason: &str, now: Instant) {
        if dead.is_empty() {
            return;
        }
        let dlq = state
            .queues
            .entry(format!("{queue}{DEAD_LETTER_SUFFIX}"))
            .or_default();
        for mut stored in dead {
            stored
                .headers
                .insert(DEAD_LETTER_REASON_HEADER.into(), reason.into());
            stored.receive_count = 0;
            dlq.push(stored, None, now);
        }
        dlq.notify.notify_waiters();
    }

    fn parse_token(token: &AckToken, operation: Operation) -> Result<(u64, u64)> {
        token
            .as_str()
            .split_once(':')
            .and_then(|(seq, lease)| Some((seq.parse().ok()?, lease.parse().ok()?)))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    BACKEND,
                    operation,
                    "not a memory ack token",
                )
            })
    }

    fn queue_mut<'s>(
        queues: &'s mut HashMap<String, QueueState>,
        queue: &str,
        operation: Operation,
    ) -> Result<&'s mut QueueState> {
        queues
            .get_mut(queue)
            .ok_or_else(|| missing(queue, operation))
    }

    fn lease_lost(token: &AckToken, operation: Operation) -> Error {
        Error::new(
            ErrorKind::LeaseLost,
            BACKEND,
            operation,
            format!(
                "delivery {} is no longer leased to this consumer",
                token.as_str()
            ),
        )
    }
}

fn missing(queue: &str, operation: Operation) -> Error {
    Error::new(
        ErrorKind::QueueNotFound,
        BACKEND,
        operation,
        format!("no queue named `{queue}`"),
    )
}

#[async_trait]
impl Broker for MemoryBroker {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn declare_queue(&self, queue: &str) -> Result<()> {
        if queue.is_empty() {
            let detail = "a queue name cannot be empty";
            return Err(Error::new(
                ErrorKind::InvalidInput,
                BACKEND,
                Operation::DeclareQueue,
                detail,
            ));
        }
        let mut state = self.open(Operation::DeclareQueue)?;
        state.queues.entry(queue.to_owned()).or_default();
        state
            .queues
            .entry(format!("{queue}{DEAD_LETTER_SUFFIX}"))
            .or_default();
        Ok(())
    }

    async fn delete_queue(&self, queue: &str) -> Result<()> {
        let mut state = self.open(Operation::DeleteQueue)?;
        for name in [queue.to_owned(), format!("{queue}{DEAD_LETTER_SUFFIX}")] {
            if let Some(q) = state.queues.remove(&name) {
                q.notify.notify_waiters();
            }
        }
        Ok(())
    }

    async fn publish(&self, queue: &str, batch: &[Message]) -> Result<()> {
        if batch.len() > self.capabilities.max_batch {
            let detail = format!(
                "{} messages; the limit is {}",
                batch.len(),
                self.capabilities.max_batch
            );
            return Err(Error::new(
                ErrorKind::BatchTooLarge,
                BACKEND,
                Operation::Publish,
                detail,
            ));
        }
        let now = Instant::now();
        let mut state = self.open(Operation::Publish)?;
        let state = &mut *state;
        let q = Self::queue_mut(&mut state.queues, queue, Operation::Publish)?;
        for message in batch {
            if let Some(id) = &message.deduplication_id {
                if q.is_duplicate(id, self.config.dedup_window, now) {
                    continue;
                }
            }
            state.next_seq += 1;
            q.push(Stored::new(state.next_seq, message), message.delay, now);
        }
        q.notify.notify_waiters();
        Ok(())
    }

    async fn receive(&self, queue: &str, max: usize, wait: Duration) -> Result<Vec<Received>> {
        self.receive_up_to(queue, &Capacity::fixed(max), wait).await
    }

    async fn receive_up_to(
        &self,
        queue: &str,
        capacity: &Capacity<'_>,
        wait: Duration,
    ) -> Result<Vec<Received>> {
        let deadline = Instant::now() + wait;
        loop {
            let notify;
            let next_event;
            {
                let now = Instant::now();
                let mut guard = self.open(Operation::Receive)?;
                let state = &mut *guard;
                self.reap(state, queue, now);
                let q = Self::queue_mut(&mut state.queues, queue, Operation::Receive)?;
                if q.has_ready() {
                    let lease = self.config.visibility_timeout;
                    return Ok(q.take(capacity.now(), lease, now, &mut state.next_lease));
                }
                if now >= deadline {
                    return Ok(Vec::new());
                }
                notify = q.notify.clone();
                next_event = q.next_event();
            }
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Publishes between releasing the lock and enabling are caught by the re-check:
            // wake at the next event or a short tick, whichever comes first.
            let wake = next_event.map_or(deadline, |at| at.min(deadline));
            let recheck = Instant::now() + Duration::from_millis(50);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake.min(recheck)) => {}
            }
        }
    }

    async fn ack(&self, queue: &str, tokens: &[AckToken]) -> Result<()> {
        let mut state = self.open(Operation::Ack)?;
        let q = Self::queue_mut(&mut state.queues, queue, Operation::Ack)?;
        let mut lost = None;
        let now = Instant::now();
        for token in tokens {
            let (seq, lease) = Self::parse_token(token, Operation::Ack)?;
            if q.settle(seq, lease, now).is_none() {
                lost.get_or_insert(token);
            }
        }
        lost.map_or(Ok(()), |token| Err(Self::lease_lost(token, Operation::Ack)))
    }

    async fn nack(&self, queue: &str, token: &AckToken, action: &NackAction) -> Result<()> {
        let (seq, lease) = Self::parse_token(token, Operation::Nack)?;
        let now = Instant::now();
        let mut guard = self.open(Operation::Nack)?;
        let state = &mut *guard;
        let q = Self::queue_mut(&mut state.queues, queue, Operation::Nack)?;
        let stored = q
            .settle(seq, lease, now)
            .ok_or_else(|| Self::lease_lost(token, Operation::Nack))?;
        let (how, reason) = match action {
            NackAction::Requeue => (Return::Ready, self.exhausted_reason()),
            NackAction::RequeueAfter(delay) => (Return::After(*delay), self.exhausted_reason()),
            NackAction::DeadLetter { reason } => (Return::DeadLetter, reason.clone()),
        };
        let mut dead = Vec::new();
        q.give_back(stored, how, now, self.max_receives(queue), &mut dead);
        q.notify.notify_waiters();
        Self::bury(state, queue, dead, &reason, now);
        Ok(())
    }

    async fn extend_lease(&self, queue: &str, token: &AckToken, lease: Duration) -> Result<()> {
        let (seq, id) = Self::parse_token(token, Operation::ExtendLease)?;
        let mut state = self.open(Operation::ExtendLease)?;
        let q = Self::queue_mut(&mut state.queues, queue, Operation::ExtendLease)?;
        let now = Instant::now();
        if q.extend(seq, id, now, now + lease) {
            Ok(())
        } else {
            Err(Self::lease_lost(token, Operation::ExtendLease))
        }
    }

    fn dead_letter_queue(&self, queue: &str) -> Option<String> {
        Some(format!("{queue}{DEAD_LETTER_SUFFIX}"))
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, AtomicOrdering::Release);
        Ok(())
    }
}
