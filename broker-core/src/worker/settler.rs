//! Finished tasks settled in batches: jobs hand over their message and outcome, and one task
//! writes every outcome handed over since its previous round in one call to the result store,
//! then acks their messages in one call to the broker.
//!
//! Nothing waits to fill a batch: under light load each task is settled at once; under load,
//! the tasks that finish while one round is in flight are settled together in the next.

use std::sync::Arc;

use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use crate::{Delivery, Queue, ResultStore, TaskResult};

/// A task that finished: its message, and the state to write before it is acked, with the
/// job's signal that it is written.
struct Finished {
    delivery: Delivery,
    state: Option<(TaskResult, oneshot::Sender<()>)>,
}

/// The sending side, held by the jobs.
#[derive(Clone)]
pub(crate) struct Settlements(mpsc::UnboundedSender<Finished>);

impl Settlements {
    /// Hands `delivery` over to be acked, after `state` is written when there is one.
    /// Returns once the state is written (or its write failed, which is logged); the ack
    /// follows in the background. `Err` gives both back when the settler has stopped.
    pub(crate) async fn settle(
        &self,
        delivery: Delivery,
        state: Option<TaskResult>,
    ) -> Result<(), (Delivery, Option<TaskResult>)> {
        let (written, wait) = match state {
            Some(state) => {
                let (written, wait) = oneshot::channel();
                (Some((state, written)), Some(wait))
            }
            None => (None, None),
        };
        let finished = Finished {
            delivery,
            state: written,
        };
        if let Err(unsent) = self.0.send(finished) {
            let Finished { delivery, state } = unsent.0;
            return Err((delivery, state.map(|(state, _)| state)));
        }
        if let Some(wait) = wait {
            // Dropped unanswered only if the settler panicked; nothing to wait for then.
            let _ = wait.await;
        }
        Ok(())
    }
}

/// The task that settles what [`Settlements`] senders hand over.
pub(crate) struct Settler(JoinHandle<()>);

impl Settler {
    /// Starts settling finished tasks of `queue`, writing states to `results`.
    pub(crate) fn start(
        queue: Queue,
        results: Option<Arc<dyn ResultStore>>,
    ) -> (Settlements, Self) {
        let (sender, handed) = mpsc::unbounded_channel();
        let task = tokio::spawn(settle_batches(queue, results, handed));
        (Settlements(sender), Self(task))
    }

    /// Waits until every task handed over is settled (or its settling failed); returns once
    /// every sender is dropped.
    pub(crate) async fn finish(self) {
        if let Err(err) = self.0.await {
            tracing::error!(error = %err, "the settler stopped abnormally");
        }
    }
}

async fn settle_batches(
    queue: Queue,
    results: Option<Arc<dyn ResultStore>>,
    mut handed: mpsc::UnboundedReceiver<Finished>,
) {
    let max = queue.capabilities().max_batch.max(1);
    let mut batch = Vec::with_capacity(max);
    let mut states = Vec::with_capacity(max);
    let mut written = Vec::with_capacity(max);
    while let Some(first) = handed.recv().await {
        batch.push(first);
        while batch.len() < max {
            match handed.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let deliveries: Vec<Delivery> = batch
            .drain(..)
            .map(|finished| {
                if let Some((state, done)) = finished.state {
                    states.push(state);
                    written.push(done);
                }
                finished.delivery
            })
            .collect();
        if let Some(results) = &results
            && !states.is_empty()
            && let Err(err) = results.store_all(&states).await
        {
            // The tasks ran; their messages are acked all the same, or they would run again
            // for as long as the store fails. Whoever reads the states sees them missing.
            let count = states.len();
            tracing::error!(count, error = %err, "could not write the states of finished tasks");
        }
        states.clear();
        for done in written.drain(..) {
            let _ = done.send(());
        }
        let count = deliveries.len();
        if let Err(err) = queue.ack_all(deliveries).await {
            // Those messages stay with the broker and come back: at-least-once holds.
            tracing::warn!(count, error = %err, "could not ack finished tasks; they will be redelivered");
        }
    }
}
