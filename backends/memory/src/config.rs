//! Settings of the in-process broker and result store.

use std::time::Duration;

/// Settings of the in-process broker and result store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConfig {
    /// The instance: every broker opened under one name in this process shares its queues
    /// while one of them is alive. `None` (the default) makes a broker shared with nobody.
    pub name: Option<String>,
    /// The lease a delivery gets at receipt. Default 30 s.
    pub visibility_timeout: Duration,
    /// Receives after which an unacked message is dead-lettered. Default 5.
    pub max_receives: u32,
    /// How long a deduplication id is remembered; zero turns deduplication off. Default 5
    /// minutes.
    pub dedup_window: Duration,
    /// How long a task result is kept (the result store). Default one day, as Celery does.
    pub result_expires: Duration,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            name: None,
            visibility_timeout: Duration::from_secs(30),
            max_receives: 5,
            dedup_window: Duration::from_secs(300),
            result_expires: Duration::from_secs(24 * 3600),
        }
    }
}
