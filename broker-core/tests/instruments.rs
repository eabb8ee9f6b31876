//! Every metric the framework records, as a recorder sees it while a worker runs tasks that
//! succeed, fail, retry, expire and cannot be decoded.

use std::{sync::Arc, time::Duration};

use broker_core::{
    Broker, ErrorKind, Message, Queue, ResultStore, ResultStoreExt, RetryPolicy, TaskState,
    celery::TaskMessage,
    instruments::{
        BROKER_CALL, BROKER_CALL_ERRORS, QUEUE_DEPTH, TASK_QUEUE_WAIT, TASK_RUN,
        TASKS_DEAD_LETTERED, TASKS_FAILED, TASKS_IN_FLIGHT, TASKS_RECEIVED, TASKS_RETRIED,
        TASKS_REVOKED, TASKS_SUCCEEDED,
    },
    tasks::send_task,
    worker::{TaskError, TaskRegistry, TaskRequest, Worker, WorkerOptions},
};
use broker_memory::{MemoryBroker, MemoryConfig, MemoryResultStore};
use metrics::{SharedString, Unit};
use metrics_util::{
    CompositeKey,
    debugging::{DebugValue, DebuggingRecorder},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Everything recorded, taken once: a snapshot drains what it reads.
type Recorded = Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>;

/// The values of `name` whose labels include every one of `labels`.
fn recorded<'a>(
    snapshot: &'a Recorded,
    name: &str,
    labels: &[(&str, &str)],
) -> Vec<&'a DebugValue> {
    snapshot
        .iter()
        .filter(|(key, ..)| {
            key.key().name() == name
                && labels.iter().all(|(label, value)| {
                    key.key()
                        .labels()
                        .any(|l| l.key() == *label && l.value() == *value)
                })
        })
        .map(|(.., value)| value)
        .collect()
}

fn counter(snapshotter: &Recorded, name: &str, labels: &[(&str, &str)]) -> u64 {
    recorded(snapshotter, name, labels)
        .into_iter()
        .map(|value| match value {
            DebugValue::Counter(n) => *n,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

fn samples(snapshotter: &Recorded, name: &str, labels: &[(&str, &str)]) -> usize {
    recorded(snapshotter, name, labels)
        .into_iter()
        .map(|value| match value {
            DebugValue::Histogram(samples) => samples.len(),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

fn gauge(snapshotter: &Recorded, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    recorded(snapshotter, name, labels)
        .into_iter()
        .map(|value| match value {
            DebugValue::Gauge(v) => v.into_inner(),
            other => panic!("{name} is not a gauge: {other:?}"),
        })
        .reduce(|a, b| a + b)
}

async fn wait_for(results: &Arc<dyn ResultStore>, id: &str, state: TaskState) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let current = results.state(id).await.expect("read the state").status;
        if current == state {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} stuck at {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// One thread: the recorder is this thread's, and the worker's tasks run on it too.
#[tokio::test(flavor = "current_thread")]
async fn every_outcome_and_every_broker_call_is_recorded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _installed = metrics::set_default_local_recorder(&recorder);

    let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(MemoryConfig::default()));
    let queue = Queue::declare(broker.clone(), "measured")
        .await
        .expect("declare");
    let results: Arc<dyn ResultStore> = Arc::new(MemoryResultStore::new(Duration::from_secs(60)));
    let tasks = TaskRegistry::new()
        .register("fine", |_: TaskRequest| async { Ok(json!(1)) })
        .register("broken", |_: TaskRequest| async {
            Err(TaskError::fail("ValueError", "bad input"))
        })
        .register("flaky", |request: TaskRequest| async move {
            if request.retries == 0 {
                Err(TaskError::retry("try again"))
            } else {
                Ok(json!(2))
            }
        });
    let options = WorkerOptions {
        poll_wait: Duration::from_millis(100),
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            jitter: false,
            ..RetryPolicy::default()
        },
        ..WorkerOptions::default()
    };
    let stop = CancellationToken::new();
    let worker = Worker::new(queue.clone(), results.clone(), tasks).with_options(options);
    let running = tokio::spawn(worker.run(stop.clone()));

    let task = |name: &str| TaskMessage::new(name, Vec::new(), serde_json::Map::new());
    let fine = send_task(&queue, &task("fine")).await.expect("send");
    let broken = send_task(&queue, &task("broken")).await.expect("send");
    let flaky = send_task(&queue, &task("flaky")).await.expect("send");
    let stale = task("fine").with_expires(chrono::Utc::now() - chrono::Duration::seconds(1));
    let expired = send_task(&queue, &stale).await.expect("send");
    queue
        .publish(Message::new("not a task"))
        .await
        .expect("publish poison");
    let invented = send_task(&queue, &task("made.up")).await.expect("send");
    let missing = Queue::new(broker.clone(), "missing");
    let refused = missing
        .publish(Message::new("lost"))
        .await
        .expect_err("no such queue");
    assert_eq!(refused.kind(), ErrorKind::QueueNotFound);

    wait_for(&results, &fine, TaskState::Success).await;
    wait_for(&results, &broken, TaskState::Failure).await;
    wait_for(&results, &flaky, TaskState::Success).await;
    wait_for(&results, &expired, TaskState::Revoked).await;
    wait_for(&results, &invented, TaskState::Failure).await;
    stop.cancel();
    let report = running.await.expect("joined").expect("the worker ran");
    assert_eq!(
        report.dead_lettered, 2,
        "the poison message and the unknown task"
    );

    let on = |task: &'static str| [("backend", "memory"), ("queue", "measured"), ("task", task)];
    let s = &snapshotter.snapshot().into_vec();
    assert_eq!(
        counter(s, TASKS_RECEIVED, &on("fine")),
        2,
        "run once, expired once"
    );
    assert_eq!(counter(s, TASKS_SUCCEEDED, &on("fine")), 1);
    assert_eq!(counter(s, TASKS_REVOKED, &on("fine")), 1);
    assert_eq!(counter(s, TASKS_FAILED, &on("broken")), 1);
    assert_eq!(counter(s, TASKS_RETRIED, &on("flaky")), 1);
    assert_eq!(counter(s, TASKS_SUCCEEDED, &on("flaky")), 1);
    assert_eq!(counter(s, TASKS_DEAD_LETTERED, &on("(undecodable)")), 1);
    assert_eq!(
        counter(s, TASKS_DEAD_LETTERED, &on("(unregistered)")),
        1,
        "a task name no handler knows is not a label of its own"
    );
    assert!(recorded(s, TASKS_DEAD_LETTERED, &on("made.up")).is_empty());
    assert_eq!(samples(s, TASK_RUN, &on("flaky")), 2, "two runs");
    assert_eq!(samples(s, TASK_QUEUE_WAIT, &on("broken")), 1);
    let queue_labels = [("backend", "memory"), ("queue", "measured")];
    assert_eq!(gauge(s, TASKS_IN_FLIGHT, &queue_labels), Some(0.0));
    assert!(
        gauge(s, QUEUE_DEPTH, &queue_labels).is_some(),
        "the worker samples the depth of a queue it can count"
    );
    for operation in ["declare queue", "publish", "receive", "ack", "count"] {
        let labels = [("queue", "measured"), ("operation", operation)];
        assert!(samples(s, BROKER_CALL, &labels) > 0, "no {operation} timed");
    }
    let failed_publish = [
        ("queue", "missing"),
        ("operation", "publish"),
        ("kind", "QueueNotFound"),
    ];
    assert_eq!(counter(s, BROKER_CALL_ERRORS, &failed_publish), 1);
}
