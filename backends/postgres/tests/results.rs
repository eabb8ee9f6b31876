//! The result store: Celery's URL scheme, expiry that really deletes rows, and the deployment
//! shape where the broker is elsewhere and only the results live in PostgreSQL.

mod support;

use std::{sync::Arc, time::Duration};

use broker_core::{
    Queue, ResultStore, ResultStoreExt, TaskResult, TaskState,
    celery::TaskMessage,
    tasks::send_task,
    worker::{TaskError, TaskRegistry, TaskRequest, Worker, WorkerOptions},
};
use broker_memory::{MemoryBroker, MemoryConfig};
use broker_postgres::{PostgresConfig, PostgresResultStore};
use serde_json::{Map, Value, json};
use support::TestSchema;
use tokio_util::sync::CancellationToken;

async fn rows_for(store: &PostgresResultStore, schema: &str, task_id: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".celery_taskmeta WHERE task_id = $1"
    ))
    .bind(task_id)
    .fetch_one(store.pool())
    .await
    .expect("count rows")
}

/// `db+postgresql://` with Celery's tables in `schema`, built from the test server's URL.
fn celery_url(url: &str, schema: &str, expires_secs: u32) -> String {
    let rest = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .to_owned();
    let separator = if rest.contains('?') { '&' } else { '?' };
    format!("db+postgresql://{rest}{separator}result_schema={schema}&result_expires={expires_secs}")
}

#[tokio::test]
async fn celery_result_backend_url_opens_the_store_in_celerys_table() {
    let Some(url) =
        support::url_or_skip("celery_result_backend_url_opens_the_store_in_celerys_table")
    else {
        return;
    };
    let schema = TestSchema::fresh();
    let store = PostgresResultStore::connect_url(&celery_url(&url, &schema.name, 3600))
        .await
        .expect("db+postgresql:// opens");
    store
        .store(&TaskResult::success("t-1", json!({"ok": true})))
        .await
        .expect("store");
    let read = store.state("t-1").await.expect("state");
    assert_eq!(read.status, TaskState::Success);
    assert_eq!(read.result, json!({"ok": true}));
    assert_eq!(rows_for(&store, &schema.name, "t-1").await, 1);
}

#[tokio::test]
async fn purge_deletes_rows_whose_date_done_is_older_than_the_expiry() {
    let Some(url) =
        support::url_or_skip("purge_deletes_rows_whose_date_done_is_older_than_the_expiry")
    else {
        return;
    };
    let schema = TestSchema::fresh();
    let config = PostgresConfig {
        result_expires: Duration::from_secs(1),
        ..support::config(&url, &schema.name)
    };
    let store = support::result_store(config.clone()).await;
    store
        .store(&TaskResult::success("short-lived", json!(1)))
        .await
        .expect("store");
    store
        .store(&TaskResult::new("still-running", TaskState::Started))
        .await
        .expect("store");
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    assert!(store.fetch("short-lived").await.expect("fetch").is_none());
    assert_eq!(rows_for(&store, &schema.name, "short-lived").await, 1);
    assert!(store.purge_expired().await.expect("purge") >= 1);
    assert_eq!(rows_for(&store, &schema.name, "short-lived").await, 0);
    assert_eq!(
        store.state("still-running").await.expect("state").status,
        TaskState::Started,
        "a row without date_done never expires, as in Celery"
    );
}

#[tokio::test]
async fn later_writes_delete_expired_rows() {
    let Some(url) = support::url_or_skip("later_writes_delete_expired_rows") else {
        return;
    };
    let schema = TestSchema::fresh();
    let config = PostgresConfig {
        result_expires: Duration::from_secs(1),
        ..support::config(&url, &schema.name)
    };
    let store = support::result_store(config.clone()).await;
    store
        .store(&TaskResult::success("old", json!("old")))
        .await
        .expect("store");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    store
        .store(&TaskResult::success("new", json!("new")))
        .await
        .expect("store");

    assert_eq!(rows_for(&store, &schema.name, "old").await, 0);
    assert_eq!(rows_for(&store, &schema.name, "new").await, 1);
}

#[tokio::test]
async fn a_stored_success_is_never_replaced() {
    let Some(url) = support::url_or_skip("a_stored_success_is_never_replaced") else {
        return;
    };
    let schema = TestSchema::fresh();
    let store = support::result_store(support::config(&url, &schema.name)).await;
    store
        .store(&TaskResult::success("once", json!("first")))
        .await
        .expect("store");
    store
        .store(&TaskResult::error(
            "once",
            TaskState::Failure,
            "ValueError",
            "late",
        ))
        .await
        .expect("a later write is accepted and ignored");
    let read = store.state("once").await.expect("state");
    assert_eq!(read.status, TaskState::Success);
    assert_eq!(read.result, json!("first"));
}

fn tasks() -> TaskRegistry {
    TaskRegistry::new()
        .register("calendar.build", |request: TaskRequest| async move {
            let todos = request.args.first().and_then(Value::as_u64).unwrap_or(0);
            Ok(json!({"events": todos}))
        })
        .register("calendar.fail", |_request: TaskRequest| async move {
            Err::<Value, _>(TaskError::invalid_input("deadline is not a date"))
        })
}

/// Polls the store until `task_id` is ready or 20 s passed.
async fn ready(store: &dyn ResultStore, task_id: &str) -> TaskResult {
    for _ in 0..200 {
        let state = store.state(task_id).await.expect("state");
        if state.status.is_ready() {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("task {task_id} did not finish");
}

async fn run_two_tasks(queue: Queue, results: Arc<dyn ResultStore>) {
    let shutdown = CancellationToken::new();
    let worker = Worker::new(queue.clone(), results.clone(), tasks()).with_options(WorkerOptions {
        poll_wait: Duration::from_millis(200),
        ..WorkerOptions::default()
    });
    let running = tokio::spawn(worker.run(shutdown.clone()));

    let ok = TaskMessage::new("calendar.build", vec![json!(3)], Map::new());
    let ok_id = send_task(&queue, &ok).await.expect("send");
    let bad = TaskMessage::new("calendar.fail", vec![], Map::new());
    let bad_id = send_task(&queue, &bad).await.expect("send");

    let done = ready(results.as_ref(), &ok_id).await;
    assert_eq!(done.status, TaskState::Success);
    assert_eq!(done.result, json!({"events": 3}));
    let failed = ready(results.as_ref(), &bad_id).await;
    assert_eq!(failed.status, TaskState::Failure);
    assert_eq!(
        failed.error_message().as_deref(),
        Some("deadline is not a date")
    );

    shutdown.cancel();
    let report = running.await.expect("worker").expect("clean shutdown");
    assert_eq!((report.succeeded, report.failed), (1, 1));
}

#[tokio::test]
async fn results_in_postgres_work_with_a_broker_elsewhere() {
    let Some(url) = support::url_or_skip("results_in_postgres_work_with_a_broker_elsewhere") else {
        return;
    };
    let schema = TestSchema::fresh();
    // The seed's shape: the broker is another system (here the in-process one standing in for
    // SQS or Redis), CELERY_RESULT_BACKEND=db+postgresql://...
    let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
    let queue = Queue::declare(broker, "ical").await.expect("declare");
    let results: Arc<dyn ResultStore> = Arc::new(
        PostgresResultStore::connect_url(&celery_url(&url, &schema.name, 3600))
            .await
            .expect("store"),
    );
    run_two_tasks(queue, results).await;
}

#[tokio::test]
async fn worker_runs_tasks_with_broker_and_results_in_postgres() {
    let Some(url) = support::url_or_skip("worker_runs_tasks_with_broker_and_results_in_postgres")
    else {
        return;
    };
    let schema = TestSchema::fresh();
    let config = support::config(&url, &schema.name);
    let broker = Arc::new(support::broker(config.clone()).await);
    let queue = Queue::declare(broker.clone(), "ical")
        .await
        .expect("declare");
    let results: Arc<dyn ResultStore> = Arc::new(support::result_store(config.clone()).await);
    run_two_tasks(queue.clone(), results).await;
    let left = queue
        .receive(10, Duration::from_millis(300))
        .await
        .expect("receive");
    assert!(left.is_empty(), "every task message was acked");
}
