//! Celery's database result tables, `celery_taskmeta` and `celery_tasksetmeta`, as Celery's
//! `DatabaseBackend` (SQLAlchemy) creates them on PostgreSQL, and the statements that read and
//! write them the way Celery does.
//!
//! The DDL below produces the columns, sequences, constraints and indexes that Celery 5.7
//! creates (golden-tested against `broker-core/tests/fixtures/celery/database/tables.json`).
//! Like SQLAlchemy, rows take their `id` from the sequence explicitly (the column has no
//! default). `date_done` is UTC without a time zone; `result` and `children` are the JSON text
//! of the value as bytes.
//!
//! Public (but hidden from the documentation) so that the benchmark's raw baseline runs exactly
//! these statements through sqlx; nothing else should depend on it.

use crate::migrate::{lock_name, quoted};

/// Qualified names and statements for one placement of Celery's tables.
#[derive(Debug, Clone)]
pub struct CeleryTables {
    /// Creates the schema (when one is named), the sequences, the tables and their indexes,
    /// leaving what exists alone.
    pub create: String,
    /// Serialises concurrent `create`s of one placement, and with the broker's migrations of
    /// the same schema: the name an advisory lock is taken on (`hashtextextended`, as the
    /// migrator does).
    pub lock_name: String,
    /// Writes the states of tasks, one statement for many, each unless the task's row is
    /// already `SUCCESS` (Celery's rule: a repeated run does not replace a stored result).
    /// Arrays of one length, a task id at most once: `$1` task ids, `$2` statuses, `$3`
    /// results `bytea`, `$4` dates done (UTC, without zone; null unless the state is final),
    /// `$5` tracebacks.
    pub store: String,
    /// Reads a task's row unless its `date_done` is older than `$2` seconds: `$1` task id.
    pub fetch: String,
    /// Deletes a task's row: `$1` task id.
    pub forget: String,
    /// Deletes task and group rows whose `date_done` is older than `$1` seconds, as Celery's
    /// `backend_cleanup` does.
    pub purge: [String; 2],
}

impl CeleryTables {
    /// The tables in `schema`, or in the connection's search path (Celery's default, usually
    /// `public`) when `None`. `schema` must be a valid identifier (checked by the config).
    pub fn new(schema: Option<&str>) -> Self {
        let prefix = schema.map_or_else(String::new, |s| format!("{}.", quoted(s)));
        let create_schema = schema.map_or_else(String::new, |s| {
            format!("CREATE SCHEMA IF NOT EXISTS {};\n", quoted(s))
        });
        let task = format!("{prefix}celery_taskmeta");
        let group = format!("{prefix}celery_tasksetmeta");
        let create = format!(
            "{create_schema}\
             CREATE SEQUENCE IF NOT EXISTS {prefix}task_id_sequence;
             CREATE TABLE IF NOT EXISTS {task} (
                 id INTEGER NOT NULL,
                 task_id VARCHAR(155),
                 status VARCHAR(50),
                 result BYTEA,
                 date_done TIMESTAMP WITHOUT TIME ZONE,
                 traceback TEXT,
                 children BYTEA,
                 name VARCHAR(155),
                 args BYTEA,
                 kwargs BYTEA,
                 worker VARCHAR(155),
                 retries INTEGER,
                 queue VARCHAR(155),
                 stamps BYTEA,
                 PRIMARY KEY (id),
                 UNIQUE (task_id)
             );
             CREATE INDEX IF NOT EXISTS ix_celery_taskmeta_date_done ON {task} (date_done);
             CREATE SEQUENCE IF NOT EXISTS {prefix}taskset_id_sequence;
             CREATE TABLE IF NOT EXISTS {group} (
                 id INTEGER NOT NULL,
                 taskset_id VARCHAR(155),
                 result BYTEA,
                 date_done TIMESTAMP WITHOUT TIME ZONE,
                 PRIMARY KEY (id),
                 UNIQUE (taskset_id)
             );
             CREATE INDEX IF NOT EXISTS ix_celery_tasksetmeta_date_done ON {group} (date_done);"
        );
        let older_than = "date_done < (now() AT TIME ZONE 'UTC') - make_interval(secs => $1)";
        Self {
            lock_name: schema.map_or_else(|| task.clone(), lock_name),
            store: format!(
                "INSERT INTO {task} AS t (id, task_id, status, result, date_done, traceback)
                 SELECT nextval('{prefix}task_id_sequence'), r.*
                 FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::timestamp[], $5::text[])
                     AS r(task_id, status, result, date_done, traceback)
                 ON CONFLICT (task_id) DO UPDATE SET
                     status = EXCLUDED.status, result = EXCLUDED.result,
                     date_done = EXCLUDED.date_done, traceback = EXCLUDED.traceback
                 WHERE t.status IS DISTINCT FROM 'SUCCESS'"
            ),
            fetch: format!(
                "SELECT status, result, date_done, traceback FROM {task}
                 WHERE task_id = $1
                   AND (date_done IS NULL
                        OR date_done >= (now() AT TIME ZONE 'UTC') - make_interval(secs => $2))"
            ),
            forget: format!("DELETE FROM {task} WHERE task_id = $1"),
            purge: [
                format!("DELETE FROM {task} WHERE {older_than}"),
                format!("DELETE FROM {group} WHERE {older_than}"),
            ],
            create,
        }
    }
}
