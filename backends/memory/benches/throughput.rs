//! Throughput of the in-process broker beside the floor any in-process queue is measured
//! against: a locked `VecDeque` per queue with a wake-up, and a map for results. The groups
//! are the shared harness's (`broker_benches::harness`).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use broker_benches::{
    harness,
    raw::{RawClient, RawMessage, RawTask},
    target::BenchTarget,
};
use broker_core::{Broker, Queue, ResultStore};
use broker_memory::{MemoryBroker, MemoryConfig, MemoryResultStore};
use tokio::sync::Notify;

/// One in-process broker and store shared by every "connection", as in one process.
struct Memory {
    broker: Arc<dyn Broker>,
    results: Arc<dyn ResultStore>,
    raw: Floor,
}

#[async_trait]
impl BenchTarget for Memory {
    type Raw = Floor;

    fn name(&self) -> &'static str {
        "memory"
    }

    async fn broker(&self) -> Arc<dyn Broker> {
        self.broker.clone()
    }

    async fn result_store(&self) -> Option<Arc<dyn ResultStore>> {
        Some(self.results.clone())
    }

    async fn raw(&self) -> Self::Raw {
        self.raw.clone()
    }

    /// Takes and acks everything: the baseline's queues are not the broker's.
    async fn clear(&self, queue: &Queue, _raw: &Floor) {
        loop {
            let got = queue.receive(100, Duration::ZERO).await.expect("receive");
            if got.is_empty() {
                return;
            }
            queue.ack_all(got).await.expect("ack");
        }
    }
}

/// Queues as a hand-written program would keep them in memory, shared by every handle.
#[derive(Clone, Default)]
struct Floor(Arc<Queues>);

#[derive(Default)]
struct Queues {
    queues: Mutex<HashMap<String, VecDeque<RawMessage>>>,
    arrived: Notify,
    results: Mutex<HashMap<String, String>>,
}

impl Floor {
    fn take(&self, queue: &str, max: usize) -> Vec<RawMessage> {
        let mut queues = self.0.queues.lock().unwrap();
        let waiting = queues.entry(queue.to_owned()).or_default();
        let n = max.min(waiting.len());
        waiting.drain(..n).collect()
    }
}

#[async_trait]
impl RawClient for Floor {
    type Received = RawMessage;

    async fn publish(&self, queue: &str, messages: Vec<RawMessage>) {
        self.0
            .queues
            .lock()
            .unwrap()
            .entry(queue.to_owned())
            .or_default()
            .extend(messages);
        self.0.arrived.notify_waiters();
    }

    async fn receive(&self, queue: &str, max: usize, wait: Duration) -> Vec<RawMessage> {
        let arrived = self.0.arrived.notified();
        tokio::pin!(arrived);
        // Registered before looking, so that a publish in between still wakes it.
        arrived.as_mut().enable();
        let got = self.take(queue, max);
        if !got.is_empty() {
            return got;
        }
        let _ = tokio::time::timeout(wait, arrived).await;
        self.take(queue, max)
    }

    async fn ack(&self, _queue: &str, received: Vec<RawMessage>) {
        drop(received);
    }

    fn task(&self, received: &RawMessage) -> RawTask {
        RawTask::from_json_headers(&received.headers, received.payload.clone())
    }

    async fn store_result(&self, task_id: &str, state: &str) {
        self.0
            .results
            .lock()
            .unwrap()
            .insert(task_id.to_owned(), state.to_owned());
    }

    async fn clear(&self, queue: &str) {
        self.0.queues.lock().unwrap().remove(queue);
    }
}

fn main() {
    harness::run(async {
        Memory {
            broker: Arc::new(MemoryBroker::new(MemoryConfig::default())),
            results: Arc::new(MemoryResultStore::new(Duration::from_secs(600))),
            raw: Floor::default(),
        }
    });
}
