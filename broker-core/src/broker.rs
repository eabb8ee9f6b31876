//! The driver trait every backend implements.
//!
//! [`Broker`] is deliberately narrow: publish a batch, receive up to N deliveries waiting at
//! most D, and settle deliveries by their [`AckToken`]. A backend never retries, never checks
//! sizes and never decodes tasks; it classifies its errors (see
//! [`Error::is_retryable`](crate::Error::is_retryable)). Everything else (batch splitting,
//! retries with backoff, payload checks, tracing, lease renewal, task semantics) is written
//! once above it, in [`Queue`](crate::Queue), [`Delivery`](crate::Delivery) and the
//! [`worker`](crate::worker).

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;

use crate::{capabilities::Capabilities, error::Result, headers::Headers, message::Properties};

/// Opaque text a backend hands out with a delivery and later uses to find it again for ack,
/// nack and lease extension. Only the backend that made it can interpret it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AckToken(Arc<str>);

impl AckToken {
    /// Wraps the backend's handle (a receipt handle, a delivery tag, a row id and lease...).
    pub fn new(raw: impl Into<Arc<str>>) -> Self {
        Self(raw.into())
    }

    /// The backend's handle.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AckToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AckToken({})", self.0)
    }
}

/// A message as a backend returns it from [`Broker::receive_up_to`].
#[derive(Debug, Clone)]
pub struct Received {
    /// The message's id, stable across redeliveries.
    pub id: String,
    /// The payload as published.
    pub payload: bytes::Bytes,
    /// The headers as published.
    pub headers: Headers,
    /// The properties as published.
    pub properties: Properties,
    /// The ordering key it was published with.
    pub ordering_key: Option<String>,
    /// How many times this message has been handed out, this time included (1 on first
    /// delivery). Backends that only know a redelivered flag report 1 or 2: a lower bound.
    pub receive_count: u32,
    /// The handle for ack, nack and lease extension.
    pub token: AckToken,
}

/// How many deliveries a receiver can take: a fixed number, or a number it reads from its free
/// slots whenever a backend is about to take messages (see [`Broker::receive_up_to`]).
#[derive(Clone, Copy)]
pub struct Capacity<'a> {
    at_most: usize,
    free: Option<&'a (dyn Fn() -> usize + Sync)>,
}

impl<'a> Capacity<'a> {
    /// Room for `max` deliveries (at least one).
    #[must_use]
    pub const fn fixed(max: usize) -> Capacity<'static> {
        Capacity {
            at_most: max,
            free: None,
        }
    }

    /// Room for as many deliveries as `free` answers when asked, but never more than `at_most`
    /// nor fewer than one. `free` must be cheap: backends call it while taking messages.
    #[must_use]
    pub fn dynamic(at_most: usize, free: &'a (dyn Fn() -> usize + Sync)) -> Self {
        Self {
            at_most,
            free: Some(free),
        }
    }

    /// The same capacity, never above `limit` (a backend's batch limit).
    #[must_use]
    pub fn limited_to(self, limit: usize) -> Self {
        Self {
            at_most: self.at_most.min(limit),
            ..self
        }
    }

    /// How many deliveries to take now: between 1 and the upper bound.
    #[must_use]
    pub fn now(&self) -> usize {
        let room = self
            .free
            .map_or(self.at_most, |free| free().min(self.at_most));
        room.max(1)
    }
}

impl fmt::Debug for Capacity<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capacity")
            .field("at_most", &self.at_most)
            .field("now", &self.now())
            .finish()
    }
}

/// What to do with a delivery that was not processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NackAction {
    /// Make it available again at once, in its original place where the queue is ordered.
    Requeue,
    /// Make it available again after this delay (needs [`Delay`](crate::Delay) support).
    RequeueAfter(Duration),
    /// Move it to the dead-letter queue, recording `reason` in header `x-dead-letter-reason`
    /// where the backend can (needs [`DeadLetter`](crate::DeadLetter) support).
    DeadLetter {
        /// Why the message could not be processed; logged and kept with the message.
        reason: String,
    },
}

/// How many messages a queue holds, by state, as far as its backend can tell
/// ([`Broker::count`]). Dead letters are counted on the dead-letter queue, not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounts {
    /// Ready to be received now.
    pub ready: u64,
    /// Received and not yet settled: leased, or held by a consumer's connection. `None` when
    /// the broker cannot tell.
    pub in_flight: Option<u64>,
    /// Published or nacked with a delay that has not passed yet. `None` when the broker cannot
    /// tell (or the backend has no delays).
    pub delayed: Option<u64>,
}

/// The driver trait: the few operations a backend must provide.
///
/// Implementations must be cheap to share (`Arc<dyn Broker>`), must not retry on their own and
/// must keep every promise their [`Capabilities`] make. Every method is cancellation safe in
/// the at-least-once sense: dropping a future may leave a message published or received (and
/// then redelivered after its lease), never lost.
///
/// # What a driver may assume
/// [`Queue`](crate::Queue) and [`Delivery`](crate::Delivery) check every declared limit before
/// they call a driver ([`Capabilities::check_publish`], [`Capabilities::check_nack`],
/// [`Capabilities::check_lease_extension`]), so a driver need not check again:
/// - `publish` gets 1 to `max_batch` messages, each within `max_payload`, each delay within
///   [`Delay`](crate::Delay) (no non-zero delay when it is unsupported);
/// - `receive_up_to` gets a capacity whose [`Capacity::now`] is 1 to `max_batch`;
/// - `ack` gets 1 to `max_batch` tokens;
/// - `nack` gets a [`NackAction::RequeueAfter`] delay within [`Delay`](crate::Delay), and
///   [`NackAction::DeadLetter`] only when the backend declares a [`DeadLetter`](crate::DeadLetter)
///   queue and [`dead_letter_queue`](Broker::dead_letter_queue) names one for `queue`;
/// - `extend_lease` is called only when [`Capabilities::max_lease`] is `Some`, with a lease no
///   longer than it.
///
/// Whoever calls a driver directly takes these checks on: a driver must still never panic on
/// unchecked input, but it may then fail or deviate from its capabilities.
#[async_trait]
pub trait Broker: Send + Sync + fmt::Debug + 'static {
    /// The guarantees and limits this backend keeps. Constant for the broker's lifetime.
    fn capabilities(&self) -> &Capabilities;

    /// Creates `queue` (and its dead-letter queue, when it has one) if missing. Idempotent.
    async fn declare_queue(&self, queue: &str) -> Result<()>;

    /// Deletes `queue`, its dead-letter queue and everything in them. Deleting a missing queue
    /// succeeds.
    async fn delete_queue(&self, queue: &str) -> Result<()>;

    /// Publishes `batch`. On `Ok` every message is stored as the capabilities promise. On
    /// `Err` some messages may have been stored: a retry may duplicate them.
    ///
    /// A missing queue is [`ErrorKind::QueueNotFound`](crate::ErrorKind::QueueNotFound).
    async fn publish(&self, queue: &str, batch: &[crate::Message]) -> Result<()>;

    /// Receives up to [`Capacity::now`] deliveries, waiting up to `wait` for the first one. An
    /// empty vector means none arrived in time. Each delivery is leased (or held by this
    /// connection) until acked, nacked or its lease ends.
    ///
    /// A worker with some slots busy starts a long poll; when work arrives, the busy tasks may
    /// have finished. So a backend that waits and then takes reads the capacity each time it
    /// takes, not when the call began: [`wait_for_work`](crate::wait_for_work) runs that loop.
    /// A backend that must fix the count up front (an SQS long poll) reads it once.
    ///
    /// A missing queue is [`ErrorKind::QueueNotFound`](crate::ErrorKind::QueueNotFound).
    async fn receive_up_to(
        &self,
        queue: &str,
        capacity: &Capacity<'_>,
        wait: Duration,
    ) -> Result<Vec<Received>>;

    /// Removes these deliveries for good. Acking a delivery whose lease ended is
    /// [`ErrorKind::LeaseLost`](crate::ErrorKind::LeaseLost): another consumer may have it.
    async fn ack(&self, queue: &str, tokens: &[AckToken]) -> Result<()>;

    /// Gives a delivery back (see [`NackAction`]).
    async fn nack(&self, queue: &str, token: &AckToken, action: &NackAction) -> Result<()>;

    /// Sets the delivery's lease to end `lease` from now.
    async fn extend_lease(&self, queue: &str, token: &AckToken, lease: Duration) -> Result<()>;

    /// How many messages `queue` holds. Only called when the backend declares
    /// [`Counting`](crate::Counting) other than `Unsupported`; how exact the answer is, it
    /// declares there too.
    ///
    /// The default refuses with [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported).
    /// A missing queue is [`ErrorKind::QueueNotFound`](crate::ErrorKind::QueueNotFound).
    async fn count(&self, queue: &str) -> Result<QueueCounts> {
        let _ = queue;
        Err(self.capabilities().cannot_count())
    }

    /// The queue that dead letters of `queue` go to: moved there by the backend when it
    /// dead-letters, published there by the [`worker`](crate::worker) when it cannot. `None`
    /// when `queue` is itself a dead-letter queue.
    ///
    /// Defaults to the one naming rule, [`dead_letter_queue`](crate::dead_letter_queue); a
    /// backend whose broker needs another name (SQS FIFO's `.fifo` suffix) maps it here, and
    /// only here.
    fn dead_letter_queue(&self, queue: &str) -> Option<String> {
        crate::dead_letter::dead_letter_queue(queue)
    }

    /// Closes connections. Later calls fail with [`ErrorKind::Closed`](crate::ErrorKind::Closed);
    /// unacked deliveries come back as the redelivery capability says.
    async fn close(&self) -> Result<()>;
}
