//! The PostgreSQL result store, in Celery's tables and format.

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use broker_core::{ErrorKind, Operation, Result, ResultStore, TaskResult, TaskState};
use chrono::{NaiveDateTime, Utc};
use serde_json::Value;
use sqlx::{Executor, PgPool, Row};
use tokio::time::Instant;

use crate::{
    BACKEND,
    celery_tables::CeleryTables,
    config::PostgresConfig,
    error::{error, from_sqlx},
};

/// Writes purge expired rows at most this often (or once per expiry time, if shorter).
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Task results in Celery's `celery_taskmeta` table, in Celery's format, so that Python Celery
/// and this crate read each other's results through one `db+postgresql://` URL.
///
/// The tables live in [`result_schema`](PostgresConfig::result_schema), or where Celery puts
/// them by default (the connection's search path, usually `public`); they are created as
/// Celery creates them when missing. A row is Celery's: `status`, `result` (the JSON of the
/// value, as bytes; an exception as `{"exc_type", "exc_message", "exc_module"}`),
/// `traceback`, and `date_done` (UTC, set only for final states). As in Celery, a task whose
/// state is `SUCCESS` keeps it: later writes for it are ignored.
///
/// Expiry follows Celery's `result_expires` cleanup: a row whose `date_done` is older than
/// [`result_expires`](PostgresConfig::result_expires) reads as absent (`PENDING`) and is
/// deleted by a later write (at most once a minute, or once per expiry time if shorter) or by
/// [`purge_expired`](Self::purge_expired). Rows without `date_done` (still running) never
/// expire, as in Celery. Works with any broker: the store only needs the database.
#[derive(Debug)]
pub struct PostgresResultStore {
    pool: PgPool,
    owns_pool: bool,
    tables: CeleryTables,
    config: PostgresConfig,
    purge_every: Duration,
    last_purge: Mutex<Instant>,
}

impl PostgresResultStore {
    /// Connects to `config.url` and creates Celery's tables if missing.
    ///
    /// # Errors
    /// `Configuration` for a bad URL or schema; `Connection` (retryable) when the server cannot
    /// be reached; the server's error when the tables cannot be created.
    pub async fn connect(config: PostgresConfig) -> Result<Self> {
        config.validate(Operation::Connect)?;
        let pool = config.open_pool(Operation::Connect).await?;
        Self::from_pool_owned(pool, true, config).await
    }

    /// Opens the store named by a result-backend URL (`db+postgresql://...`,
    /// `postgres://...`; see [`PostgresConfig::from_url`]).
    ///
    /// # Errors
    /// As [`PostgresConfig::from_url`] and [`connect`](Self::connect).
    pub async fn connect_url(url: &str) -> Result<Self> {
        Self::connect(PostgresConfig::from_url(url)?).await
    }

    /// A store on the caller's pool (which [`close`](Self::close) leaves open). Creates
    /// Celery's tables if missing.
    ///
    /// # Errors
    /// `Configuration` for a bad schema; the server's error when the tables cannot be created.
    pub async fn from_pool(pool: PgPool, config: PostgresConfig) -> Result<Self> {
        config.validate(Operation::Connect)?;
        Self::from_pool_owned(pool, false, config).await
    }

    async fn from_pool_owned(
        pool: PgPool,
        owns_pool: bool,
        config: PostgresConfig,
    ) -> Result<Self> {
        let tables = CeleryTables::new(config.result_schema.as_deref());
        create_tables(&pool, &tables).await?;
        Ok(Self {
            pool,
            owns_pool,
            tables,
            purge_every: PURGE_INTERVAL.min(config.result_expires),
            last_purge: Mutex::new(Instant::now()),
            config,
        })
    }

    /// The settings this store was opened with.
    #[must_use]
    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    /// Deletes every expired task and group row now, as Celery's `backend_cleanup` does, and
    /// returns how many there were.
    ///
    /// # Errors
    /// The server's error.
    pub async fn purge_expired(&self) -> Result<u64> {
        let mut deleted = 0;
        for statement in &self.tables.purge {
            deleted += sqlx::query(statement)
                .bind(self.config.result_expires.as_secs_f64())
                .execute(&self.pool)
                .await
                .map_err(|e| from_sqlx(Operation::StoreResult, e))?
                .rows_affected();
        }
        Ok(deleted)
    }

    /// Closes the pool if this store opened it; later calls fail with `Closed`.
    pub async fn close(&self) {
        if self.owns_pool {
            self.pool.close().await;
        }
    }

    /// The pool this store uses.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn purge_if_due(&self) {
        {
            let mut last = self
                .last_purge
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.elapsed() < self.purge_every {
                return;
            }
            *last = Instant::now();
        }
        if let Err(err) = self.purge_expired().await {
            tracing::warn!(error = %err, "cannot purge expired task results");
        }
    }
}

/// Creates Celery's tables where missing, one creator at a time.
async fn create_tables(pool: &PgPool, tables: &CeleryTables) -> Result<()> {
    let fail = |e| from_sqlx(Operation::Connect, e);
    let mut tx = pool.begin().await.map_err(fail)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(&tables.lock_name)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    tx.execute(tables.create.as_str()).await.map_err(fail)?;
    tx.commit().await.map_err(fail)
}

#[async_trait]
impl ResultStore for PostgresResultStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    /// Writes the task's row (unless it already holds `SUCCESS`); `date_done` is kept for
    /// final states only, as Celery keeps it.
    async fn store(&self, result: &TaskResult) -> Result<()> {
        self.store_all(std::slice::from_ref(result)).await
    }

    /// One statement, so one round trip and one commit, for the whole batch. The rows end as
    /// writing the records one by one would leave them.
    async fn store_all(&self, results: &[TaskResult]) -> Result<()> {
        let rows = StateRows::of(results)?;
        sqlx::query(&self.tables.store)
            .bind(rows.task_ids)
            .bind(rows.statuses)
            .bind(rows.results)
            .bind(rows.dates_done)
            .bind(rows.tracebacks)
            .execute(&self.pool)
            .await
            .map_err(|e| from_sqlx(Operation::StoreResult, e))?;
        self.purge_if_due().await;
        Ok(())
    }

    async fn fetch(&self, task_id: &str) -> Result<Option<TaskResult>> {
        let Some(row) = sqlx::query(&self.tables.fetch)
            .bind(task_id)
            .bind(self.config.result_expires.as_secs_f64())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| from_sqlx(Operation::FetchResult, e))?
        else {
            return Ok(None);
        };
        let column = |e: sqlx::Error| from_sqlx(Operation::FetchResult, e);
        let codec = |detail: String| error(ErrorKind::Codec, Operation::FetchResult, detail);
        let status: Option<String> = row.try_get("status").map_err(column)?;
        let status: TaskState = status
            .as_deref()
            .unwrap_or("PENDING")
            .parse()
            .map_err(codec)?;
        let result: Option<Vec<u8>> = row.try_get("result").map_err(column)?;
        let result = match result {
            None => Value::Null,
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                codec(format!(
                    "the result of task {task_id} is not Celery's JSON: {e}"
                ))
            })?,
        };
        let date_done: Option<NaiveDateTime> = row.try_get("date_done").map_err(column)?;
        Ok(Some(TaskResult {
            task_id: task_id.to_owned(),
            status,
            result,
            traceback: row.try_get("traceback").map_err(column)?,
            date_done: date_done.map(|at| at.and_utc()),
        }))
    }

    async fn forget(&self, task_id: &str) -> Result<()> {
        sqlx::query(&self.tables.forget)
            .bind(task_id)
            .execute(&self.pool)
            .await
            .map_err(|e| from_sqlx(Operation::StoreResult, e))?;
        Ok(())
    }
}

/// The columns of a batch of task states, one row per task: a statement may write a row only
/// once.
#[derive(Default)]
struct StateRows<'a> {
    task_ids: Vec<&'a str>,
    statuses: Vec<&'static str>,
    results: Vec<Vec<u8>>,
    dates_done: Vec<Option<NaiveDateTime>>,
    tracebacks: Vec<Option<&'a str>>,
}

impl<'a> StateRows<'a> {
    /// The row each task's records leave when written in order: the first `SUCCESS`, since
    /// later writes do not replace it, or else the last record.
    fn of(records: &'a [TaskResult]) -> Result<Self> {
        let mut kept: Vec<&TaskResult> = Vec::with_capacity(records.len());
        let mut row_of: HashMap<&str, usize> = HashMap::with_capacity(records.len());
        for record in records {
            match row_of.entry(&record.task_id) {
                Entry::Vacant(vacant) => {
                    vacant.insert(kept.len());
                    kept.push(record);
                }
                Entry::Occupied(row) if kept[*row.get()].status != TaskState::Success => {
                    kept[*row.get()] = record;
                }
                Entry::Occupied(_) => {}
            }
        }
        let mut rows = Self::default();
        for record in kept {
            let encoded = serde_json::to_vec(&record.result).map_err(|e| {
                error(
                    ErrorKind::Codec,
                    Operation::StoreResult,
                    format!("result is not JSON: {e}"),
                )
            })?;
            rows.task_ids.push(&record.task_id);
            rows.statuses.push(record.status.as_str());
            rows.results.push(encoded);
            rows.dates_done.push(
                record
                    .status
                    .is_ready()
                    .then(|| record.date_done.unwrap_or_else(Utc::now).naive_utc()),
            );
            rows.tracebacks.push(record.traceback.as_deref());
        }
        Ok(rows)
    }
}
