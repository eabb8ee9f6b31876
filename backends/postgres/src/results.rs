//! The PostgreSQL result store.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use broker_core::{ErrorKind, Operation, Result, ResultStore, TaskResult, TaskState};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Row, types::Json};
use tokio::time::Instant;

use crate::{
    BACKEND,
    config::PostgresConfig,
    error::{error, from_sqlx},
    migrate::migrate,
    sql::Statements,
};

/// Writes purge expired rows at most this often (or once per expiry time, if shorter).
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Task results in `<schema>.task_results`, one row per task id.
///
/// A record expires [`result_expires`](PostgresConfig::result_expires) after it was last
/// written: reads ignore it from then on, and writes delete every expired row, at most once a
/// minute (or once per expiry time, if shorter); [`purge_expired`](Self::purge_expired) does it
/// on demand. Works with any broker: the store only needs the database.
#[derive(Debug)]
pub struct PostgresResultStore {
    pool: PgPool,
    owns_pool: bool,
    sql: Statements,
    config: PostgresConfig,
    purge_every: Duration,
    last_purge: Mutex<Instant>,
}

impl PostgresResultStore {
    /// Connects to `config.url` and creates the schema and its tables if missing.
    ///
    /// # Errors
    /// `Configuration` for a bad URL or schema; `Connection` (retryable) when the server cannot
    /// be reached; the server's error when a migration fails.
    pub async fn connect(config: PostgresConfig) -> Result<Self> {
        config.validate(Operation::Connect)?;
        let pool = config.open_pool(Operation::Connect).await?;
        migrate(&pool, &config.schema, Operation::Connect).await?;
        Ok(Self::with_pool(pool, true, config))
    }

    /// Opens the store named by a result-backend URL (`db+postgresql://...`,
    /// `postgres://...`; see [`PostgresConfig::from_url`]).
    ///
    /// # Errors
    /// As [`PostgresConfig::from_url`] and [`connect`](Self::connect).
    pub async fn connect_url(url: &str) -> Result<Self> {
        Self::connect(PostgresConfig::from_url(url)?).await
    }

    /// A store on the caller's pool (which [`close`](Self::close) leaves open). Runs the
    /// migrations.
    ///
    /// # Errors
    /// `Configuration` for a bad schema; the server's error when a migration fails.
    pub async fn from_pool(pool: PgPool, config: PostgresConfig) -> Result<Self> {
        config.validate(Operation::Connect)?;
        migrate(&pool, &config.schema, Operation::Connect).await?;
        Ok(Self::with_pool(pool, false, config))
    }

    fn with_pool(pool: PgPool, owns_pool: bool, config: PostgresConfig) -> Self {
        Self {
            pool,
            owns_pool,
            sql: Statements::new(&config.schema),
            purge_every: PURGE_INTERVAL.min(config.result_expires),
            last_purge: Mutex::new(Instant::now()),
            config,
        }
    }

    /// The settings this store was opened with.
    #[must_use]
    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    /// Deletes every expired record now and returns how many there were.
    ///
    /// # Errors
    /// The server's error.
    pub async fn purge_expired(&self) -> Result<u64> {
        let deleted = sqlx::query(&self.sql.purge_results)
            .execute(&self.pool)
            .await
            .map_err(|e| from_sqlx(Operation::StoreResult, e))?
            .rows_affected();
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

#[async_trait]
impl ResultStore for PostgresResultStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    /// An upsert: the row of `result.task_id` is replaced and its expiry restarts.
    async fn store(&self, result: &TaskResult) -> Result<()> {
        sqlx::query(&self.sql.store_result)
            .bind(&result.task_id)
            .bind(result.status.as_str())
            .bind(Json(&result.result))
            .bind(result.traceback.as_deref())
            .bind(result.date_done)
            .bind(self.config.result_expires.as_secs_f64())
            .execute(&self.pool)
            .await
            .map_err(|e| from_sqlx(Operation::StoreResult, e))?;
        self.purge_if_due().await;
        Ok(())
    }

    async fn fetch(&self, task_id: &str) -> Result<Option<TaskResult>> {
        let Some(row) = sqlx::query(&self.sql.fetch_result)
            .bind(task_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| from_sqlx(Operation::FetchResult, e))?
        else {
            return Ok(None);
        };
        let decode = |e: sqlx::Error| from_sqlx(Operation::FetchResult, e);
        let status: String = row.try_get("status").map_err(decode)?;
        let status: TaskState = status
            .parse()
            .map_err(|e: String| error(ErrorKind::Codec, Operation::FetchResult, e))?;
        let Json(result): Json<Value> = row.try_get("result").map_err(decode)?;
        let date_done: Option<DateTime<Utc>> = row.try_get("date_done").map_err(decode)?;
        Ok(Some(TaskResult {
            task_id: task_id.to_owned(),
            status,
            result,
            traceback: row.try_get("traceback").map_err(decode)?,
            date_done,
        }))
    }

    async fn forget(&self, task_id: &str) -> Result<()> {
        sqlx::query(&self.sql.forget_result)
            .bind(task_id)
            .execute(&self.pool)
            .await
            .map_err(|e| from_sqlx(Operation::StoreResult, e))?;
        Ok(())
    }
}
