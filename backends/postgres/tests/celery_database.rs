//! The result store keeps Celery's tables in Celery's format: golden-tested against the
//! tables and rows that Celery's own database backend made
//! (`broker-core/tests/fixtures/celery/database/`, see `generate_database.py` there), and read
//! back by Python Celery itself when a Celery virtualenv is at hand.

mod support;

use std::{collections::BTreeMap, process::Command};

use broker_core::{ResultStore, ResultStoreExt, TaskResult, TaskState};
use broker_postgres::PostgresResultStore;
use serde_json::{Value, json};
use sqlx::Row as _;
use support::TestSchema;

const TABLES: &str =
    include_str!("../../../broker-core/tests/fixtures/celery/database/tables.json");
const ROWS: &str = include_str!("../../../broker-core/tests/fixtures/celery/database/rows.json");
const CALENDAR: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Taskoverflow Calendar//mxm.dk//\r\nEND:VCALENDAR\r\n";

/// One row as the fixture records it.
#[derive(Debug, PartialEq)]
struct TaskRow {
    task_id: String,
    status: String,
    result: Option<String>,
    traceback: Option<String>,
    children: Option<String>,
    has_date_done: bool,
}

fn celery_rows() -> BTreeMap<String, TaskRow> {
    let rows: BTreeMap<String, Value> = serde_json::from_str(ROWS).expect("rows.json");
    let text = |row: &Value, key: &str| row[key].as_str().map(str::to_owned);
    rows.into_iter()
        .map(|(case, row)| {
            let parsed = TaskRow {
                task_id: text(&row, "task_id").expect("task_id"),
                status: text(&row, "status").expect("status"),
                result: text(&row, "result"),
                traceback: text(&row, "traceback"),
                children: text(&row, "children"),
                has_date_done: row["has_date_done"].as_bool().expect("has_date_done"),
            };
            (case, parsed)
        })
        .collect()
}

async fn fresh_store(test: &str) -> Option<(PostgresResultStore, TestSchema)> {
    let url = support::url_or_skip(test)?;
    let schema = TestSchema::fresh();
    let store = support::result_store(support::config(&url, &schema.name)).await;
    Some((store, schema))
}

/// What PostgreSQL's catalog says about the tables in `schema`, as the fixture script asks.
async fn catalog(store: &PostgresResultStore, schema: &str) -> Value {
    let rows = |sql: &'static str| async move {
        sqlx::query(sql)
            .bind(schema)
            .fetch_all(store.pool())
            .await
            .expect("catalog query")
    };
    let columns = rows(
        "SELECT table_name::text, column_name::text, data_type::text,
                character_maximum_length::int4, is_nullable::text, column_default::text
         FROM information_schema.columns WHERE table_schema = $1
         ORDER BY table_name, ordinal_position",
    )
    .await;
    let sequences = rows(
        "SELECT sequence_name::text, data_type::text, start_value::text, increment::text
         FROM information_schema.sequences WHERE sequence_schema = $1 ORDER BY sequence_name",
    )
    .await;
    let indexes = rows(
        "SELECT tablename::text, indexname::text, indexdef::text FROM pg_indexes
         WHERE schemaname = $1 ORDER BY tablename, indexname",
    )
    .await;
    json!({
        "columns": columns.iter().map(|r| json!({
            "table_name": r.get::<String, _>(0),
            "column_name": r.get::<String, _>(1),
            "data_type": r.get::<String, _>(2),
            "character_maximum_length": r.get::<Option<i32>, _>(3),
            "is_nullable": r.get::<String, _>(4),
            "column_default": r.get::<Option<String>, _>(5),
        })).collect::<Vec<_>>(),
        "sequences": sequences.iter().map(|r| json!({
            "sequence_name": r.get::<String, _>(0),
            "data_type": r.get::<String, _>(1),
            "start_value": r.get::<String, _>(2),
            "increment": r.get::<String, _>(3),
        })).collect::<Vec<_>>(),
        "indexes": indexes.iter().map(|r| json!({
            "tablename": r.get::<String, _>(0),
            "indexname": r.get::<String, _>(1),
            "indexdef": r.get::<String, _>(2).replace(&format!("{schema}."), "SCHEMA."),
        })).collect::<Vec<_>>(),
    })
}

/// The stored row of `task_id`, in the fixture's terms.
async fn stored_row(store: &PostgresResultStore, schema: &str, task_id: &str) -> TaskRow {
    let row = sqlx::query(&format!(
        "SELECT task_id, status, result, traceback, children, date_done IS NOT NULL
         FROM \"{schema}\".celery_taskmeta WHERE task_id = $1"
    ))
    .bind(task_id)
    .fetch_one(store.pool())
    .await
    .expect("the row is there");
    let text = |bytes: Option<Vec<u8>>| bytes.map(|b| String::from_utf8(b).expect("UTF-8"));
    TaskRow {
        task_id: row.get(0),
        status: row.get(1),
        result: text(row.get(2)),
        traceback: row.get(3),
        children: text(row.get(4)),
        has_date_done: row.get(5),
    }
}

/// Two JSON texts that mean the same value.
fn same_json(ours: Option<&str>, celerys: Option<&str>) -> bool {
    let parse = |text: Option<&str>| text.map(|t| serde_json::from_str::<Value>(t).expect("JSON"));
    parse(ours) == parse(celerys)
}

#[tokio::test]
async fn tables_are_created_as_celery_creates_them() {
    let Some((store, schema)) = fresh_store("tables_are_created_as_celery_creates_them").await
    else {
        return;
    };
    let mut expected: Value = serde_json::from_str(TABLES).expect("tables.json");
    let expected = expected.as_object_mut().expect("an object");
    expected.remove("celery_version");
    expected.remove("sqlalchemy_version");
    assert_eq!(
        catalog(&store, &schema.name).await,
        Value::Object(expected.clone())
    );
}

#[tokio::test]
async fn rows_written_by_celery_are_read() {
    let Some((store, schema)) = fresh_store("rows_written_by_celery_are_read").await else {
        return;
    };
    for (case, row) in celery_rows() {
        sqlx::query(&format!(
            "INSERT INTO \"{}\".celery_taskmeta (id, task_id, status, result, date_done, traceback)
             VALUES (nextval('\"{0}\".task_id_sequence'), $1, $2, $3,
                     CASE WHEN $4 THEN now() AT TIME ZONE 'UTC' END, $5)",
            schema.name
        ))
        .bind(&row.task_id)
        .bind(&row.status)
        .bind(row.result.as_deref().map(str::as_bytes))
        .bind(row.has_date_done)
        .bind(row.traceback.as_deref())
        .execute(store.pool())
        .await
        .expect("insert Celery's row");
        let read = store.state(&row.task_id).await.expect("state");
        assert_eq!(read.status.as_str(), row.status, "{case}");
        let celerys: Value = serde_json::from_str(row.result.as_deref().unwrap_or("null")).unwrap();
        assert_eq!(read.result, celerys, "{case}");
        assert_eq!(read.traceback, row.traceback, "{case}");
        assert_eq!(read.date_done.is_some(), row.has_date_done, "{case}");
    }
    let failure = store
        .state(&celery_rows()["failure"].task_id)
        .await
        .expect("state");
    assert_eq!(failure.error_message().as_deref(), Some("boom"));
}

/// The results a worker of ours stores for the fixture's cases.
fn our_results(rows: &BTreeMap<String, TaskRow>) -> Vec<(String, TaskResult)> {
    let id = |case: &str| rows[case].task_id.clone();
    let traceback = |case: &str| rows[case].traceback.clone();
    vec![
        (
            "started".into(),
            TaskResult {
                result: json!({}),
                ..TaskResult::new(id("started"), TaskState::Started)
            },
        ),
        (
            "success_text".into(),
            TaskResult::success(id("success_text"), json!(CALENDAR)),
        ),
        (
            "success_json".into(),
            TaskResult::success(
                id("success_json"),
                json!({"n": 1, "items": [1.5, "two", null, true]}),
            ),
        ),
        (
            "failure".into(),
            TaskResult {
                traceback: traceback("failure"),
                ..TaskResult::error(id("failure"), TaskState::Failure, "ValueError", "boom")
            },
        ),
        (
            "retry".into(),
            TaskResult {
                traceback: traceback("retry"),
                ..TaskResult::error(id("retry"), TaskState::Retry, "RuntimeError", "again")
            },
        ),
    ]
}

#[tokio::test]
async fn rows_we_write_are_the_rows_celery_writes() {
    let Some((store, schema)) = fresh_store("rows_we_write_are_the_rows_celery_writes").await
    else {
        return;
    };
    let rows = celery_rows();
    for (case, result) in our_results(&rows) {
        store.store(&result).await.expect("store");
        let ours = stored_row(&store, &schema.name, &result.task_id).await;
        let celerys = &rows[&case];
        assert_eq!(ours.status, celerys.status, "{case}");
        assert!(
            same_json(ours.result.as_deref(), celerys.result.as_deref()),
            "{case}: ours {:?}, Celery's {:?}",
            ours.result,
            celerys.result
        );
        assert_eq!(ours.traceback, celerys.traceback, "{case}");
        assert_eq!(ours.children, celerys.children, "{case}");
        assert_eq!(
            ours.has_date_done, celerys.has_date_done,
            "{case}: date_done"
        );
    }
}

#[tokio::test]
async fn python_celery_reads_the_rows_we_write() {
    let Some((store, schema)) = fresh_store("python_celery_reads_the_rows_we_write").await else {
        return;
    };
    let Some(python) =
        conformance_tests::skip::or_skip(conformance_tests::endpoint::celery_python())
    else {
        return;
    };
    let rows = celery_rows();
    let results = our_results(&rows);
    for (_, result) in &results {
        store.store(result).await.expect("store");
    }
    let url = support::url().expect("the server's URL");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../broker-core/tests/fixtures/celery/generate_database.py"
    );
    let output = Command::new(python)
        .arg(script)
        .arg(&url)
        .arg("--read")
        .arg(&schema.name)
        .args(results.iter().map(|(_, r)| r.task_id.clone()))
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect();
    assert_eq!(read.len(), results.len());
    for ((case, ours), python) in results.iter().zip(&read) {
        assert_eq!(python["status"], ours.status.as_str(), "{case}");
        match ours.status {
            TaskState::Failure | TaskState::Retry => {
                assert_eq!(
                    python["result"]["exc_type"], ours.result["exc_type"],
                    "{case}"
                );
                assert_eq!(
                    python["result"]["exc_message"], ours.result["exc_message"],
                    "{case}"
                );
                assert_eq!(python["traceback"], json!(ours.traceback), "{case}");
            }
            _ => assert_eq!(python["result"], ours.result, "{case}"),
        }
    }
}
