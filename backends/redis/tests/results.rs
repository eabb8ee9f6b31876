//! The result store writes exactly what Celery's Redis backend writes, with its expiry, and
//! announces each write on the key's channel.

mod support;

use std::time::Duration;

use broker_core::{ResultStore, ResultStoreExt, TaskResult, TaskState};
use broker_redis::{RedisConfig, RedisResultStore};
use futures::StreamExt;
use redis::AsyncCommands;
use serde_json::{Value, json};
use support::SharedPrefix;

fn fixture(expires: Duration) -> Option<SharedPrefix> {
    SharedPrefix::new(|config| RedisConfig {
        result_expires: expires,
        ..config
    })
}

#[tokio::test]
async fn result_is_celerys_json_with_its_expiry_and_is_published_on_its_key() {
    let Some(fx) = fixture(Duration::from_secs(600)) else {
        return;
    };
    let store = RedisResultStore::connect(fx.config.clone()).await.unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let key = format!("{}celery-task-meta-{id}", fx.config.key_prefix);

    let client = redis::Client::open(fx.url.as_str()).unwrap();
    let mut subscriber = client.get_async_pubsub().await.unwrap();
    subscriber.subscribe(&key).await.unwrap();

    store
        .store(&TaskResult::success(&id, json!({"events": 3})))
        .await
        .unwrap();

    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let text: String = raw.get(&key).await.unwrap();
    let stored: Value = serde_json::from_str(&text).unwrap();
    let fields: Vec<&str> = stored
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "children",
            "date_done",
            "result",
            "status",
            "task_id",
            "traceback"
        ],
        "Celery's fields, nothing else"
    );
    assert_eq!(stored["status"], "SUCCESS");
    assert_eq!(stored["result"], json!({"events": 3}));
    assert_eq!(stored["traceback"], Value::Null);
    assert_eq!(stored["children"], json!([]));
    assert_eq!(stored["task_id"], id);
    assert!(
        stored["date_done"].as_str().unwrap().ends_with("+00:00"),
        "Python's isoformat() of a UTC time: {}",
        stored["date_done"]
    );
    let ttl: i64 = raw.ttl(&key).await.unwrap();
    assert!((590..=600).contains(&ttl), "expiry {ttl}s, configured 600s");

    let announced = tokio::time::timeout(Duration::from_secs(5), subscriber.on_message().next())
        .await
        .expect("published within 5 s")
        .expect("a message");
    assert_eq!(announced.get_channel_name(), key);
    assert_eq!(announced.get_payload::<String>().unwrap(), text);
}

#[tokio::test]
async fn missing_result_reads_as_pending() {
    let Some(fx) = fixture(Duration::from_secs(60)) else {
        return;
    };
    let store = RedisResultStore::connect(fx.config.clone()).await.unwrap();
    let state = store.state("never-sent").await.unwrap();
    assert_eq!(state.status, TaskState::Pending);
    assert!(store.fetch("never-sent").await.unwrap().is_none());
}

#[tokio::test]
async fn result_written_by_python_celery_is_read() {
    let Some(fx) = fixture(Duration::from_secs(60)) else {
        return;
    };
    let store = RedisResultStore::connect(fx.config.clone()).await.unwrap();
    let key = format!("{}celery-task-meta-py-1", fx.config.key_prefix);
    let python = r#"{"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": ["bad deadline"], "exc_module": "builtins"}, "traceback": "Traceback (most recent call last): ...", "children": [], "date_done": "2026-01-31T12:00:00.123456+00:00", "task_id": "py-1"}"#;
    let client = redis::Client::open(fx.url.as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = raw.set_ex(&key, python, 60).await.unwrap();

    let read = store.state("py-1").await.unwrap();
    assert_eq!(read.status, TaskState::Failure);
    assert_eq!(read.error_message().as_deref(), Some("bad deadline"));
    assert!(read.date_done.is_some());
}

#[tokio::test]
async fn zero_expiry_keeps_results_until_forgotten() {
    let Some(fx) = fixture(Duration::ZERO) else {
        return;
    };
    let store = RedisResultStore::connect(fx.config.clone()).await.unwrap();
    store
        .store(&TaskResult::new("kept", TaskState::Started))
        .await
        .unwrap();
    let client = redis::Client::open(fx.url.as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = raw
        .ttl(format!("{}celery-task-meta-kept", fx.config.key_prefix))
        .await
        .unwrap();
    assert_eq!(ttl, -1, "no expiry");
    store.forget("kept").await.unwrap();
    assert!(store.fetch("kept").await.unwrap().is_none());
}
