//! A worker process killed with SIGKILL in the middle of a task loses nothing: another worker
//! finishes the task once the dead worker's lease ends.

mod support;

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use broker_core::{
    Queue, ResultStoreExt, TaskState,
    celery::TaskMessage,
    tasks::send_task,
    worker::{TaskError, TaskRegistry, TaskRequest, Worker, WorkerOptions},
};
use broker_redis::{RedisBroker, RedisConfig, RedisResultStore};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Set (by the parent, on the child's command only) to `<url> <key prefix> <queue>`.
const CHILD_VAR: &str = "BROKER_REDIS_WORKER_CHILD";
const LEASE: Duration = Duration::from_secs(2);

fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig {
        key_prefix: prefix.to_owned(),
        visibility_timeout: LEASE,
        ..RedisConfig::new(url)
    }
}

async fn worker(url: &str, prefix: &str, queue: &str, tasks: TaskRegistry) -> Worker {
    let broker = RedisBroker::connect(config(url, prefix))
        .await
        .expect("connect");
    let results = RedisResultStore::connect(config(url, prefix))
        .await
        .expect("connect");
    let queue = Queue::new(Arc::new(broker), queue.to_owned());
    Worker::new(queue, Arc::new(results), tasks).with_options(WorkerOptions {
        concurrency: 1,
        prefetch: 1,
        poll_wait: Duration::from_millis(200),
        // The parent waits for STARTED to know the task runs.
        track_started: true,
        ..WorkerOptions::default()
    })
}

/// Not a test of its own: the body of the child worker process, which runs a task that never
/// ends (renewing its lease) until the parent kills the process. Does nothing unless the
/// parent set its variable.
#[test]
fn worker_child_entry() {
    let Ok(spec) = std::env::var(CHILD_VAR) else {
        return;
    };
    let mut parts = spec.split(' ');
    let (url, prefix, queue) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let tasks = TaskRegistry::new().register("calendar", |_: TaskRequest| async {
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok::<Value, TaskError>(json!("the killed worker never gets here"))
        });
        let worker = worker(url, prefix, queue, tasks).await;
        worker
            .run(CancellationToken::new())
            .await
            .expect("worker runs");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_of_a_worker_killed_mid_task_is_finished_by_another_worker() {
    let Some(url) = support::shared_url() else {
        return;
    };
    let prefix = support::random_prefix();
    let _cleanup = Cleanup(url.clone(), prefix.clone());
    let broker = Arc::new(RedisBroker::connect(config(&url, &prefix)).await.unwrap());
    let queue = Queue::declare(broker, "ical").await.unwrap();
    let results = RedisResultStore::connect(config(&url, &prefix))
        .await
        .unwrap();
    let task = TaskMessage::new("calendar", vec![json!(7)], serde_json::Map::new());
    let id = send_task(&queue, &task).await.expect("send");

    let exe = std::env::current_exe().unwrap();
    let mut child = tokio::process::Command::new(exe)
        .args([
            "--exact",
            "worker_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, format!("{url} {prefix} ical"))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the child worker");
    let deadline = Instant::now() + Duration::from_secs(60);
    while results.state(&id).await.unwrap().status != TaskState::Started {
        assert!(
            Instant::now() < deadline,
            "the child worker never started the task"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the child renew its lease at least once, so it is the renewals that stop.
    tokio::time::sleep(LEASE).await;
    child.start_kill().expect("SIGKILL the worker mid-task");
    child.wait().await.unwrap();
    let killed_at = Instant::now();

    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let tasks = TaskRegistry::new().register("calendar", move |request: TaskRequest| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<Value, TaskError>(json!({"finished": request.args})) }
    });
    let stop = CancellationToken::new();
    let rescuer = tokio::spawn(worker(&url, &prefix, "ical", tasks).await.run(stop.clone()));
    let deadline = Instant::now() + LEASE + Duration::from_secs(30);
    let done = loop {
        let state = results.state(&id).await.unwrap();
        if state.status == TaskState::Success {
            break state;
        }
        assert!(
            Instant::now() < deadline,
            "not finished after the lease: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.result, json!({"finished": [7]}));
    assert!(
        killed_at.elapsed() <= LEASE + Duration::from_secs(10),
        "finished {:?} after the kill",
        killed_at.elapsed()
    );
    stop.cancel();
    let report = rescuer.await.unwrap().expect("worker report");
    assert_eq!(report.succeeded, 1);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "run once by the second worker"
    );
    let leftover = queue.receive(1, Duration::from_millis(500)).await.unwrap();
    assert!(leftover.is_empty(), "the task was acked");
}

struct Cleanup(String, String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        support::delete_prefix(&self.0, &self.1);
    }
}
