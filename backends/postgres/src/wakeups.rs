//! Wake-ups for waiting receives: one `LISTEN` connection per broker, fanned out per queue.
//!
//! Publishes (and requeues, and dead-letter moves) call `pg_notify(<schema>.messages, queue)`
//! in the statement or transaction that stores the message, so PostgreSQL delivers the
//! notification when, and only when, the message becomes visible. The listener task wakes
//! every receive waiting on that queue; they then claim with `SKIP LOCKED`, so a wake-up that
//! finds nothing costs one query and never a wrong delivery.
//!
//! A notification can be lost (the listener reconnecting, the listener not started yet): each
//! waiter therefore also wakes at the poll interval and at the next moment a delayed or leased
//! message of its queue becomes available, and every waiter is woken after a reconnect.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::{sync::Notify, task::JoinHandle, time::Instant};

/// How long starting to listen may take before receives fall back to polling.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Queue names to the signal their waiters await.
#[derive(Debug, Default)]
struct Signals {
    by_queue: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Signals {
    fn get(&self, queue: &str) -> Arc<Notify> {
        let mut map = self.by_queue.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(signal) = map.get(queue) {
            return signal.clone();
        }
        if map.len() >= 1024 {
            // Forget queues nobody waits on any more.
            map.retain(|_, signal| Arc::strong_count(signal) > 1);
        }
        let signal = Arc::new(Notify::new());
        map.insert(queue.to_owned(), signal.clone());
        signal
    }

    fn wake(&self, queue: &str) {
        let map = self.by_queue.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(signal) = map.get(queue) {
            signal.notify_waiters();
        }
    }

    fn wake_all(&self) {
        let map = self.by_queue.lock().unwrap_or_else(PoisonError::into_inner);
        for signal in map.values() {
            signal.notify_waiters();
        }
    }
}

#[derive(Debug)]
enum State {
    /// Not listening; do not try again before `retry_after`.
    Idle { retry_after: Option<Instant> },
    /// The task receiving notifications.
    Running(JoinHandle<()>),
    /// The broker was closed.
    Closed,
}

/// The broker's wake-up service. Starts listening on first use.
#[derive(Debug)]
pub(crate) struct Wakeups {
    channel: String,
    poll_interval: Duration,
    /// A pool of one connection, apart from the broker's pool so that the listener never
    /// takes a connection its callers need (and works with a caller's pool too).
    pool: PgPool,
    signals: Arc<Signals>,
    state: tokio::sync::Mutex<State>,
}

impl Wakeups {
    /// Must be called inside a Tokio runtime (the lazy pool registers there).
    pub(crate) fn new(options: PgConnectOptions, channel: String, poll_interval: Duration) -> Self {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            // A receive waits for LISTEN to start; when the server is unreachable it should
            // soon fall back to polling (which reports the error) rather than hang here.
            .acquire_timeout(LISTEN_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options);
        Self {
            channel,
            poll_interval,
            pool,
            signals: Arc::default(),
            state: tokio::sync::Mutex::new(State::Idle { retry_after: None }),
        }
    }

    /// The signal woken when something may have arrived in `queue`. Listening has started
    /// (the `LISTEN` completed) when this returns, unless it failed, in which case the caller
    /// relies on polling and listening is retried after the poll interval.
    pub(crate) async fn signal(&self, queue: &str) -> Arc<Notify> {
        let signal = self.signals.get(queue);
        self.ensure_listening().await;
        signal
    }

    async fn ensure_listening(&self) {
        let mut state = self.state.lock().await;
        match &*state {
            State::Running(task) if !task.is_finished() => return,
            State::Idle {
                retry_after: Some(at),
            } if Instant::now() < *at => return,
            State::Closed => return,
            _ => {}
        }
        match listen(&self.pool, &self.channel).await {
            Ok(listener) => {
                let task = tokio::spawn(run(
                    listener,
                    self.pool.clone(),
                    self.channel.clone(),
                    self.signals.clone(),
                    self.poll_interval,
                ));
                *state = State::Running(task);
                // Anything published before LISTEN took effect was missed: look again.
                self.signals.wake_all();
            }
            Err(err) => {
                tracing::warn!(
                    error = %broker_core::urls::redact(&err.to_string()),
                    "cannot LISTEN; waiting receives fall back to polling"
                );
                *state = State::Idle {
                    retry_after: Some(Instant::now() + self.poll_interval),
                };
            }
        }
    }

    /// Stops listening for good and wakes every waiter.
    pub(crate) async fn close(&self) {
        let mut state = self.state.lock().await;
        if let State::Running(task) = &*state {
            task.abort();
        }
        *state = State::Closed;
        drop(state);
        self.pool.close().await;
        self.signals.wake_all();
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        if let State::Running(task) = self.state.get_mut() {
            task.abort();
        }
    }
}

/// The first pause after the listener failed; it doubles up to the poll interval.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Opens the listening connection.
async fn listen(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// Receives notifications until the listener's pool is closed or the task is aborted. When
/// the connection fails (the server went away, the backend was terminated) it opens a new one
/// with backoff, listens again, and then wakes every waiter, since notifications sent in
/// between are lost.
async fn run(
    mut listener: PgListener,
    pool: PgPool,
    channel: String,
    signals: Arc<Signals>,
    poll_interval: Duration,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => signals.wake(notification.payload()),
            // sqlx re-established the connection and listens again.
            Ok(None) => signals.wake_all(),
            Err(sqlx::Error::PoolClosed) => return,
            Err(err) => {
                tracing::warn!(
                    error = %broker_core::urls::redact(&err.to_string()),
                    "LISTEN connection failed; reconnecting"
                );
                signals.wake_all();
                let mut backoff = FIRST_BACKOFF;
                listener = loop {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(poll_interval.max(FIRST_BACKOFF));
                    match listen(&pool, &channel).await {
                        Ok(listener) => break listener,
                        Err(sqlx::Error::PoolClosed) => return,
                        Err(err) => tracing::warn!(
                            error = %broker_core::urls::redact(&err.to_string()),
                            "cannot LISTEN yet; retrying"
                        ),
                    }
                };
                signals.wake_all();
            }
        }
    }
}
