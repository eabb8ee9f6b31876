//! Celery's Redis result backend format.

use std::time::Duration;

use async_trait::async_trait;
use broker_core::{Error, ErrorKind, Operation, Result, ResultStore, TaskResult, TaskState};
use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};
use redis::{AsyncCommands, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{BACKEND, RedisConfig, connect, error::from_redis, layout::Keys};

/// Task results stored as Celery's Redis backend stores them, so Python and Rust read each
/// other's results:
/// - key `<prefix>celery-task-meta-<task id>`, a string holding JSON
///   `{"status", "result", "traceback", "children", "date_done", "task_id"}`;
/// - `date_done` is written for finished states only (`SUCCESS`, `FAILURE`, `REVOKED`), in
///   Python's `isoformat()` for UTC (`2026-01-31T12:00:00.123456+00:00`), `null` otherwise,
///   as Celery does; so a `STARTED` or `RETRY` record reads back without a date;
/// - written with `SETEX` (the configured expiry) and `PUBLISH`ed on a channel named like the
///   key, in one `MULTI`, so Celery's result consumers waiting on the channel are woken; the
///   records of a [`store_all`](ResultStore::store_all) go in one `MULTI`, one round trip;
/// - a missing or expired key reads as `None` (`PENDING`).
#[derive(Debug)]
pub struct RedisResultStore {
    conn: ConnectionManager,
    keys: Keys,
    expires: Duration,
}

#[derive(Serialize)]
struct MetaOut<'a> {
    status: TaskState,
    result: &'a Value,
    traceback: Option<&'a str>,
    children: [(); 0],
    date_done: Option<String>,
    task_id: &'a str,
}

#[derive(Deserialize)]
struct MetaIn {
    status: TaskState,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    traceback: Option<String>,
    #[serde(default)]
    date_done: Option<String>,
    #[serde(default)]
    task_id: Option<String>,
}

impl RedisResultStore {
    /// Connects; records expire after `config.result_expires` (never when zero).
    ///
    /// # Errors
    /// As [`RedisBroker::connect`](crate::RedisBroker::connect).
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        let client = connect::client(&config)?;
        let conn = connect::manager(client, &config).await?;
        Ok(Self {
            conn,
            keys: Keys::new(config.key_prefix.clone()),
            expires: config.result_expires,
        })
    }

    /// The JSON text Celery would store for `result`.
    ///
    /// # Errors
    /// When the result value cannot be written as JSON.
    pub fn encode(result: &TaskResult) -> serde_json::Result<String> {
        let date_done = result
            .status
            .is_ready()
            .then(|| result.date_done.unwrap_or_else(Utc::now))
            .map(python_isoformat);
        serde_json::to_string(&MetaOut {
            status: result.status,
            result: &result.result,
            traceback: result.traceback.as_deref(),
            children: [],
            date_done,
            task_id: &result.task_id,
        })
    }

    /// Reads what Celery (or [`encode`](Self::encode)) stored for `task_id`.
    ///
    /// # Errors
    /// When the text is not a Celery result record.
    pub fn decode(task_id: &str, text: &[u8]) -> serde_json::Result<TaskResult> {
        let meta: MetaIn = serde_json::from_slice(text)?;
        Ok(TaskResult {
            task_id: meta.task_id.unwrap_or_else(|| task_id.to_owned()),
            status: meta.status,
            result: meta.result,
            traceback: meta.traceback,
            date_done: meta.date_done.as_deref().and_then(parse_date),
        })
    }
}

/// Python's `datetime.isoformat()` of an aware UTC time: microseconds unless zero, `+00:00`.
/// (Written field by field: chrono's format strings are parsed on every call.)
fn python_isoformat(at: DateTime<Utc>) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(32);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    // A leap second's fraction runs past one second; Python has no leap seconds.
    let micros = at.timestamp_subsec_micros().min(999_999);
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
    out.push_str("+00:00");
    out
}

/// Celery's `date_done`: ISO 8601 with an offset, or naive (older Celery, taken as UTC).
fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

#[async_trait]
impl ResultStore for RedisResultStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn store(&self, result: &TaskResult) -> Result<()> {
        self.store_all(std::slice::from_ref(result)).await
    }

    /// One `MULTI` for the whole batch: a `SETEX` and a `PUBLISH` per record, in their order.
    async fn store_all(&self, results: &[TaskResult]) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let millis = u64::try_from(self.expires.as_millis()).unwrap_or(u64::MAX);
        for result in results {
            let text = Self::encode(result).map_err(|e| {
                Error::new(
                    ErrorKind::Codec,
                    BACKEND,
                    Operation::StoreResult,
                    e.to_string(),
                )
            })?;
            let key = self.keys.result(&result.task_id);
            if self.expires.is_zero() {
                pipe.set(&key, &text);
            } else if millis % 1000 == 0 {
                pipe.set_ex(&key, &text, millis / 1000);
            } else {
                pipe.pset_ex(&key, &text, millis);
            }
            pipe.ignore().publish(&key, &text).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| from_redis(Operation::StoreResult, &e))
    }

    async fn fetch(&self, task_id: &str) -> Result<Option<TaskResult>> {
        let mut conn = self.conn.clone();
        let text: Option<Vec<u8>> = conn
            .get(self.keys.result(task_id))
            .await
            .map_err(|e| from_redis(Operation::FetchResult, &e))?;
        text.map(|t| {
            Self::decode(task_id, &t).map_err(|e| {
                Error::new(
                    ErrorKind::Codec,
                    BACKEND,
                    Operation::FetchResult,
                    format!("not a Celery result record: {e}"),
                )
            })
        })
        .transpose()
    }

    async fn forget(&self, task_id: &str) -> Result<()> {
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(self.keys.result(task_id))
            .await
            .map_err(|e| from_redis(Operation::StoreResult, &e))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    #[test]
    fn success_is_written_in_celerys_shape_and_key_order() {
        let at = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap()
            + chrono::Duration::microseconds(123_456);
        let mut result = TaskResult::success("t-1", json!({"n": 1}));
        result.date_done = Some(at);
        let text = RedisResultStore::encode(&result).unwrap();
        assert_eq!(
            text,
            r#"{"status":"SUCCESS","result":{"n":1},"traceback":null,"children":[],"date_done":"2026-01-31T12:00:00.123456+00:00","task_id":"t-1"}"#
        );
    }

    #[test]
    fn dates_read_like_pythons_isoformat() {
        let whole = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        assert_eq!(python_isoformat(whole), "2026-03-04T05:06:07+00:00");
        let fraction = whole + chrono::Duration::microseconds(42);
        assert_eq!(
            python_isoformat(fraction),
            "2026-03-04T05:06:07.000042+00:00"
        );
        let sub_micro = whole + chrono::Duration::nanoseconds(999);
        assert_eq!(python_isoformat(sub_micro), "2026-03-04T05:06:07+00:00");
    }

    #[test]
    fn unfinished_states_have_no_date_done() {
        let text = RedisResultStore::encode(&TaskResult::new("t-2", TaskState::Started)).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["status"], "STARTED");
        assert_eq!(value["date_done"], Value::Null);
    }

    #[test]
    fn record_written_by_python_celery_is_read() {
        let text = br#"{"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": ["bad"], "exc_module": "builtins"}, "traceback": "Traceback ...", "children": [], "date_done": "2023-05-19T08:19:16.866296", "task_id": "abc"}"#;
        let read = RedisResultStore::decode("abc", text).unwrap();
        assert_eq!(read.status, TaskState::Failure);
        assert_eq!(read.error_message().as_deref(), Some("bad"));
        let when = read.date_done.unwrap();
        assert_eq!(when.timestamp_subsec_micros(), 866_296);
        let aware =
            br#"{"status": "SUCCESS", "result": 4, "date_done": "2024-01-01T00:00:00+00:00"}"#;
        assert!(
            RedisResultStore::decode("x", aware)
                .unwrap()
                .date_done
                .is_some()
        );
    }
}
