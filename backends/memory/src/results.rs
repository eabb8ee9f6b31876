//! The in-process result store.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock, Weak},
    time::Duration,
};

use async_trait::async_trait;
use broker_core::{Result, ResultStore, TaskResult};
use tokio::time::Instant;

use crate::expiry::ExpiringMap;

type Records = Mutex<ExpiringMap<TaskResult>>;

/// Task results kept in this process; each record expires a fixed time after it was written.
///
/// A write costs the same however many records are held: expired records are removed a
/// bounded number per write (see [`ExpiringMap`]), never by scanning them all.
#[derive(Debug)]
pub struct MemoryResultStore {
    records: Arc<Records>,
    expires: Duration,
}

impl MemoryResultStore {
    /// A store of its own whose records expire `expires` after each write.
    #[must_use]
    pub fn new(expires: Duration) -> Self {
        Self {
            records: Arc::default(),
            expires,
        }
    }

    /// The store called `name` in this process, shared by every store opened under that name.
    #[must_use]
    pub fn named(name: &str, expires: Duration) -> Self {
        static NAMED: OnceLock<Mutex<HashMap<String, Weak<Records>>>> = OnceLock::new();
        let mut named = NAMED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let records = named.get(name).and_then(Weak::upgrade).unwrap_or_else(|| {
            let records = Arc::<Records>::default();
            named.insert(name.to_owned(), Arc::downgrade(&records));
            records
        });
        Self { records, expires }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ExpiringMap<TaskResult>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ResultStore for MemoryResultStore {
    fn backend(&self) -> &'static str {
        crate::BACKEND
    }

    async fn store(&self, result: &TaskResult) -> Result<()> {
        let now = Instant::now();
        self.lock()
            .insert(&result.task_id, result.clone(), now + self.expires, now);
        Ok(())
    }

    async fn fetch(&self, task_id: &str) -> Result<Option<TaskResult>> {
        Ok(self.lock().get(task_id, Instant::now()).cloned())
    }

    async fn forget(&self, task_id: &str) -> Result<()> {
        self.lock().remove(task_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use broker_core::TaskState;

    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[tokio::test]
    async fn a_write_costs_the_same_with_100_000_live_records() {
        let store = MemoryResultStore::new(DAY);
        for n in 0..100_000 {
            store
                .store(&TaskResult::new(format!("task-{n}"), TaskState::Started))
                .await
                .unwrap();
        }
        let before = store.lock().examined();
        for n in 0..1_000 {
            store
                .store(&TaskResult::success(format!("task-{n}"), n.into()))
                .await
                .unwrap();
        }
        let per_write = (store.lock().examined() - before) as f64 / 1_000.0;
        assert!(per_write <= 2.0, "{per_write} records examined per write");
        let first = store.fetch("task-0").await.unwrap().unwrap();
        assert_eq!(first.status, TaskState::Success);
        let last = store.fetch("task-99999").await.unwrap().unwrap();
        assert_eq!(last.status, TaskState::Started);
    }

    #[tokio::test]
    async fn an_expired_record_is_not_fetched() {
        let store = MemoryResultStore::new(Duration::ZERO);
        store.store(&TaskResult::pending("t")).await.unwrap();
        assert_eq!(store.fetch("t").await.unwrap(), None);
    }
}
