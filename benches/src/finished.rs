//! Knowing when tasks finished: the end-to-end benchmarks publish a batch, then wait until
//! the worker under test has written that many `SUCCESS` results.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use broker_core::{Result, ResultStore, TaskResult, TaskState};
use tokio::sync::{Mutex, mpsc};

/// Creates the two ends: a sender to hand to a worker (or wrap in [`Reporting`]) and the
/// [`Finished`] counter a benchmark waits on.
#[must_use]
pub fn channel() -> (mpsc::UnboundedSender<()>, Finished) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, Finished(Mutex::new(rx)))
}

/// Tasks reported finished, one signal each.
#[derive(Debug)]
pub struct Finished(Mutex<mpsc::UnboundedReceiver<()>>);

impl Finished {
    /// Runs `rounds` rounds of: `publish(batch)`, then wait for `batch` finished tasks.
    /// Returns the time all rounds took.
    ///
    /// # Panics
    /// When every sender is gone before enough tasks finished (the worker died).
    pub async fn time_rounds<F, Fut>(&self, rounds: u64, batch: usize, mut publish: F) -> Duration
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut finished = self.0.lock().await;
        let start = Instant::now();
        for _ in 0..rounds {
            publish(batch).await;
            for _ in 0..batch {
                finished.recv().await.expect("a task finished");
            }
        }
        start.elapsed()
    }
}

/// A result store that signals each `SUCCESS` it has written, after writing it.
#[derive(Debug)]
pub struct Reporting {
    inner: Arc<dyn ResultStore>,
    finished: mpsc::UnboundedSender<()>,
}

impl Reporting {
    /// Wraps `inner`; every `SUCCESS` it stores is signalled on `finished`.
    pub fn new(inner: Arc<dyn ResultStore>, finished: mpsc::UnboundedSender<()>) -> Self {
        Self { inner, finished }
    }
}

#[async_trait]
impl ResultStore for Reporting {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn store(&self, result: &TaskResult) -> Result<()> {
        self.inner.store(result).await?;
        if result.status == TaskState::Success {
            // A benchmark that stopped listening does not care.
            let _ = self.finished.send(());
        }
        Ok(())
    }

    async fn fetch(&self, task_id: &str) -> Result<Option<TaskResult>> {
        self.inner.fetch(task_id).await
    }

    async fn forget(&self, task_id: &str) -> Result<()> {
        self.inner.forget(task_id).await
    }
}

/// A result store that keeps nothing, for brokers that keep no results: their raw workers
/// write none either.
#[derive(Debug)]
pub struct Discard;

#[async_trait]
impl ResultStore for Discard {
    fn backend(&self) -> &'static str {
        "discard"
    }

    async fn store(&self, _: &TaskResult) -> Result<()> {
        Ok(())
    }

    async fn fetch(&self, _: &str) -> Result<Option<TaskResult>> {
        Ok(None)
    }

    async fn forget(&self, _: &str) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use broker_core::TaskResult;
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn only_success_counts_as_finished() {
        let (tx, finished) = channel();
        let store = Reporting::new(Arc::new(Discard), tx);
        let rounds = finished.time_rounds(2, 1, |_| async {
            store
                .store(&TaskResult::new("t", TaskState::Started))
                .await
                .unwrap();
            store
                .store(&TaskResult::success("t", json!(1)))
                .await
                .unwrap();
        });
        tokio::time::timeout(Duration::from_secs(5), rounds)
            .await
            .expect("two rounds of one task each");
        store
            .store(&TaskResult::new("t", TaskState::Started))
            .await
            .unwrap();
        let mut rx = finished.0.lock().await;
        assert!(
            rx.try_recv().is_err(),
            "a STARTED record is not a finished task"
        );
    }
}
