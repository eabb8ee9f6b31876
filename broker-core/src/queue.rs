//! The portable handle applications hold: one named queue on one broker.

use std::{fmt, sync::Arc, time::Duration};

use tracing::Instrument;

use crate::{
    broker::{Broker, Capacity, QueueCounts},
    capabilities::Capabilities,
    delivery::Delivery,
    error::{Operation, Result},
    instruments::BrokerCalls,
    message::Message,
    retry::RetryPolicy,
};

/// A named queue on a [`Broker`], with the semantics written once for every backend: batches
/// split to the backend's limit, every declared limit (payload size, delay) checked before
/// anything is sent, transient errors retried with backoff, a tracing span per call. The
/// driver is only called with input its capabilities accept (see [`Broker`]).
///
/// Cloning is cheap and clones share the broker.
#[derive(Clone)]
pub struct Queue {
    broker: Arc<dyn Broker>,
    name: Arc<str>,
    retry: RetryPolicy,
    calls: Arc<BrokerCalls>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("backend", &self.broker.capabilities().backend)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// A handle to `name`, which must already exist (see [`Queue::declare`]).
    ///
    /// Its driver calls are timed into the metrics recorder installed when it is made (see
    /// [`instruments`](crate::instruments)).
    pub fn new(broker: Arc<dyn Broker>, name: impl Into<Arc<str>>) -> Self {
        let name = name.into();
        let calls = Arc::new(BrokerCalls::new(broker.capabilities().backend, &name));
        Self {
            broker,
            name,
            retry: RetryPolicy::default(),
            calls,
        }
    }

    /// Creates `name` if missing and returns a handle to it.
    ///
    /// # Errors
    /// The backend's declare error.
    pub async fn declare(broker: Arc<dyn Broker>, name: impl Into<Arc<str>>) -> Result<Self> {
        let queue = Self::new(broker, name);
        let policy = queue.retry.clone();
        policy
            .run(|| {
                let declare = queue.broker.declare_queue(&queue.name);
                queue.calls.observe(Operation::DeclareQueue, declare)
            })
            .await?;
        Ok(queue)
    }

    /// Uses `retry` for transport errors instead of [`RetryPolicy::default`].
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The queue's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The broker behind it.
    #[must_use]
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// What the backend promises.
    #[must_use]
    pub fn capabilities(&self) -> &Capabilities {
        self.broker.capabilities()
    }

    /// Publishes one message. On `Ok` the backend holds it as its capabilities promise.
    ///
    /// # Errors
    /// `PayloadTooLarge`, or `Unsupported`/`InvalidInput` for a delay the backend does not
    /// accept ([`Capabilities::check_publish`]), before anything is sent; the backend's error
    /// after retries otherwise.
    pub async fn publish(&self, message: Message) -> Result<()> {
        self.publish_batch(vec![message]).await
    }

    /// Publishes messages in order, in batches of at most the backend's `max_batch`.
    ///
    /// Every message is checked before the first is sent, so a rejected batch sends nothing.
    /// A transport error retried mid-way may duplicate messages of the failed batch (never of
    /// earlier ones); if retries run out, earlier batches stay published.
    ///
    /// # Errors
    /// See [`Queue::publish`].
    pub async fn publish_batch(&self, messages: Vec<Message>) -> Result<()> {
        let caps = self.capabilities();
        for (index, message) in messages.iter().enumerate() {
            caps.check_publish(index, message)?;
        }
        let span = tracing::debug_span!("publish", backend = caps.backend, queue = %self.name, count = messages.len());
        async {
            for chunk in messages.chunks(caps.max_batch.max(1)) {
                self.retry
                    .run(|| {
                        let publish = self.broker.publish(&self.name, chunk);
                        self.calls.observe(Operation::Publish, publish)
                    })
                    .await?;
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Receives up to `max` deliveries, waiting up to `wait` for the first.
    ///
    /// `max` is clamped, never refused: above the backend's `max_batch` it is lowered to it (so
    /// one call may return fewer than a caller could take), and 0 counts as 1. The same holds
    /// for [`Queue::receive_up_to`].
    ///
    /// # Errors
    /// The backend's error after retries.
    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        self.receive_up_to(Capacity::fixed(max), wait).await
    }

    /// Receives up to `capacity` deliveries (clamped to 1 to `max_batch` as in
    /// [`Queue::receive`]), waiting up to `wait` for the first. Where the backend allows, the
    /// capacity is read when messages are taken (see [`Broker::receive_up_to`]).
    ///
    /// # Errors
    /// The backend's error after retries.
    pub async fn receive_up_to(
        &self,
        capacity: Capacity<'_>,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        let caps = self.capabilities();
        let capacity = capacity.limited_to(caps.max_batch.max(1));
        let span =
            tracing::trace_span!("receive", backend = caps.backend, queue = %self.name, ?capacity);
        let received = self
            .retry
            .run(|| {
                let receive = self.broker.receive_up_to(&self.name, &capacity, wait);
                self.calls.observe(Operation::Receive, receive)
            })
            .instrument(span)
            .await?;
        Ok(received
            .into_iter()
            .map(|r| {
                Delivery::new(
                    r,
                    self.name.clone(),
                    self.broker.clone(),
                    self.retry.clone(),
                    self.calls.clone(),
                )
            })
            .collect())
    }

    /// Receives one delivery, waiting up to `wait`.
    ///
    /// # Errors
    /// See [`Queue::receive`].
    pub async fn receive_one(&self, wait: Duration) -> Result<Option<Delivery>> {
        Ok(self.receive(1, wait).await?.into_iter().next())
    }

    /// How many messages the queue holds, by state; as exact as the backend's
    /// [`Counting`](crate::Counting) declares.
    ///
    /// # Errors
    /// `Unsupported` before the backend is asked when it cannot count; the backend's error after
    /// retries otherwise.
    pub async fn counts(&self) -> Result<QueueCounts> {
        self.capabilities().check_count()?;
        self.retry
            .run(|| {
                self.calls
                    .observe(Operation::Count, self.broker.count(&self.name))
            })
            .await
    }

    /// Removes every message that is ready, and returns how many it removed. Messages leased
    /// to consumers and delayed ones stay: the same on every backend, as AMQP's `queue.purge`
    /// and Celery's `purge` behave.
    ///
    /// Messages no receive can reach yet stay too: on a backend that holds a key's next
    /// message while one is in flight (SQS FIFO), those behind a leased one.
    ///
    /// It receives and acks in batches until a receive waiting `wait` finds nothing, so
    /// messages published meanwhile are removed too, and a queue that never runs dry is
    /// purged until it does. Cancelling it leaves the taken messages leased, to come back.
    ///
    /// # Errors
    /// The first receive or ack error after retries; what was removed before stays removed.
    pub async fn purge(&self, wait: Duration) -> Result<u64> {
        let mut removed = 0u64;
        loop {
            let batch = self.receive(self.capabilities().max_batch, wait).await?;
            if batch.is_empty() {
                return Ok(removed);
            }
            removed += batch.len() as u64;
            self.ack_all(batch).await?;
        }
    }

    /// Acknowledges many deliveries of this queue with as few calls as the backend allows.
    ///
    /// Every call is made, even after one fails: a lease lost by one delivery does not leave
    /// the others to come back.
    ///
    /// # Errors
    /// The first call's error after retries; the deliveries of a failed call are then in an
    /// unknown state (each either acked or to be redelivered), the others are acked.
    pub async fn ack_all(&self, deliveries: Vec<Delivery>) -> Result<()> {
        let tokens: Vec<_> = deliveries.iter().map(|d| d.token().clone()).collect();
        let mut first_error = None;
        for chunk in tokens.chunks(self.capabilities().max_batch.max(1)) {
            let acked = self
                .retry
                .run(|| {
                    self.calls
                        .observe(Operation::Ack, self.broker.ack(&self.name, chunk))
                })
                .await;
            if let Err(error) = acked {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
