//! The worker runtime on the backend: what a task's run may rely on.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use broker_core::{
    Queue, Result, ResultStore, TaskResult, TaskState,
    celery::TaskMessage,
    tasks::send_task,
    worker::{TaskRegistry, TaskRequest, Worker, WorkerOptions},
};
use serde_json::{Map, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Ctx, Skip};

/// Task states kept in the test, for a worker that needs somewhere to write them.
#[derive(Debug, Default)]
pub(super) struct States(Mutex<HashMap<String, TaskResult>>);

#[async_trait]
impl ResultStore for States {
    fn backend(&self) -> &'static str {
        "conformance"
    }

    async fn store(&self, result: &TaskResult) -> Result<()> {
        let mut states = self.0.lock().expect("states");
        states.insert(result.task_id.clone(), result.clone());
        Ok(())
    }

    async fn fetch(&self, task_id: &str) -> Result<Option<TaskResult>> {
        Ok(self.0.lock().expect("states").get(task_id).cloned())
    }

    async fn forget(&self, task_id: &str) -> Result<()> {
        self.0.lock().expect("states").remove(task_id);
        Ok(())
    }
}

/// Claims must not be lost while a handler runs, and renewing them must not run a task twice.
/// Here a task's handler runs for two and a half leases while the worker renews its lease;
/// from the moment it starts, another consumer keeps asking for the queue's messages. The task runs once,
/// succeeds, and the other consumer never receives it.
///
/// Shown to fail: with the worker's lease renewal switched off (`LeaseRenewal::for_backend`
/// answering `None`), the lease ends mid-run, the other consumer receives the message and the
/// case stops at "another consumer received the message while its handler ran".
pub(super) async fn a_slow_handler_keeps_its_message(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let run_for = ctx.settings.lease * 5 / 2;
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let tasks = TaskRegistry::new().register("slow", move |_: TaskRequest| {
        let runs = counted.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(run_for).await;
            Ok(json!("done"))
        }
    });
    let task_id = send_task(&queue, &TaskMessage::new("slow", Vec::new(), Map::new()))
        .await
        .expect("send the task");
    let states = Arc::new(States::default());
    let worker = Worker::new(queue.clone(), states.clone(), tasks).with_options(WorkerOptions {
        concurrency: 1,
        prefetch: 1,
        poll_wait: Duration::from_millis(500),
        ..WorkerOptions::default()
    });
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));

    let other = Queue::new(ctx.connect().await, queue.name().to_owned());
    let started_by = Instant::now() + Duration::from_secs(10);
    while runs.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < started_by,
            "the worker never started the task"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + run_for + Duration::from_secs(10);
    let mut finished = None;
    while finished.is_none() && Instant::now() < deadline {
        let stolen = other
            .receive(1, Duration::from_millis(250))
            .await
            .expect("the other consumer's receive works");
        assert!(
            stolen.is_empty(),
            "another consumer received the message while its handler ran"
        );
        finished = states
            .fetch(&task_id)
            .await
            .expect("states")
            .filter(|state| state.status == TaskState::Success);
    }
    stop.cancel();
    running
        .await
        .expect("the worker task")
        .expect("the worker stops cleanly");
    assert!(finished.is_some(), "the slow task never succeeded");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the task ran more than once"
    );
    Ok(())
}
