//! The dead letters of a queue: looking at them, and moving them back.
//!
//! Both are written once, above the driver, from receive, publish, ack and nack, so they work
//! on every backend that declares a [`DeadLetter`](crate::DeadLetter) queue.

use std::{collections::HashSet, time::Duration};

use crate::{
    dead_letter::DEAD_LETTER_REASON_HEADER,
    delivery::Delivery,
    error::{Error, ErrorKind, Operation, Result},
    message::Message,
    queue::Queue,
};

/// One dead letter as [`DeadLetters::peek`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterSummary {
    /// The message's id.
    pub id: String,
    /// Why it was dead-lettered (header `x-dead-letter-reason`), where the backend kept it.
    pub reason: Option<String>,
    /// The Celery task it carries (header `task`), if it is a task.
    pub task: Option<String>,
    /// How many times it has been received, on its home queue and here.
    pub receive_count: u32,
    /// The payload's size in bytes.
    pub payload_len: usize,
}

/// The dead-letter queue of one queue, and the way back from it.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    home: Queue,
    dead: Queue,
}

impl DeadLetters {
    /// The dead letters of `home`, in the queue its broker names
    /// ([`Broker::dead_letter_queue`](crate::Broker::dead_letter_queue)).
    ///
    /// # Errors
    /// `Unsupported` when the backend has no dead-letter queues, or `home` is one itself.
    pub fn of(home: Queue) -> Result<Self> {
        let caps = home.capabilities();
        let name = (caps.dead_letter != crate::DeadLetter::Unsupported)
            .then(|| home.broker().dead_letter_queue(home.name()))
            .flatten()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unsupported,
                    caps.backend,
                    Operation::Receive,
                    format!(
                        "`{}` has no dead-letter queue on the {} backend",
                        home.name(),
                        caps.backend
                    ),
                )
            })?;
        let dead = Queue::new(home.broker().clone(), name);
        Ok(Self { home, dead })
    }

    /// The dead-letter queue.
    #[must_use]
    pub fn queue(&self) -> &Queue {
        &self.dead
    }

    /// Up to `limit` dead letters, left where they are: each is received, read, and handed
    /// back with a requeue once all are read. A receive that waits `wait` and finds nothing
    /// ends the list early. Each message is listed once, even if its lease ran out while the
    /// list was read.
    ///
    /// Looking moves nothing out of the dead-letter queue, but it counts as a receive, and on
    /// a backend whose requeue republishes (Kafka) the listed messages go to its end.
    ///
    /// # Errors
    /// The first receive or requeue error after retries. Messages received before a failed
    /// requeue come back when their leases end.
    pub async fn peek(&self, limit: usize, wait: Duration) -> Result<Vec<DeadLetterSummary>> {
        let mut seen = HashSet::new();
        let mut held = Vec::new();
        let mut listed = Vec::new();
        while listed.len() < limit {
            let batch = self.dead.receive(limit - listed.len(), wait).await?;
            let before = listed.len();
            for delivery in batch {
                if seen.insert(delivery.id().to_owned()) {
                    listed.push(summary(&delivery));
                }
                held.push(delivery);
            }
            // Nothing new: the queue is empty, or only listed messages whose leases ran out
            // are coming back.
            if listed.len() == before {
                break;
            }
        }
        let mut first_error = None;
        for delivery in held {
            if let Err(refused) = delivery.nack(crate::NackAction::Requeue).await {
                first_error.get_or_insert(refused.error);
            }
        }
        first_error.map_or(Ok(listed), Err)
    }

    /// Moves up to `limit` dead letters back to their home queue and returns how many moved.
    ///
    /// Each goes back with its payload, headers (less the dead-letter reason), properties and
    /// ordering key, and a fresh deduplication id, so that a queue that deduplicates takes it
    /// again. A batch is published before it is acked here: a crash in between leaves a
    /// message in both queues, never in neither. A receive that waits `wait` and finds
    /// nothing ends the redrive early.
    ///
    /// # Errors
    /// The first publish or ack error after retries; a batch whose publish failed stays in
    /// the dead-letter queue (its leases end and it comes back there).
    pub async fn redrive(&self, limit: usize, wait: Duration) -> Result<u64> {
        let mut moved = 0u64;
        while moved < limit as u64 {
            let left = limit - usize::try_from(moved).unwrap_or(limit);
            let batch = self.dead.receive(left, wait).await?;
            if batch.is_empty() {
                break;
            }
            let copies = batch.iter().map(returning_copy).collect();
            self.home.publish_batch(copies).await?;
            moved += batch.len() as u64;
            self.dead.ack_all(batch).await?;
        }
        Ok(moved)
    }
}

fn summary(delivery: &Delivery) -> DeadLetterSummary {
    DeadLetterSummary {
        id: delivery.id().to_owned(),
        reason: delivery
            .header_str(DEAD_LETTER_REASON_HEADER)
            .map(str::to_owned),
        task: delivery.header_str("task").map(str::to_owned),
        receive_count: delivery.receive_count(),
        payload_len: delivery.payload().len(),
    }
}

/// The message a dead letter becomes on its way home.
fn returning_copy(delivery: &Delivery) -> Message {
    let mut headers = delivery.headers().clone();
    headers.remove(DEAD_LETTER_REASON_HEADER);
    Message {
        payload: delivery.payload().clone(),
        headers,
        properties: delivery.properties().clone(),
        ordering_key: delivery.ordering_key().map(str::to_owned),
        deduplication_id: Some(uuid::Uuid::new_v4().simple().to_string()),
        delay: None,
    }
}
