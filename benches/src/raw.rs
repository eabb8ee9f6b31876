//! The hand-written client each backend is measured against: the same broker calls, in the
//! same wire format, without the framework.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

/// One message as a hand-written producer holds it before encoding it for the wire.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// The body.
    pub payload: Vec<u8>,
    /// The application headers, as the JSON text of an object.
    pub headers: String,
    /// The body's media type.
    pub content_type: &'static str,
}

impl RawMessage {
    /// The headers as a map, for wire formats that carry each header on its own.
    ///
    /// # Panics
    /// When the headers are not the JSON text of an object.
    #[must_use]
    pub fn header_map(&self) -> Map<String, Value> {
        serde_json::from_str(&self.headers).expect("raw headers are a JSON object")
    }
}

/// What a minimal Celery worker reads from a received message to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTask {
    /// The task's id (the `id` header).
    pub id: String,
    /// The task's name (the `task` header).
    pub name: String,
    /// The body: Celery's `[args, kwargs, embed]`.
    pub body: Vec<u8>,
}

impl RawTask {
    /// Reads the task's id and name from its headers' JSON text.
    ///
    /// # Panics
    /// When the headers have no `id` or `task` text.
    #[must_use]
    pub fn from_json_headers(headers: &str, body: Vec<u8>) -> Self {
        #[derive(serde::Deserialize)]
        struct Names {
            id: String,
            task: String,
        }
        let names: Names = serde_json::from_str(headers).expect("a task's id and name");
        Self {
            id: names.id,
            name: names.task,
            body,
        }
    }
}

/// The baseline side of every benchmark: a backend's broker driven directly through its
/// client library.
///
/// The queues it is used on are declared by the framework beforehand, so that both sides
/// work on queues with the same settings. Calls on one queue come from one task at a time,
/// except in the end-to-end worker, which receives from one task and acks from another.
#[async_trait]
pub trait RawClient: Send + Sync + 'static {
    /// A received message, held until it is acked.
    type Received: Send + 'static;

    /// Publishes `messages` to `queue` and returns once the broker has taken every one (as
    /// the framework's publish does: confirmed, committed or acknowledged by the broker).
    async fn publish(&self, queue: &str, messages: Vec<RawMessage>);

    /// Takes up to `max` messages from `queue`, waiting at most about `wait` when none is
    /// there. May return fewer than `max`, or none.
    async fn receive(&self, queue: &str, max: usize, wait: Duration) -> Vec<Self::Received>;

    /// Acknowledges `received`, all taken from `queue` by this client, in any order.
    async fn ack(&self, queue: &str, received: Vec<Self::Received>);

    /// What a worker reads from `received` to run it as a Celery task.
    fn task(&self, received: &Self::Received) -> RawTask;

    /// Writes a task's state the way the backend's result store does; nothing for a
    /// backend that keeps no results.
    async fn store_result(&self, task_id: &str, state: &str);

    /// Empties `queue` between samples, untimed, so that each sample starts from an empty
    /// queue.
    async fn clear(&self, queue: &str);
}
