//! The PostgreSQL broker.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use broker_core::{
    AckToken, Broker, Capabilities, Capacity, Counting, DEAD_LETTER_REASON_HEADER, DeadLetter,
    Deduplication, Delay, DeliveryGuarantee, ErrorKind, Headers, LeaseExtension, Look, Message,
    NackAction, Operation, Ordering, Persistence, Properties, QueueCounts, Received, Redelivery,
    Result, StaleTokens, dead_letter_queue, wait_for_work,
};
use serde_json::{Map, Value, value::RawValue};
use sqlx::{PgConnection, PgPool, Row, postgres::PgRow, types::Json};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    BACKEND,
    config::PostgresConfig,
    error::{closed, error, from_sqlx},
    migrate::migrate,
    sql::{Statements, channel},
    wakeups::Wakeups,
};

/// The longest lease one extension may set.
const MAX_LEASE: Duration = Duration::from_secs(12 * 3600);
/// The longest delay accepted.
const MAX_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);
/// The most messages one publish or receive handles.
const MAX_BATCH: usize = 1000;
/// The largest message accepted, in bytes (payload, headers, properties and hints).
const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
/// A batch whose payloads add up to more than this is written with several statements in one
/// transaction, to stay far below PostgreSQL's 1 GB limit on one protocol message.
const STATEMENT_BYTES: usize = 64 * 1024 * 1024;
/// The longest queue name `declare_queue` accepts, in bytes (the name travels as a `NOTIFY`
/// payload, which must stay under 8000 bytes).
const MAX_QUEUE_NAME: usize = 1024;
/// How often publishes with deduplication ids also forget expired ids.
const DEDUP_PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest pause of a waiting receive between two looks at the table.
const MIN_PAUSE: Duration = Duration::from_millis(2);

/// A broker on PostgreSQL tables; see the crate documentation for its tables and guarantees.
///
/// Each value owns a connection pool (or shares a caller's, see
/// [`from_pool`](Self::from_pool)) and, once a receive has waited, one `LISTEN` connection.
/// Every method is safe to call concurrently. Dropping or [`close`](Broker::close)-ing it
/// leaves unacked deliveries leased until their leases end; then they are handed out again.
#[derive(Debug)]
pub struct PostgresBroker {
    pool: PgPool,
    owns_pool: bool,
    config: PostgresConfig,
    sql: Statements,
    channel: String,
    capabilities: Capabilities,
    closed: CancellationToken,
    wakeups: Wakeups,
    last_dedup_purge: Mutex<Instant>,
}

impl PostgresBroker {
    /// Connects to `config.url`, creates the schema and its tables or applies the migrations
    /// they lack (up to [`latest_version`](crate::latest_version)), and returns the broker.
    ///
    /// # Errors
    /// `Configuration` for a bad URL, schema or setting; `Connection` (retryable) when the
    /// server cannot be reached; the server's error when a migration fails.
    pub async fn connect(config: PostgresConfig) -> Result<Self> {
        config.validate(Operation::Connect)?;
        let pool = config.open_pool(Operation::Connect).await?;
        migrate(&pool, &config.schema, Operation::Connect).await?;
        Ok(Self::with_pool(pool, true, config))
    }

    /// A broker on a pool the caller opened (for example the application's own, so that
    /// [`publish_in`](Self::publish_in) shares its transactions). Runs the migrations.
    /// `config.url` and `pool_size` are not used; [`close`](Broker::close) leaves the pool
    /// open, since the caller owns it.
    ///
    /// # Errors
    /// `Configuration` for a bad schema or setting; the server's error when a migration fails.
    pub async fn from_pool(pool: PgPool, config: PostgresConfig) -> Result<Self> {
        config.validate(Operation::Connect)?;
        migrate(&pool, &config.schema, Operation::Connect).await?;
        Ok(Self::with_pool(pool, false, config))
    }

    fn with_pool(pool: PgPool, owns_pool: bool, config: PostgresConfig) -> Self {
        let capabilities = Capabilities {
            delivery: DeliveryGuarantee::AtLeastOnce,
            ordering: Ordering::PerQueue,
            deduplication: Deduplication::ById {
                window: config.dedup_window,
            },
            redelivery: Redelivery::Lease {
                default_lease: config.visibility_timeout,
                extension: LeaseExtension::UpTo { max: MAX_LEASE },
            },
            // A settle matches the row's current lease token, which changes when the row is
            // claimed again; an expired lease nobody claimed yet can still be settled.
            stale_tokens: StaleTokens::RejectedOnceRedelivered,
            delay: Delay::UpTo { max: MAX_DELAY },
            dead_letter: DeadLetter::Queue {
                max_receives: config.max_receives,
            },
            persistence: Persistence::Durable,
            counting: Counting::Exact,
            max_batch: MAX_BATCH,
            max_payload: MAX_PAYLOAD,
            ..Capabilities::minimal(BACKEND)
        };
        let channel = channel(&config.schema);
        let wakeups = Wakeups::new(
            (*pool.connect_options()).clone(),
            channel.clone(),
            config.poll_interval,
        );
        Self {
            sql: Statements::new(&config.schema),
            pool,
            owns_pool,
            channel,
            capabilities,
            closed: CancellationToken::new(),
            wakeups,
            last_dedup_purge: Mutex::new(Instant::now()),
            config,
        }
    }

    /// The pool this broker uses (for example to open a transaction for
    /// [`publish_in`](Self::publish_in)).
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The settings this broker was opened with.
    #[must_use]
    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    /// Publishes `messages` to `queue` inside the caller's transaction: the outbox pattern.
    ///
    /// The messages become visible to consumers when, and only when, the caller's transaction
    /// commits, together with whatever else it wrote; if it rolls back, nothing was enqueued.
    /// Waiting consumers (in any process) are woken by the commit, since the `NOTIFY` this
    /// sends is itself transactional. Pass `&mut *tx` for a `sqlx::Transaction`; with a bare
    /// connection outside a transaction each statement commits on its own.
    ///
    /// Unlike [`Broker::publish`], any number of messages may be passed (they are written in
    /// batches of the declared `max_batch`), and each is checked against the payload and delay
    /// limits here ([`Capabilities::check_publish`], as [`Queue`](broker_core::Queue) does),
    /// since no `Queue` did it.
    ///
    /// # Errors
    /// `PayloadTooLarge` or `InvalidInput` before anything is written; `QueueNotFound` (the
    /// transaction stays usable); otherwise the server's error, after which PostgreSQL has
    /// aborted the transaction and the caller must roll it back.
    pub async fn publish_in(
        &self,
        conn: &mut PgConnection,
        queue: &str,
        messages: &[Message],
    ) -> Result<()> {
        self.check_open(Operation::Publish)?;
        for (index, message) in messages.iter().enumerate() {
            self.capabilities.check_publish(index, message)?;
        }
        for chunk in messages.chunks(MAX_BATCH) {
            for statement in byte_chunks(chunk) {
                self.insert(&mut *conn, queue, statement).await?;
            }
        }
        self.purge_dedup_if_due(messages).await;
        Ok(())
    }

    fn check_open(&self, operation: Operation) -> Result<()> {
        if self.closed.is_cancelled() {
            return Err(closed(operation));
        }
        Ok(())
    }

    fn exhausted_reason(&self) -> String {
        format!("received {} times without an ack", self.config.max_receives)
    }

    fn max_receives(&self) -> i32 {
        i32::try_from(self.config.max_receives).unwrap_or(i32::MAX)
    }

    /// Runs the publish statement for one batch on `conn`.
    async fn insert(&self, conn: &mut PgConnection, queue: &str, batch: &[Message]) -> Result<()> {
        let mut payloads = Vec::with_capacity(batch.len());
        let mut headers = Vec::with_capacity(batch.len());
        let mut properties = Vec::with_capacity(batch.len());
        let mut ordering_keys = Vec::with_capacity(batch.len());
        let mut dedup_keys = Vec::with_capacity(batch.len());
        let mut delays = Vec::with_capacity(batch.len());
        for message in batch {
            payloads.push(message.payload.as_ref());
            headers.push(Json(&message.headers));
            properties.push(Json(properties_json(&message.properties)));
            ordering_keys.push(message.ordering_key.as_deref());
            dedup_keys.push(message.deduplication_id.as_deref());
            delays.push(message.delay.map_or(0.0, |d| d.as_secs_f64()));
        }
        let row = sqlx::query(&self.sql.publish)
            .bind(queue)
            .bind(payloads)
            .bind(headers)
            .bind(properties)
            .bind(ordering_keys)
            .bind(dedup_keys)
            .bind(delays)
            .bind(self.config.dedup_window.as_secs_f64())
            .bind(&self.channel)
            .fetch_one(conn)
            .await
            .map_err(|e| publish_error(queue, e))?;
        let exists: bool = row.get("queue_exists");
        if exists {
            Ok(())
        } else {
            Err(missing(queue, Operation::Publish))
        }
    }

    /// Forgets expired deduplication ids, at most once a minute, after publishes that used
    /// them. Failures only delay the cleanup.
    async fn purge_dedup_if_due(&self, messages: &[Message]) {
        if messages.iter().all(|m| m.deduplication_id.is_none()) {
            return;
        }
        {
            let mut last = self
                .last_dedup_purge
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.elapsed() < DEDUP_PURGE_INTERVAL {
                return;
            }
            *last = Instant::now();
        }
        if let Err(err) = sqlx::query(&self.sql.purge_dedup).execute(&self.pool).await {
            tracing::warn!(error = %from_sqlx(Operation::Publish, err), "cannot purge expired deduplication ids");
        }
    }

    /// One claim: leases up to `max` available messages of `queue`, or tells why there were
    /// none.
    async fn claim(&self, queue: &str, max: usize) -> Result<Claim> {
        let dead_letter = dead_letter_queue(queue);
        let rows = sqlx::query(&self.sql.claim)
            .bind(queue)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(self.config.visibility_timeout.as_secs_f64())
            .bind(dead_letter.as_deref())
            .bind(self.max_receives())
            .bind(self.exhausted_reason())
            .bind(&self.channel)
            .bind(DEAD_LETTER_REASON_HEADER)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.failed(Operation::Receive, e))?;
        let decode = |e: sqlx::Error| from_sqlx(Operation::Receive, e);
        match rows.as_slice() {
            [only]
                if only
                    .try_get::<Option<i64>, _>("id")
                    .map_err(decode)?
                    .is_none() =>
            {
                let exists: bool = only.try_get("queue_exists").map_err(decode)?;
                let next: Option<f64> = only.try_get("next_in_secs").map_err(decode)?;
                Ok(Claim::Empty {
                    exists,
                    next: next
                        .map(|secs| Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO)),
                })
            }
            _ => rows
                .iter()
                .map(received)
                .collect::<Result<_>>()
                .map(Claim::Leased),
        }
    }

    /// One look at `queue` for a waiting receive: claims up to `capacity` messages, read now.
    /// When nothing was available, names the moment to look again: when its next delayed or
    /// leased message becomes available (at least [`MIN_PAUSE`] away), and at the latest one
    /// poll interval from now, in case a notification was lost.
    async fn look(&self, queue: &str, capacity: &Capacity<'_>) -> Result<Look> {
        self.check_open(Operation::Receive)?;
        let (exists, next) = match self.claim(queue, capacity.now()).await? {
            Claim::Leased(claimed) => return Ok(Look::Taken(claimed)),
            Claim::Empty { exists, next } => (exists, next),
        };
        if !exists {
            return Err(missing(queue, Operation::Receive));
        }
        let now = Instant::now();
        let mut again_at = now + self.config.poll_interval;
        if let Some(next) = next {
            again_at = again_at.min(now + next.max(MIN_PAUSE));
        }
        Ok(Look::Nothing {
            again_at: Some(again_at),
        })
    }

    /// Maps a driver error, reporting `Closed` once this broker was closed.
    fn failed(&self, operation: Operation, err: sqlx::Error) -> broker_core::Error {
        if self.closed.is_cancelled() {
            return closed(operation);
        }
        from_sqlx(operation, err)
    }
}

impl Drop for PostgresBroker {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

#[async_trait]
impl Broker for PostgresBroker {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Inserts the queue and its dead-letter queue (see [`dead_letter_queue`]) into `queues`.
    async fn declare_queue(&self, queue: &str) -> Result<()> {
        self.check_open(Operation::DeclareQueue)?;
        if queue.is_empty() || queue.len() > MAX_QUEUE_NAME {
            return Err(error(
                ErrorKind::InvalidInput,
                Operation::DeclareQueue,
                format!("a queue name must be 1 to {MAX_QUEUE_NAME} bytes long"),
            ));
        }
        let mut names = vec![queue.to_owned()];
        names.extend(dead_letter_queue(queue));
        sqlx::query(&self.sql.declare)
            .bind(names)
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed(Operation::DeclareQueue, e))?;
        Ok(())
    }

    async fn delete_queue(&self, queue: &str) -> Result<()> {
        self.check_open(Operation::DeleteQueue)?;
        let mut names = vec![queue.to_owned()];
        names.extend(dead_letter_queue(queue));
        sqlx::query(&self.sql.delete)
            .bind(names)
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed(Operation::DeleteQueue, e))?;
        Ok(())
    }

    /// One `INSERT` statement for the batch (several in one transaction when its payloads
    /// exceed 64 MiB), so a batch is stored entirely or not at all.
    async fn publish(&self, queue: &str, batch: &[Message]) -> Result<()> {
        self.check_open(Operation::Publish)?;
        let statements = byte_chunks(batch);
        if let [single] = statements.as_slice() {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|e| self.failed(Operation::Publish, e))?;
            self.insert(&mut conn, queue, single).await?;
        } else {
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(|e| self.failed(Operation::Publish, e))?;
            for statement in statements {
                self.insert(&mut tx, queue, statement).await?;
            }
            tx.commit()
                .await
                .map_err(|e| self.failed(Operation::Publish, e))?;
        }
        self.purge_dedup_if_due(batch).await;
        Ok(())
    }

    /// Claims in publish (id) order with `FOR UPDATE SKIP LOCKED`; while nothing is
    /// available, waits for a `NOTIFY` of this queue, the next delayed or leased message
    /// becoming available, or the poll interval, whichever comes first. Closing the broker
    /// wakes it with a `Closed` error.
    async fn receive_up_to(
        &self,
        queue: &str,
        capacity: &Capacity<'_>,
        wait: Duration,
    ) -> Result<Vec<Received>> {
        self.check_open(Operation::Receive)?;
        // A receive that will not wait need not start listening.
        let wake_up = if wait.is_zero() {
            Arc::new(Notify::new())
        } else {
            self.wakeups.signal(queue).await
        };
        wait_for_work(&wake_up, wait, || self.look(queue, capacity)).await
    }

    /// Deletes the rows whose lease token still matches. When some no longer match (their
    /// lease ended and another consumer claimed them), the others are still acked and the
    /// call fails with `LeaseLost`.
    async fn ack(&self, queue: &str, tokens: &[AckToken]) -> Result<()> {
        self.check_open(Operation::Ack)?;
        let mut pairs = HashSet::with_capacity(tokens.len());
        for token in tokens {
            pairs.insert(parse_token(token, Operation::Ack)?);
        }
        let (ids, leases): (Vec<i64>, Vec<i64>) = pairs.iter().copied().unzip();
        let done = sqlx::query(&self.sql.ack)
            .bind(queue)
            .bind(ids)
            .bind(leases)
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed(Operation::Ack, e))?
            .rows_affected();
        let lost = pairs.len() as u64 - done;
        if lost == 0 {
            Ok(())
        } else {
            Err(error(
                ErrorKind::LeaseLost,
                Operation::Ack,
                format!(
                    "{lost} of {} deliveries are no longer leased to this consumer",
                    pairs.len()
                ),
            ))
        }
    }

    async fn nack(&self, queue: &str, token: &AckToken, action: &NackAction) -> Result<()> {
        self.check_open(Operation::Nack)?;
        let (id, lease) = parse_token(token, Operation::Nack)?;
        // Null for a dead-letter queue: the statement then keeps the message in place.
        let dead_letter = dead_letter_queue(queue);
        let (delay, force_dead, reason) = match action {
            NackAction::Requeue => (Duration::ZERO, false, self.exhausted_reason()),
            NackAction::RequeueAfter(delay) => (*delay, false, self.exhausted_reason()),
            NackAction::DeadLetter { reason } => (Duration::ZERO, true, reason.clone()),
        };
        let settled = sqlx::query(&self.sql.nack)
            .bind(queue)
            .bind(id)
            .bind(lease)
            .bind(delay.as_secs_f64())
            .bind(force_dead)
            .bind(dead_letter.as_deref())
            .bind(self.max_receives())
            .bind(reason)
            .bind(DEAD_LETTER_REASON_HEADER)
            .bind(&self.channel)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.failed(Operation::Nack, e))?;
        match settled {
            Some(_) => Ok(()),
            None => Err(lease_lost(token, Operation::Nack)),
        }
    }

    async fn extend_lease(&self, queue: &str, token: &AckToken, lease: Duration) -> Result<()> {
        self.check_open(Operation::ExtendLease)?;
        let (id, lease_token) = parse_token(token, Operation::ExtendLease)?;
        let updated = sqlx::query(&self.sql.extend)
            .bind(queue)
            .bind(id)
            .bind(lease_token)
            .bind(lease.as_secs_f64())
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed(Operation::ExtendLease, e))?
            .rows_affected();
        if updated == 1 {
            Ok(())
        } else {
            Err(lease_lost(token, Operation::ExtendLease))
        }
    }

    /// One statement counts at one instant (see [`Statements::count`](crate::sql::Statements)).
    async fn count(&self, queue: &str) -> Result<QueueCounts> {
        self.check_open(Operation::Count)?;
        let row = sqlx::query(&self.sql.count)
            .bind(queue)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.failed(Operation::Count, e))?;
        if !row.get::<bool, _>("queue_exists") {
            return Err(missing(queue, Operation::Count));
        }
        let count = |column: &str| u64::try_from(row.get::<i64, _>(column)).unwrap_or(0);
        Ok(QueueCounts {
            ready: count("ready"),
            in_flight: Some(count("in_flight")),
            delayed: Some(count("delayed")),
        })
    }

    /// Stops the listener, wakes waiting receives (they fail with `Closed`) and closes the
    /// pool when this broker opened it. Idempotent.
    async fn close(&self) -> Result<()> {
        self.closed.cancel();
        self.wakeups.close().await;
        if self.owns_pool {
            self.pool.close().await;
        }
        Ok(())
    }
}

/// What one claim found.
enum Claim {
    /// These deliveries, now leased (at least one).
    Leased(Vec<Received>),
    /// Nothing: whether the queue exists, and how long until its next message becomes
    /// available (zero when one is available but held by a concurrent claim).
    Empty {
        exists: bool,
        next: Option<Duration>,
    },
}

/// Splits a batch where its payloads pass [`STATEMENT_BYTES`]; every part holds at least one
/// message.
fn byte_chunks(batch: &[Message]) -> Vec<&[Message]> {
    let mut parts = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, message) in batch.iter().enumerate() {
        let size = message.payload.len();
        if index > start && bytes + size > STATEMENT_BYTES {
            parts.push(&batch[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < batch.len() || parts.is_empty() {
        parts.push(&batch[start..]);
    }
    parts
}

fn properties_json(properties: &Properties) -> Value {
    let mut map = Map::new();
    for (name, value) in [
        ("content_type", &properties.content_type),
        ("content_encoding", &properties.content_encoding),
        ("correlation_id", &properties.correlation_id),
        ("reply_to", &properties.reply_to),
    ] {
        if let Some(value) = value {
            map.insert(name.to_owned(), Value::String(value.clone()));
        }
    }
    Value::Object(map)
}

fn properties_from(value: &Value) -> Properties {
    let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    Properties {
        content_type: text("content_type"),
        content_encoding: text("content_encoding"),
        correlation_id: text("correlation_id"),
        reply_to: text("reply_to"),
    }
}

fn received(row: &PgRow) -> Result<Received> {
    let decode = |e: sqlx::Error| from_sqlx(Operation::Receive, e);
    let id: i64 = row.try_get("id").map_err(decode)?;
    let lease: i64 = row.try_get("lease_token").map_err(decode)?;
    let payload: Vec<u8> = row.try_get("payload").map_err(decode)?;
    // Kept as the text PostgreSQL returns: parsed only if someone reads them as a map.
    let Json(headers): Json<Box<RawValue>> = row.try_get("headers").map_err(decode)?;
    let headers = Headers::from_json(headers).map_err(|e| {
        error(
            ErrorKind::Codec,
            Operation::Receive,
            format!("message {id} has unusable headers: {e}"),
        )
    })?;
    let Json(properties): Json<Value> = row.try_get("properties").map_err(decode)?;
    let receive_count: i32 = row.try_get("receive_count").map_err(decode)?;
    Ok(Received {
        id: id.to_string(),
        payload: payload.into(),
        headers,
        properties: properties_from(&properties),
        ordering_key: row.try_get("ordering_key").map_err(decode)?,
        receive_count: u32::try_from(receive_count).unwrap_or(0),
        token: AckToken::new(format!("{id}:{lease}")),
    })
}

fn parse_token(token: &AckToken, operation: Operation) -> Result<(i64, i64)> {
    token
        .as_str()
        .split_once(':')
        .and_then(|(id, lease)| Some((id.parse().ok()?, lease.parse().ok()?)))
        .ok_or_else(|| {
            error(
                ErrorKind::InvalidInput,
                operation,
                "not a postgres ack token",
            )
        })
}

fn missing(queue: &str, operation: Operation) -> broker_core::Error {
    error(
        ErrorKind::QueueNotFound,
        operation,
        format!("no queue named `{queue}`"),
    )
}

fn lease_lost(token: &AckToken, operation: Operation) -> broker_core::Error {
    error(
        ErrorKind::LeaseLost,
        operation,
        format!(
            "delivery {} is no longer leased to this consumer",
            token.as_str()
        ),
    )
}

/// A foreign-key violation while publishing means the queue was deleted meanwhile.
fn publish_error(queue: &str, err: sqlx::Error) -> broker_core::Error {
    match &err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23503") => {
            missing(queue, Operation::Publish)
        }
        _ => from_sqlx(Operation::Publish, err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_batches_are_split_by_bytes_and_small_ones_are_not() {
        let small: Vec<Message> = (0..10).map(|n| Message::new(vec![0u8; n])).collect();
        assert_eq!(byte_chunks(&small).len(), 1);
        assert_eq!(byte_chunks(&[]).len(), 1);
        let big: Vec<Message> = (0..9)
            .map(|_| Message::new(vec![0u8; 16 * 1024 * 1024]))
            .collect();
        let parts = byte_chunks(&big);
        assert_eq!(parts.iter().map(|p| p.len()).sum::<usize>(), 9);
        assert!(parts.iter().all(|p| p.len() <= 4), "{:?}", parts.len());
    }

    #[test]
    fn tokens_round_trip_and_foreign_tokens_are_invalid_input() {
        assert_eq!(
            parse_token(&AckToken::new("17:42"), Operation::Ack).expect("valid"),
            (17, 42)
        );
        let err = parse_token(&AckToken::new("3-1"), Operation::Ack).expect_err("foreign");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn properties_round_trip_through_json() {
        let properties = Properties {
            content_type: Some("application/json".into()),
            correlation_id: Some("t-1".into()),
            ..Properties::default()
        };
        assert_eq!(properties_from(&properties_json(&properties)), properties);
    }
}
