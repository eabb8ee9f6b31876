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

/// A batch of records leaves each task's record as writing them one by one would, a task's
/// repeated records and a record stored before the batch included.
pub(super) async fn a_batch_of_records_reads_back_as_written_one_by_one(
    ctx: Ctx,
) -> Result<(), Skip> {
    let store = ctx.result_store(Duration::from_secs(3600)).await?;
    // The same history twice over, under fresh ids: once record by record, once as a batch.
    let history = |prefix: &str| {
        let id = |task: &str| format!("{prefix}-{task}-{}", uuid::Uuid::new_v4());
        let [retried, succeeded_twice, done, earlier] =
            ["retried", "succeeded-twice", "done", "earlier"].map(id);
        let before = TaskResult::success(&earlier, json!("first run"));
        let records = vec![
            TaskResult::new(&retried, TaskState::Started),
            TaskResult::success(&succeeded_twice, json!(1)),
            TaskResult::error(&retried, TaskState::Retry, "ConnectionError", "host down"),
            TaskResult::success(&done, json!({"events": 3})),
            TaskResult::error(&succeeded_twice, TaskState::Failure, "Late", "after it"),
            TaskResult::error(&earlier, TaskState::Failure, "Late", "after it"),
        ];
        (before, records, [retried, succeeded_twice, done, earlier])
    };
    let (before, records, one_by_one) = history("one");
    store.store(&before).await.expect("store");
    for record in &records {
        store.store(record).await.expect("store");
    }
    let (before, records, batched) = history("batch");
    store.store(&before).await.expect("store");
    store.store_all(&records).await.expect("store a batch");

    for (single, batch) in one_by_one.iter().zip(&batched) {
        let single = store.state(single).await.expect("state");
        let batch = store.state(batch).await.expect("state");
        assert_eq!(
            (batch.status, &batch.result, &batch.traceback),
            (single.status, &single.result, &single.traceback),
            "{} reads back as when its records were written one by one",
            batch.task_id
        );
    }
    let done = store.state(&batched[2]).await.expect("state");
    assert_eq!(
        (done.status, done.result),
        (TaskState::Success, json!({"events": 3}))
    );
    store
        .store_all(&[])
        .await
        .expect("an empty batch writes nothing");
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
