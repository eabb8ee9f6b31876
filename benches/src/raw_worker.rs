//! The hand-written worker the runtime is measured against end to end.

use std::{sync::Arc, time::Duration};

use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc};

use crate::{acks, raw::RawClient};

/// How long one receive of the raw worker waits for work before it looks again.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Runs tasks from `queue` until the task running it is aborted, doing what a minimal
/// hand-written Celery worker must, with the runtime's concurrency: wait for a free slot;
/// receive up to the free slots; per task read its name and id, decode its
/// `[args, kwargs, embed]` body, run nothing, write `SUCCESS` (no `STARTED`: the runtime, as
/// Celery, tracks starts only when asked), signal `done`,
/// and hand it to an acker that acks what finished in batches of up to 100, as the runtime
/// does.
///
/// # Panics
/// When a message is not a `noop` task with one argument.
pub async fn run<R: RawClient>(
    raw: Arc<R>,
    queue: String,
    concurrency: usize,
    done: mpsc::UnboundedSender<()>,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let (acks, _acker) = acks::batching(100, {
        let (raw, queue) = (raw.clone(), queue.clone());
        move |finished: Vec<R::Received>| {
            let (raw, queue) = (raw.clone(), queue.clone());
            async move { raw.ack(&queue, finished).await }
        }
    });
    loop {
        let mut permits = vec![slots.clone().acquire_owned().await.expect("never closed")];
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        let got = raw.receive(&queue, permits.len(), IDLE_WAIT).await;
        for (received, permit) in got.into_iter().zip(permits) {
            let (raw, done, acks) = (raw.clone(), done.clone(), acks.clone());
            tokio::spawn(async move {
                let task = raw.task(&received);
                let (args, _kwargs, _embed): (Vec<Value>, Map<String, Value>, Value) =
                    serde_json::from_slice(&task.body).expect("a Celery body");
                assert_eq!((task.name.as_str(), args.len()), ("noop", 1));
                raw.store_result(&task.id, "SUCCESS").await;
                let _ = done.send(());
                let _ = acks.send(received);
                drop(permit);
            });
        }
    }
}
