//! Result stores: states and expiry.

use std::time::Duration;

use broker_core::{ResultStoreExt, TaskResult, TaskState};
use serde_json::json;

use super::{Ctx, Skip};

pub(super) async fn result_store_records_state_transitions(ctx: Ctx) -> Result<(), Skip> {
    let store = ctx.result_store(Duration::from_secs(3600)).await?;
    let id = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        store.state(&id).await.expect("state").status,
        TaskState::Pending,
        "unknown is PENDING"
    );

    store
        .store(&TaskResult::new(&id, TaskState::Started))
        .await
        .expect("store");
    assert_eq!(
        store.state(&id).await.expect("state").status,
        TaskState::Started
    );

    let retry = TaskResult::error(
        &id,
        TaskState::Retry,
        "ConnectionError",
        "calendar host down",
    );
    store.store(&retry).await.expect("store");
    let read = store.state(&id).await.expect("state");
    assert_eq!(read.status, TaskState::Retry);
    assert_eq!(read.error_message().as_deref(), Some("calendar host down"));

    let value = json!({"calendar": "BEGIN:VCALENDAR…", "events": 3, "ünï": [1.5, null]});
    store
        .store(&TaskResult::success(&id, value.clone()))
        .await
        .expect("store");
    let done = store.state(&id).await.expect("state");
    assert_eq!(done.status, TaskState::Success);
    assert_eq!(done.result, value);
    assert!(done.date_done.is_some());

    let failed_id = uuid::Uuid::new_v4().to_string();
    let failure = TaskResult::error(&failed_id, TaskState::Failure, "ValueError", "bad deadline");
    store.store(&failure).await.expect("store");
    let failed = store.state(&failed_id).await.expect("state");
    assert_eq!(failed.status, TaskState::Failure);
    assert_eq!(failed.error_message().as_deref(), Some("bad deadline"));
    assert_eq!(failed.result["exc_type"], "ValueError");

    store.forget(&id).await.expect("forget");
    assert_eq!(
        store.state(&id).await.expect("state").status,
        TaskState::Pending
    );
    store.forget(&id).await.expect("forgetting twice is fine");
    Ok(())
}

pub(super) async fn result_records_expire(ctx: Ctx) -> Result<(), Skip> {
    let store = ctx.result_store(Duration::from_secs(1)).await?;
    let id = uuid::Uuid::new_v4().to_string();
    store
        .store(&TaskResult::success(&id, json!(42)))
        .await
        .expect("store");
    assert_eq!(
        store.state(&id).await.expect("state").status,
        TaskState::Success
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        store.fetch(&id).await.expect("fetch").is_none(),
        "record outlived its expiry"
    );
    Ok(())
}
