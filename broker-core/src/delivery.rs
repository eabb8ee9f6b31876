//! A received message and the right to settle it.

use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;

use crate::{
    broker::{AckToken, Broker, NackAction, Received},
    error::{Error, Operation, Result},
    headers::Headers,
    instruments::BrokerCalls,
    message::Properties,
    retry::RetryPolicy,
};

/// A message handed to this consumer, leased (or held by its connection) until settled.
///
/// [`ack`](Self::ack) and [`nack`](Self::nack) consume the delivery; if they fail, the
/// delivery comes back inside the [`SettleError`] so the caller can try again or give up.
/// Dropping a delivery without settling it is allowed: the backend hands it out again when its
/// lease ends (or its connection closes), marked redelivered.
pub struct Delivery {
    received: Received,
    queue: Arc<str>,
    broker: Arc<dyn Broker>,
    retry: RetryPolicy,
    calls: Arc<BrokerCalls>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("queue", &self.queue)
            .field("id", &self.received.id)
            .field("receive_count", &self.received.receive_count)
            .field("payload_len", &self.received.payload.len())
            .finish_non_exhaustive()
    }
}

/// A failed ack or nack, with the delivery handed back.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct SettleError {
    /// The delivery, still unsettled.
    pub delivery: Box<Delivery>,
    /// Why settling failed.
    #[source]
    pub error: Error,
}

impl Delivery {
    pub(crate) fn new(
        received: Received,
        queue: Arc<str>,
        broker: Arc<dyn Broker>,
        retry: RetryPolicy,
        calls: Arc<BrokerCalls>,
    ) -> Self {
        Self {
            received,
            queue,
            broker,
            retry,
            calls,
        }
    }

    /// The message id, stable across redeliveries.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.received.id
    }

    /// The queue it came from.
    #[must_use]
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The payload as published.
    #[must_use]
    pub fn payload(&self) -> &Bytes {
        &self.received.payload
    }

    /// The headers as published.
    #[must_use]
    pub fn headers(&self) -> &Headers {
        &self.received.headers
    }

    /// The properties as published.
    #[must_use]
    pub fn properties(&self) -> &Properties {
        &self.received.properties
    }

    /// The payload decoded from JSON.
    ///
    /// # Errors
    /// [`ErrorKind::Codec`](crate::ErrorKind::Codec) saying why the payload is not a `T`; such
    /// a message is poison (dead-letter it rather than requeue it).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.received.payload).map_err(|e| {
            Error::new(
                crate::ErrorKind::Codec,
                self.broker.capabilities().backend,
                crate::Operation::Decode,
                format!(
                    "payload of message {} is not the expected JSON: {e}",
                    self.received.id
                ),
            )
        })
    }

    /// A header's value when it is a string.
    #[must_use]
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.received
            .headers
            .get(name)
            .and_then(serde_json::Value::as_str)
    }

    /// The ordering key it was published with.
    #[must_use]
    pub fn ordering_key(&self) -> Option<&str> {
        self.received.ordering_key.as_deref()
    }

    /// How many times it has been handed out, this time included (see
    /// [`Received::receive_count`]).
    #[must_use]
    pub fn receive_count(&self) -> u32 {
        self.received.receive_count
    }

    /// Whether an earlier delivery of this message was not acknowledged.
    #[must_use]
    pub fn redelivered(&self) -> bool {
        self.received.receive_count > 1
    }

    /// The backend's token for this delivery.
    #[must_use]
    pub fn token(&self) -> &AckToken {
        &self.received.token
    }

    /// Removes the message for good, retrying transient failures.
    ///
    /// # Errors
    /// A [`SettleError`] holding the delivery; `LeaseLost` means another consumer may now have
    /// it and this one should stop working on it.
    pub async fn ack(self) -> Result<(), SettleError> {
        let outcome = self
            .retry
            .run(|| {
                let token = std::slice::from_ref(&self.received.token);
                self.calls
                    .observe(Operation::Ack, self.broker.ack(&self.queue, token))
            })
            .await;
        self.settled(outcome)
    }

    /// Gives the message back as `action` says, retrying transient failures.
    ///
    /// The action is checked against the backend's capabilities before the backend is asked
    /// ([`Capabilities::check_nack`](crate::Capabilities::check_nack)); a dead-letter nack of
    /// a delivery from a dead-letter queue is refused too (see
    /// [`dead_letter_queue`](crate::dead_letter_queue)). A refused nack leaves the delivery as
    /// it was, leased to this consumer.
    ///
    /// # Errors
    /// A [`SettleError`] holding the delivery: `Unsupported` or `InvalidInput` when the action
    /// is refused, the backend's error after retries otherwise.
    pub async fn nack(self, action: NackAction) -> Result<(), SettleError> {
        if let Err(refused) = self.check_nack(&action) {
            return self.settled(Err(refused));
        }
        if let NackAction::DeadLetter { reason } = &action {
            tracing::warn!(queue = %self.queue, id = %self.received.id, %reason, "dead-lettering message");
        }
        let outcome = self
            .retry
            .run(|| {
                let nack = self.broker.nack(&self.queue, &self.received.token, &action);
                self.calls.observe(Operation::Nack, nack)
            })
            .await;
        self.settled(outcome)
    }

    /// Sets the lease to end `lease` from now, so that slow work is not handed to another
    /// consumer. Safe to call repeatedly.
    ///
    /// # Errors
    /// Before the backend is asked ([`Capabilities::check_lease_extension`](crate::Capabilities::check_lease_extension)):
    /// `Unsupported` where leases cannot be extended, `InvalidInput` above
    /// [`max_lease`](crate::Capabilities::max_lease). From the backend: `LeaseLost` when the
    /// lease already ended.
    pub async fn extend_lease(&self, lease: Duration) -> Result<()> {
        self.broker.capabilities().check_lease_extension(lease)?;
        self.retry
            .run(|| {
                let extend = self
                    .broker
                    .extend_lease(&self.queue, &self.received.token, lease);
                self.calls.observe(Operation::ExtendLease, extend)
            })
            .await
    }

    fn check_nack(&self, action: &NackAction) -> Result<()> {
        let caps = self.broker.capabilities();
        caps.check_nack(action)?;
        if matches!(action, NackAction::DeadLetter { .. })
            && self.broker.dead_letter_queue(&self.queue).is_none()
        {
            return Err(caps.no_dead_letter_queue(&self.queue));
        }
        Ok(())
    }

    fn settled(self, outcome: Result<()>) -> Result<(), SettleError> {
        outcome.map_err(|error| SettleError {
            delivery: Box::new(self),
            error,
        })
    }
}
