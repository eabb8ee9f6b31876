//! Acks in batches for the hand-written (raw) workers, the way the worker runtime batches
//! them: whatever was handed over while the previous call ran goes out in the next call.

use tokio::{sync::mpsc, task::JoinHandle};

/// Spawns a task that calls `ack` with up to `max` of the items sent to the returned
/// sender, in the order sent, never waiting to fill a batch. It ends when every sender is
/// dropped.
pub fn batching<T, F, Fut>(max: usize, mut ack: F) -> (mpsc::UnboundedSender<T>, JoinHandle<()>)
where
    T: Send + 'static,
    F: FnMut(Vec<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < max {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            ack(batch).await;
        }
    });
    (tx, task)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn items_sent_together_are_acked_together_up_to_the_maximum() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let (tx, task) = batching(3, move |batch: Vec<u32>| {
            record.lock().unwrap().push(batch);
            async {}
        });
        for n in 0..5 {
            tx.send(n).unwrap();
        }
        drop(tx);
        task.await.unwrap();
        assert_eq!(*seen.lock().unwrap(), [vec![0, 1, 2], vec![3, 4]]);
    }
}
