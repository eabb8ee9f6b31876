//! Wake-ups: a receive that found its queue empty sleeps until a publish (or a returned
//! message) is announced on the prefix's wake channel, instead of polling.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use redis::Client;
use tokio::{sync::Notify, task::JoinHandle};

/// One [`Notify`] per queue this process waits on.
#[derive(Debug, Default)]
pub(crate) struct Wakeups {
    queues: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakeups {
    pub(crate) fn get(&self, queue: &str) -> Arc<Notify> {
        let mut queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        queues.entry(queue.to_owned()).or_default().clone()
    }

    fn wake(&self, queue: &[u8]) {
        let queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(notify) = std::str::from_utf8(queue).ok().and_then(|q| queues.get(q)) {
            notify.notify_waiters();
        }
    }

    pub(crate) fn wake_all(&self) {
        let queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for notify in queues.values() {
            notify.notify_waiters();
        }
    }
}

/// Listens on `channel` until aborted, reconnecting with backoff (50 ms doubling up to 2 s)
/// when the connection drops; after each (re)subscription every waiter is woken, since
/// announcements made while it was away were missed.
pub(crate) fn listen(client: Client, channel: String, wakeups: Arc<Wakeups>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            if let Ok(mut pubsub) = client.get_async_pubsub().await {
                if pubsub.subscribe(&channel).await.is_ok() {
                    backoff = Duration::from_millis(50);
                    wakeups.wake_all();
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        wakeups.wake(message.get_payload_bytes());
                    }
                    tracing::debug!("redis wake-up subscription dropped; reconnecting");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    })
}
