//! Acknowledgements in batches: finished jobs hand their deliveries over, and one task acks
//! everything handed over since its previous call in one call to the broker.
//!
//! Nothing waits to fill a batch: under light load each ack goes out at once; under load,
//! the acks that arrive while one call is in flight go out together in the next.

use tokio::{sync::mpsc, task::JoinHandle};

use crate::{Delivery, Queue};

/// The sending side, held by the jobs.
pub(crate) type Acks = mpsc::UnboundedSender<Delivery>;

/// The task that acks what [`Acks`] senders hand over.
pub(crate) struct Acker(JoinHandle<()>);

impl Acker {
    /// Starts acking deliveries of `queue` handed to the returned sender.
    pub(crate) fn start(queue: Queue) -> (Acks, Self) {
        let (acks, handed) = mpsc::unbounded_channel();
        (acks, Self(tokio::spawn(ack_batches(queue, handed))))
    }

    /// Waits until every delivery handed over has been acked (or its ack failed); returns
    /// once every sender is dropped.
    pub(crate) async fn finish(self) {
        if let Err(err) = self.0.await {
            tracing::error!(error = %err, "the acker stopped abnormally");
        }
    }
}

async fn ack_batches(queue: Queue, mut handed: mpsc::UnboundedReceiver<Delivery>) {
    let max = queue.capabilities().max_batch.max(1);
    let mut batch = Vec::with_capacity(max);
    while let Some(first) = handed.recv().await {
        batch.push(first);
        while batch.len() < max {
            match handed.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let count = batch.len();
        if let Err(err) = queue.ack_all(std::mem::take(&mut batch)).await {
            // Those messages stay with the broker and come back: at-least-once holds.
            tracing::warn!(count, error = %err, "could not ack finished tasks; they will be redelivered");
        }
    }
}
