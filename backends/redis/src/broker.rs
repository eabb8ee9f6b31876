//! The Redis broker.

use std::{
    collections::HashSet,
    future::Future,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering as AtomicOrdering},
    },
    time::Duration,
};

use async_trait::async_trait;
use broker_core::{
    AckToken, Broker, Capabilities, Capacity, Counting, DEAD_LETTER_SUFFIX, DeadLetter,
    Deduplication, Delay, DeliveryGuarantee, Error, ErrorKind, LeaseExtension, Look, Message,
    NackAction, Operation, Ordering, Persistence, QueueCounts, Received, Redelivery, Result,
    StaleTokens, dead_letter_queue, is_dead_letter_queue, wait_for_work,
};
use redis::{Value, aio::ConnectionManager};
use tokio::{task::JoinHandle, time::Instant};

use crate::{
    BACKEND, RedisConfig, connect, envelope,
    error::{self, from_redis, has_code},
    layout::Keys,
    scripts::SCRIPTS,
    wakeups::{self, Wakeups},
};

/// Messages per publish or receive call.
pub const MAX_BATCH: usize = 100;
/// The largest message accepted, in [`Message::encoded_size`] bytes.
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
/// The longest lease one extension may set.
pub const MAX_LEASE: Duration = Duration::from_secs(24 * 3600);
/// The longest delay accepted.
pub const MAX_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);
/// How long an empty receive sleeps at most between two looks at its queue when no wake-up
/// arrives (a safety net: publishes, returns and dead-letters announce themselves).
const IDLE_RECHECK: Duration = Duration::from_millis(250);
/// Longest queue name; names may not contain `"`, `\` or control characters (they are written
/// into kombu's JSON entries verbatim).
const MAX_QUEUE_NAME: usize = 512;

/// A broker on one Redis database, in kombu's key layout (see the crate documentation).
///
/// Each value holds one multiplexed connection (reconnecting by itself) and, from its first
/// receive on, one subscription for wake-ups (a broker that only publishes never subscribes).
/// Cloning is not offered; share it as `Arc<dyn Broker>`.
///
/// What a caller may rely on, beyond [`Broker`]:
/// - taking a message and recording its lease is one atomic script; the lease counts from
///   receipt on the server's clock;
/// - expired leases are restored by receiving consumers (any queue's receive restores every
///   queue's expired leases, inside the same atomic script), marked redelivered;
/// - a message that comes back takes its original place in publish order; delayed messages
///   join the back of the queue when they fall due;
/// - a token is valid only for the lease it was handed out with: after the message was handed
///   out again its old token gives `LeaseLost`.
#[derive(Debug)]
pub struct RedisBroker {
    conn: RwLock<Option<ConnectionManager>>,
    closed: AtomicBool,
    keys: Keys,
    config: RedisConfig,
    capabilities: Capabilities,
    client: redis::Client,
    wakeups: Arc<Wakeups>,
    listener: Mutex<Option<JoinHandle<()>>>,
    exhausted_reason: String,
    /// The queues this handle declared: declared again when their binding vanishes.
    declared: Mutex<HashSet<String>>,
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        self.stop_listening();
    }
}

/// A parsed reply of the receive script.
struct Batch {
    server_now_ms: i64,
    next_event_ms: i64,
    /// Each delivery's tag and unacked entry (see [`envelope::in_entry`]).
    items: Vec<(String, Vec<u8>)>,
}

impl RedisBroker {
    /// Connects, and asks the server whether it keeps an fsynced append-only file (the one case
    /// declared [`Persistence::Durable`]).
    ///
    /// # Errors
    /// `Configuration` for a bad URL or setting, `Connection` when the server cannot be
    /// reached (retryable). Errors never contain the password.
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        let client = connect::client(&config)?;
        let mut conn = connect::manager(client.clone(), &config).await?;
        let persistence = server_persistence(&mut conn).await;
        let keys = Keys::new(config.key_prefix.clone());
        let wakeups = Arc::new(Wakeups::default());
        let exhausted_reason = serde_json::Value::from(format!(
            "received {} times without an ack",
            config.max_receives
        ))
        .to_string();
        Ok(Self {
            conn: RwLock::new(Some(conn)),
            closed: AtomicBool::new(false),
            capabilities: capabilities(&config, persistence),
            keys,
            config,
            client,
            wakeups,
            listener: Mutex::new(None),
            exhausted_reason,
            declared: Mutex::default(),
        })
    }

    /// The configuration it was opened with.
    #[must_use]
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The key names it uses.
    #[must_use]
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn conn(&self, operation: Operation) -> Result<ConnectionManager> {
        if self.closed.load(AtomicOrdering::Acquire) {
            return Err(error::closed(operation));
        }
        self.conn
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| error::closed(operation))
    }

    /// Subscribes to wake-ups unless already subscribed (or closed).
    fn listen_for_wake_ups(&self) {
        let mut listener = self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if listener.is_none() && !self.closed.load(AtomicOrdering::Acquire) {
            *listener = Some(wakeups::listen(
                self.client.clone(),
                self.keys.wake_channel(),
                self.wakeups.clone(),
            ));
        }
    }

    fn stop_listening(&self) {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(listener) = listener {
            listener.abort();
        }
    }

    fn visibility_ms(&self) -> u64 {
        millis(self.config.visibility_timeout)
    }

    async fn take(&self, queue: &str, max: usize) -> Result<Batch> {
        self.redeclaring(queue, || self.take_once(queue, max)).await
    }

    /// Runs `call` on `queue`. When the queue's binding is gone although this handle declared
    /// the queue (a Redis restarted without its data: kombu's layout needs no declaration, and
    /// neither do clients that declared before the restart), declares it again and runs
    /// `call` once more. A queue this handle never declared stays `QueueNotFound`.
    async fn redeclaring<T, F, Fut>(&self, queue: &str, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        match call().await {
            Err(err) if err.kind() == ErrorKind::QueueNotFound && self.declared(queue) => {
                tracing::warn!(
                    queue,
                    "redis: the queue's declaration is gone (a restart without data?); declaring it again"
                );
                self.declare_queue(queue).await?;
                call().await
            }
            outcome => outcome,
        }
    }

    async fn publish_once(&self, queue: &str, batch: &[Message]) -> Result<()> {
        let mut conn = self.conn(Operation::Publish)?;

        let mut invocation = SCRIPTS.publish.prepare_invoke();
        invocation
            .key(self.keys.binding(queue))
            .key(self.keys.queue(queue))
            .key(self.keys.delayed(queue))
            .key(self.keys.sequence())
            .arg(self.keys.prefix())
            .arg(queue)
            .arg(millis(self.config.dedup_window));
        for message in batch {
            let tag = uuid::Uuid::new_v4().to_string();
            let tail = envelope::encode_tail(message, &tag, queue).map_err(|e| {
                Error::new(ErrorKind::Codec, BACKEND, Operation::Publish, e.to_string())
            })?;
            let delay = message.delay.map_or(0, millis);
            invocation
                .arg(tail)
                .arg(delay)
                .arg(message.deduplication_id.as_deref().unwrap_or(""));
        }
        invocation
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(|e| self.script_error(Operation::Publish, queue, &e))?;
        Ok(())
    }

    fn declared(&self, queue: &str) -> bool {
        self.declared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(queue)
    }

    async fn take_once(&self, queue: &str, max: usize) -> Result<Batch> {
        let mut conn = self.conn(Operation::Receive)?;
        let reply: Value = SCRIPTS
            .receive
            .key(self.keys.binding(queue))
            .key(self.keys.queue(queue))
            .key(self.keys.unacked())
            .key(self.keys.unacked_index())
            .key(self.keys.delayed(queue))
            .key(self.keys.sequence())
            .arg(self.keys.prefix())
            .arg(queue)
            .arg(max)
            .arg(self.visibility_ms())
            .arg(self.config.max_receives)
            .arg(&self.exhausted_reason)
            .arg(DEAD_LETTER_SUFFIX)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.script_error(Operation::Receive, queue, &e))?;
        parse_batch(reply)
    }

    /// One look at `queue` for a waiting receive: takes up to `capacity` messages, read now.
    /// When nothing was taken, names the moment to look again: the next delayed message or
    /// lease end, and at the latest [`IDLE_RECHECK`] from now.
    async fn look(&self, queue: &str, capacity: &Capacity<'_>) -> Result<Look> {
        let batch = self.take(queue, capacity.now()).await?;
        let now = Instant::now();
        if batch.items.is_empty() {
            let mut again_at = now + IDLE_RECHECK;
            if batch.next_event_ms >= 0 {
                let ms = (batch.next_event_ms - batch.server_now_ms).max(1);
                let event = now + Duration::from_millis(ms.unsigned_abs());
                again_at = again_at.min(event);
            }
            return Ok(Look::Nothing {
                again_at: Some(again_at),
            });
        }
        let mut out = Vec::with_capacity(batch.items.len());
        for (tag, entry) in batch.items {
            let decoded = envelope::in_entry(&entry, queue)
                .ok_or_else(|| "unacked entry is not kombu's array".to_owned())
                .and_then(|raw| envelope::decode(&tag, raw));
            match decoded {
                Ok(received) => out.push(received),
                Err(why) => {
                    let receives = raw_receives(&entry);
                    self.bury_undecodable(queue, &tag, receives, &why).await;
                }
            }
        }
        if out.is_empty() {
            // Only undecodable messages, now out of the way: look again at once.
            return Ok(Look::Nothing {
                again_at: Some(now),
            });
        }
        Ok(Look::Taken(out))
    }

    fn script_error(&self, operation: Operation, queue: &str, err: &redis::RedisError) -> Error {
        if has_code(err, "NOQUEUE") {
            error::queue_not_found(operation, queue)
        } else {
            from_redis(operation, err)
        }
    }

    /// Sends an envelope nobody can decode to the dead-letter queue, so it stops coming back.
    /// In a dead-letter queue, which has none, it stays leased and comes back after its lease.
    async fn bury_undecodable(&self, queue: &str, tag: &str, receives: u32, why: &str) {
        if is_dead_letter_queue(queue) {
            tracing::error!(tag, %why, queue, "redis: undecodable message in a dead-letter queue; it stays there");
            return;
        }
        let token = envelope::token(tag, receives);
        let action = NackAction::DeadLetter {
            reason: format!("undecodable message: {why}"),
        };
        tracing::error!(tag, %why, "redis: dead-lettering an undecodable message");
        if let Err(err) = self.settle_one(&token, &action).await {
            tracing::warn!(tag, error = %err, "redis: could not dead-letter an undecodable message");
        }
    }

    async fn settle_one(&self, token: &AckToken, action: &NackAction) -> Result<()> {
        let (tag, receives) = parse(token, Operation::Nack)?;
        let (how, delay) = match action {
            NackAction::Requeue => ("requeue", 0),
            NackAction::RequeueAfter(delay) if delay.is_zero() => ("requeue", 0),
            NackAction::RequeueAfter(delay) => ("delay", millis(*delay)),
            NackAction::DeadLetter { .. } => ("dead", 0),
        };
        let reason = match action {
            NackAction::DeadLetter { reason } => serde_json::Value::from(reason.as_str()),
            _ => serde_json::Value::from(""),
        };
        let mut conn = self.conn(Operation::Nack)?;
        let done: i64 = SCRIPTS
            .nack
            .key(self.keys.unacked())
            .key(self.keys.unacked_index())
            .arg(self.keys.prefix())
            .arg(tag)
            .arg(receives)
            .arg(self.visibility_ms())
            .arg(how)
            .arg(delay)
            .arg(self.config.max_receives)
            .arg(&self.exhausted_reason)
            .arg(reason.to_string())
            .arg(DEAD_LETTER_SUFFIX)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| from_redis(Operation::Nack, &e))?;
        if done == 1 {
            Ok(())
        } else {
            Err(error::lease_lost(
                Operation::Nack,
                format!("delivery {tag} is no longer leased to this consumer"),
            ))
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn parse(token: &AckToken, operation: Operation) -> Result<(&str, u32)> {
    envelope::parse_token(token).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            BACKEND,
            operation,
            "not a redis ack token",
        )
    })
}

fn parse_batch(reply: Value) -> Result<Batch> {
    let bad = || {
        error::protocol(
            Operation::Receive,
            "unexpected reply from the receive script",
        )
    };
    let Value::Array(values) = reply else {
        return Err(bad());
    };
    let mut values = values.into_iter();
    let mut int = || match values.next() {
        Some(Value::Int(n)) => Ok(n),
        _ => Err(bad()),
    };
    let server_now_ms = int()?;
    let next_event_ms = int()?;
    let mut items = Vec::new();
    loop {
        match (values.next(), values.next()) {
            (None, _) => break,
            (Some(Value::BulkString(tag)), Some(Value::BulkString(env))) => {
                items.push((String::from_utf8(tag).map_err(|_| bad())?, env));
            }
            _ => return Err(bad()),
        }
    }
    Ok(Batch {
        server_now_ms,
        next_event_ms,
        items,
    })
}

/// Durable only when the server keeps an append-only file fsynced on every write; a server
/// that hides its configuration (CONFIG not allowed) is taken as transient.
async fn server_persistence(conn: &mut ConnectionManager) -> Persistence {
    async fn setting(conn: &mut ConnectionManager, name: &str) -> Option<String> {
        let pair: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query_async(conn)
            .await
            .ok()?;
        pair.into_iter().nth(1)
    }
    let aof = setting(conn, "appendonly").await;
    let fsync = setting(conn, "appendfsync").await;
    if aof.as_deref() == Some("yes") && fsync.as_deref() == Some("always") {
        Persistence::Durable
    } else {
        Persistence::Transient
    }
}

fn capabilities(config: &RedisConfig, persistence: Persistence) -> Capabilities {
    Capabilities {
        delivery: DeliveryGuarantee::AtLeastOnce,
        ordering: Ordering::PerQueue,
        deduplication: Deduplication::ById {
            window: config.dedup_window,
        },
        redelivery: Redelivery::Lease {
            default_lease: config.visibility_timeout,
            extension: LeaseExtension::UpTo { max: MAX_LEASE },
        },
        // Every settle script checks that the lease is current, not only that it is recorded.
        stale_tokens: StaleTokens::Rejected,
        delay: Delay::UpTo { max: MAX_DELAY },
        dead_letter: DeadLetter::Queue {
            max_receives: config.max_receives,
        },
        persistence,
        counting: Counting::Exact,
        max_batch: MAX_BATCH,
        max_payload: MAX_PAYLOAD,
        ..Capabilities::minimal(BACKEND)
    }
}

fn valid_queue_name(queue: &str) -> bool {
    !queue.is_empty()
        && queue.len() <= MAX_QUEUE_NAME
        && !queue
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
}

#[async_trait]
impl Broker for RedisBroker {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn declare_queue(&self, queue: &str) -> Result<()> {
        if !valid_queue_name(queue) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                BACKEND,
                Operation::DeclareQueue,
                format!(
                    "queue names are 1 to {MAX_QUEUE_NAME} bytes without quotes, backslashes or control characters"
                ),
            ));
        }
        let mut conn = self.conn(Operation::DeclareQueue)?;
        let mut pipe = redis::pipe();
        for name in std::iter::once(queue.to_owned()).chain(dead_letter_queue(queue)) {
            pipe.sadd(self.keys.binding(&name), Keys::binding_member(&name))
                .ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| from_redis(Operation::DeclareQueue, &e))?;
        self.declared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(queue.to_owned());
        Ok(())
    }

    async fn delete_queue(&self, queue: &str) -> Result<()> {
        let mut conn = self.conn(Operation::DeleteQueue)?;
        let doomed: Vec<String> = std::iter::once(queue.to_owned())
            .chain(dead_letter_queue(queue))
            .flat_map(|q| {
                [
                    self.keys.binding(&q),
                    self.keys.queue(&q),
                    self.keys.delayed(&q),
                ]
            })
            .collect();
        redis::cmd("DEL")
            .arg(doomed)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| from_redis(Operation::DeleteQueue, &e))?;
        self.declared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(queue);
        Ok(())
    }

    async fn publish(&self, queue: &str, batch: &[Message]) -> Result<()> {
        self.redeclaring(queue, || self.publish_once(queue, batch))
            .await
    }

    /// Waits on the queue's wake-ups from the prefix's wake channel (publishes, returns and
    /// dead-letter moves announce themselves), looking again when the next delayed message or
    /// lease end is due and at least every [`IDLE_RECHECK`], in case an announcement was lost.
    async fn receive_up_to(
        &self,
        queue: &str,
        capacity: &Capacity<'_>,
        wait: Duration,
    ) -> Result<Vec<Received>> {
        self.listen_for_wake_ups();
        let wake_up = self.wakeups.get(queue);
        wait_for_work(&wake_up, wait, || self.look(queue, capacity)).await
    }

    async fn ack(&self, _queue: &str, tokens: &[AckToken]) -> Result<()> {
        if tokens.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn(Operation::Ack)?;
        let mut invocation = SCRIPTS.ack.prepare_invoke();
        invocation
            .key(self.keys.unacked())
            .key(self.keys.unacked_index())
            .arg(self.visibility_ms());
        for token in tokens {
            let (tag, receives) = parse(token, Operation::Ack)?;
            invocation.arg(tag).arg(receives);
        }
        let lost: usize = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| from_redis(Operation::Ack, &e))?;
        if lost == 0 {
            Ok(())
        } else {
            Err(error::lease_lost(
                Operation::Ack,
                format!(
                    "{lost} of {} deliveries were no longer leased to this consumer (the others were acked)",
                    tokens.len()
                ),
            ))
        }
    }

    async fn nack(&self, _queue: &str, token: &AckToken, action: &NackAction) -> Result<()> {
        self.settle_one(token, action).await
    }

    async fn extend_lease(&self, _queue: &str, token: &AckToken, lease: Duration) -> Result<()> {
        let (tag, receives) = parse(token, Operation::ExtendLease)?;
        let mut conn = self.conn(Operation::ExtendLease)?;
        let done: i64 = SCRIPTS
            .extend
            .key(self.keys.unacked())
            .key(self.keys.unacked_index())
            .arg(tag)
            .arg(receives)
            .arg(millis(lease))
            .arg(self.visibility_ms())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| from_redis(Operation::ExtendLease, &e))?;
        if done == 1 {
            Ok(())
        } else {
            Err(error::lease_lost(
                Operation::ExtendLease,
                format!("delivery {tag} is no longer leased to this consumer"),
            ))
        }
    }

    /// Ready is the list's length and delayed the delayed set's size; in flight scans every
    /// lease under the key prefix (see [`scripts::COUNT`]). Expired leases not yet restored
    /// count as in flight, due delayed messages not yet moved as delayed.
    async fn count(&self, queue: &str) -> Result<QueueCounts> {
        let mut conn = self.conn(Operation::Count)?;
        let (ready, in_flight, delayed): (u64, u64, u64) = SCRIPTS
            .count
            .key(self.keys.binding(queue))
            .key(self.keys.queue(queue))
            .key(self.keys.unacked())
            .key(self.keys.delayed(queue))
            .arg(queue)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.script_error(Operation::Count, queue, &e))?;
        Ok(QueueCounts {
            ready,
            in_flight: Some(in_flight),
            delayed: Some(delayed),
        })
    }

    async fn close(&self) -> Result<()> {
        self.closed.store(true, AtomicOrdering::Release);
        self.stop_listening();
        // Waiting receives look again and fail with `Closed`.
        self.wakeups.wake_all();
        // Dropping the last handle closes the connection once in-flight calls finish.
        self.conn
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        Ok(())
    }
}

/// The receive count the script wrote at the head of an envelope, or of the unacked entry that
/// holds it (0 when absent).
fn raw_receives(raw: &[u8]) -> u32 {
    let head = &raw[..raw.len().min(96)];
    let text = String::from_utf8_lossy(head);
    text.split("\"x-receives\":")
        .nth(1)
        .and_then(|rest| {
            rest.trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_that_would_break_kombus_json_are_refused() {
        assert!(valid_queue_name("celery"));
        assert!(valid_queue_name("ical.high-priority:v2"));
        assert!(!valid_queue_name(""));
        assert!(!valid_queue_name("a\"b"));
        assert!(!valid_queue_name("a\\b"));
        assert!(!valid_queue_name("a\nb"));
    }

    #[test]
    fn receive_count_is_read_from_the_envelope_head() {
        assert_eq!(
            raw_receives(br#"{"x-seq":4,"x-receives":3,"properties":{}}"#),
            3
        );
        assert_eq!(raw_receives(b"garbage"), 0);
    }

    #[test]
    fn declared_capabilities_follow_the_configuration() {
        let config = RedisConfig {
            max_receives: 4,
            visibility_timeout: Duration::from_secs(7),
            ..RedisConfig::default()
        };
        let caps = capabilities(&config, Persistence::Transient);
        assert_eq!(caps.backend, "redis");
        assert_eq!(caps.dead_letter, DeadLetter::Queue { max_receives: 4 });
        assert_eq!(
            caps.redelivery,
            Redelivery::Lease {
                default_lease: Duration::from_secs(7),
                extension: LeaseExtension::UpTo { max: MAX_LEASE }
            }
        );
        assert_eq!(caps.ordering, Ordering::PerQueue);
    }
}
