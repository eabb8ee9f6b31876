//! A small versioned migrator for a schema chosen at run time.
//!
//! `sqlx::migrate!` runs fixed SQL against a fixed schema; this crate's tables live in a schema
//! named by the configuration (one per deployment, one per test), so the numbered files in
//! `migrations/` are written against the placeholder `__SCHEMA__` and applied here after the
//! placeholder is replaced by the quoted schema name. Applied versions are recorded in
//! `<schema>.schema_migrations`. Everything happens in one transaction holding a
//! transaction-level advisory lock derived from the schema name, so brokers and stores that
//! connect at the same moment apply each migration exactly once, and a failed migration
//! leaves nothing behind.

use broker_core::{Operation, Result};
use futures::future::BoxFuture;
use sqlx::{Executor, PgPool, Row};

use crate::error::from_sqlx;

/// One numbered migration.
struct Migration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

/// Every migration, in order. Versions are never reused or edited once released.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "queues and messages",
        sql: include_str!("../migrations/0001_queues_and_messages.sql"),
    },
    Migration {
        version: 2,
        description: "task results",
        sql: include_str!("../migrations/0002_task_results.sql"),
    },
];

/// The newest migration version this build knows.
#[must_use]
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// `"schema"`, quoted for SQL. The name was validated (letters, digits, `_`).
pub(crate) fn quoted(schema: &str) -> String {
    format!("\"{schema}\"")
}

/// Creates `schema` if missing and applies the migrations it has not seen yet.
///
/// Boxed as a `Send` future: callers' futures then stay `Send` wherever they are awaited
/// (an unboxed `&mut *tx` executor trips the compiler's higher-ranked `Send` check).
pub(crate) fn migrate<'a>(
    pool: &'a PgPool,
    schema: &'a str,
    operation: Operation,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(run(pool, schema, operation))
}

/// The advisory lock that serialises changes to `schema` (its creation, its migrations, and
/// the Celery result tables created in it), so that brokers and stores opening at the same
/// moment never race to create it.
pub(crate) fn lock_name(schema: &str) -> String {
    format!("broker-postgres migrations {schema}")
}

async fn run(pool: &PgPool, schema: &str, operation: Operation) -> Result<()> {
    let fail = |e| from_sqlx(operation, e);
    let ident = quoted(schema);
    let mut tx = pool.begin().await.map_err(fail)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(lock_name(schema))
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await
            .map_err(fail)?;
    if !exists {
        tx.execute(format!("CREATE SCHEMA {ident}").as_str())
            .await
            .map_err(fail)?;
    }
    let bookkeeping = format!(
        "CREATE TABLE IF NOT EXISTS {ident}.schema_migrations (
             version     bigint      PRIMARY KEY,
             description text        NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         )"
    );
    tx.execute(bookkeeping.as_str()).await.map_err(fail)?;
    let applied: Vec<i64> = sqlx::query(&format!(
        "SELECT version FROM {ident}.schema_migrations ORDER BY version"
    ))
    .fetch_all(&mut *tx)
    .await
    .map_err(fail)?
    .iter()
    .map(|row| row.get(0))
    .collect();
    for migration in MIGRATIONS {
        if applied.contains(&migration.version) {
            continue;
        }
        tracing::info!(
            schema,
            version = migration.version,
            description = migration.description,
            "applying migration"
        );
        // No bind parameters: sent as a simple query, so a file may hold many statements.
        let sql = migration.sql.replace("__SCHEMA__", &ident);
        tx.execute(sql.as_str()).await.map_err(fail)?;
        sqlx::query(&format!(
            "INSERT INTO {ident}.schema_migrations (version, description) VALUES ($1, $2)"
        ))
        .bind(migration.version)
        .bind(migration.description)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)
}
