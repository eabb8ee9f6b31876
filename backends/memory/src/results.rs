//! The in-process result store.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock, Weak},
    time::Duration,
};

use async_trait::async_trait;
use broker_core::{Result, ResultStore, TaskResult};
use tokio::time::Instant;

type Records = Mutex<HashMap<String, (TaskResult, Instant)>>;

/// Task results kept in this process; each record expires a fixed time after it was written.
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (TaskResult, Instant)>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ResultStore for MemoryResultStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn store(&self, result: &TaskResult) -> Result<()> {
        let now = Instant::now();
        let mut records = self.lock();
        if records.len() > 10_000 {
            records.retain(|_, (_, expires_at)| *expires_at > now);
        }
        records.insert(result.task_id.clone(), (result.clone(), now + self.expires));
        Ok(())
    }

    async fn fetch(&self, task_id: &str) -> Result<Option<TaskResult>> {
        let now = Instant::now();
        let mut records = self.lock();
        match records.get(task_id) {
            Some((_, expires_at)) if *expires_at <= now => {
                records.remove(task_id);
                Ok(None)
            }
            found => Ok(found.map(|(record, _)| record.clone())),
        }
    }

    async fn forget(&self, task_id: &str) -> Result<()> {
        self.lock().remove(task_id);
        Ok(())
    }
}
