//! What a backend hands the harness: how to open its broker and result store through the
//! framework, and its hand-written baseline.

use std::sync::Arc;

use async_trait::async_trait;
use broker_core::{Broker, Queue, ResultStore};

use crate::raw::RawClient;

/// One backend under measurement.
#[async_trait]
pub trait BenchTarget: Send + Sync + 'static {
    /// The baseline client.
    type Raw: RawClient;

    /// The first part of every group name: `redis` gives `redis/publish`.
    fn name(&self) -> &'static str;

    /// A broker as a separate process would open it: a connection of its own where the
    /// backend has connections.
    async fn broker(&self) -> Arc<dyn Broker>;

    /// The backend's own result store, for the end-to-end worker; `None` for a broker that
    /// keeps no results, and then neither side stores any.
    async fn result_store(&self) -> Option<Arc<dyn ResultStore>>;

    /// A baseline client with connections of its own.
    async fn raw(&self) -> Self::Raw;

    /// Empties the framework's `queue` between publish samples, untimed. The default lets
    /// the baseline client do it, for backends where both sides reach the same queues.
    async fn clear(&self, queue: &Queue, raw: &Self::Raw) {
        raw.clear(queue.name()).await;
    }

    /// Removes what the run created (queues are deleted by the harness).
    async fn clean_up(&self) {}
}
