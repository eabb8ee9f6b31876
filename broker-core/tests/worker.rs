//! The worker runtime's guarantees, on the in-process broker.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicUsize, Ordering},
    },
    time::Duration,
};

use broker_core::{
    Broker, Capacity, DEAD_LETTER_REASON_HEADER, ErrorKind, Message, Queue, ResultStore,
    ResultStoreExt, RetryPolicy, TaskState,
    celery::TaskMessage,
    tasks::send_task,
    worker::{
        TaskError, TaskOptions, TaskRegistry, TaskRequest, Worker, WorkerOptions, WorkerReport,
    },
};
use broker_memory::{MemoryBroker, MemoryConfig, MemoryResultStore};
use serde_json::{Map, Value, json};
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

struct Setup {
    queue: Queue,
    results: Arc<dyn ResultStore>,
}

async fn setup(lease: Duration) -> Setup {
    let config = MemoryConfig {
        visibility_timeout: lease,
        ..MemoryConfig::default()
    };
    let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(config));
    let queue = Queue::declare(broker, "tasks").await.expect("declare");
    Setup {
        queue,
        results: Arc::new(MemoryResultStore::new(Duration::from_secs(3600))),
    }
}

/// Fast polls and retries; `STARTED` tracked, as the cases that watch a running task need.
fn fast_options() -> WorkerOptions {
    WorkerOptions {
        track_started: true,
        poll_wait: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: false,
        },
        ..WorkerOptions::default()
    }
}

fn start(
    setup: &Setup,
    tasks: TaskRegistry,
    options: WorkerOptions,
) -> (CancellationToken, JoinHandle<WorkerReport>) {
    let stop = CancellationToken::new();
    let worker =
        Worker::new(setup.queue.clone(), setup.results.clone(), tasks).with_options(options);
    let token = stop.clone();
    let handle = tokio::spawn(async move { worker.run(token).await.expect("worker runs") });
    (stop, handle)
}

async fn send(setup: &Setup, name: &str, args: Vec<Value>) -> String {
    send_task(
        &setup.queue,
        &TaskMessage::new(name, args, serde_json::Map::new()),
    )
    .await
    .expect("send")
}

async fn wait_for_state(setup: &Setup, id: &str, state: TaskState) -> broker_core::TaskResult {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let record = setup.results.state(id).await.expect("state");
        if record.status == state {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} never reached {state}; it is {}",
            record.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn dead_letters(setup: &Setup) -> Vec<broker_core::Delivery> {
    let dlq_name = setup
        .queue
        .broker()
        .dead_letter_queue(setup.queue.name())
        .expect("dlq");
    let dlq = Queue::new(setup.queue.broker().clone(), dlq_name);
    dlq.receive(10, Duration::from_millis(500))
        .await
        .expect("receive dead letters")
}

#[tokio::test]
async fn successful_task_records_its_result_and_is_acked() {
    let setup = setup(Duration::from_secs(5)).await;
    let tasks = TaskRegistry::new().register("add", |req: TaskRequest| async move {
        let sum: i64 = req.args.iter().filter_map(Value::as_i64).sum();
        Ok(json!(sum))
    });
    let (stop, worker) = start(&setup, tasks, fast_options());
    let id = send(&setup, "add", vec![json!(2), json!(40)]).await;

    let done = wait_for_state(&setup, &id, TaskState::Success).await;
    assert_eq!(done.result, json!(42));
    stop.cancel();
    let report = worker.await.expect("join");
    assert_eq!(report.succeeded, 1);
    let left = setup
        .queue
        .receive(1, Duration::from_millis(200))
        .await
        .expect("receive");
    assert!(left.is_empty(), "an acked task does not come back");
}

/// A result store whose STARTED writes are slow, recording the order writes finish in.
#[derive(Debug)]
struct SlowStart {
    inner: MemoryResultStore,
    written: Mutex<Vec<TaskState>>,
}

#[async_trait::async_trait]
impl ResultStore for SlowStart {
    fn backend(&self) -> &'static str {
        "slow-start"
    }
    async fn store(&self, result: &broker_core::TaskResult) -> broker_core::Result<()> {
        if result.status == TaskState::Started {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.inner.store(result).await?;
        self.written.lock().unwrap().push(result.status);
        Ok(())
    }
    async fn fetch(&self, id: &str) -> broker_core::Result<Option<broker_core::TaskResult>> {
        self.inner.fetch(id).await
    }
    async fn forget(&self, id: &str) -> broker_core::Result<()> {
        self.inner.forget(id).await
    }
}

#[tokio::test]
async fn started_is_written_while_the_task_runs_and_never_after_its_outcome() {
    let mut setup = setup(Duration::from_secs(5)).await;
    let store = Arc::new(SlowStart {
        inner: MemoryResultStore::new(Duration::from_secs(3600)),
        written: Mutex::default(),
    });
    setup.results = store.clone();
    let ran = Arc::new(Mutex::new(None));
    let seen = ran.clone();
    let tasks = TaskRegistry::new().register("quick", move |_: TaskRequest| {
        *seen.lock().unwrap() = Some(Instant::now());
        async { Ok(json!("done")) }
    });
    let (stop, worker) = start(&setup, tasks, fast_options());
    let sent = Instant::now();
    let id = send(&setup, "quick", vec![]).await;

    let done = wait_for_state(&setup, &id, TaskState::Success).await;
    assert_eq!(done.result, json!("done"));
    let started_running = ran.lock().unwrap().expect("the handler ran");
    assert!(
        started_running.duration_since(sent) < Duration::from_millis(800),
        "the handler waited for the STARTED write"
    );
    assert_eq!(
        *store.written.lock().unwrap(),
        [TaskState::Started, TaskState::Success]
    );
    stop.cancel();
    worker.await.expect("join");
}

#[tokio::test]
async fn started_is_written_only_when_tracked() {
    let mut setup = setup(Duration::from_secs(5)).await;
    let store = Arc::new(SlowStart {
        inner: MemoryResultStore::new(Duration::from_secs(3600)),
        written: Mutex::default(),
    });
    setup.results = store.clone();
    let tasks = TaskRegistry::new().register("quick", |_: TaskRequest| async { Ok(json!(1)) });
    let options = WorkerOptions {
        track_started: false,
        ..fast_options()
    };
    let (stop, worker) = start(&setup, tasks, options);
    let id = send(&setup, "quick", vec![]).await;
    wait_for_state(&setup, &id, TaskState::Success).await;
    stop.cancel();
    worker.await.expect("join");
    assert_eq!(*store.written.lock().unwrap(), [TaskState::Success]);
}

/// A task that counts its runs and returns a value nobody should store.
fn counted(runs: &Arc<AtomicU32>) -> impl broker_core::worker::Task {
    let runs = runs.clone();
    move |_: TaskRequest| {
        runs.fetch_add(1, Ordering::SeqCst);
        async { Ok(json!("not stored")) }
    }
}

/// Waits until `runs` reaches `count`, then stops the worker and checks the queue is empty.
async fn finish(
    setup: &Setup,
    runs: &AtomicU32,
    count: u32,
    stop: CancellationToken,
    worker: JoinHandle<WorkerReport>,
) -> WorkerReport {
    let deadline = Instant::now() + Duration::from_secs(10);
    while runs.load(Ordering::SeqCst) < count {
        assert!(Instant::now() < deadline, "the tasks never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let report = worker.await.expect("join");
    let left = setup
        .queue
        .receive(1, Duration::from_millis(200))
        .await
        .expect("receive");
    assert!(left.is_empty(), "the tasks were acked");
    report
}

#[tokio::test]
async fn a_task_registered_to_ignore_its_result_writes_no_state() {
    let setup = setup(Duration::from_secs(5)).await;
    let runs = Arc::new(AtomicU32::new(0));
    let tasks = TaskRegistry::new().register_with(
        "fire_and_forget",
        counted(&runs),
        TaskOptions {
            ignore_result: true,
        },
    );
    let (stop, worker) = start(&setup, tasks, fast_options());
    let id = send(&setup, "fire_and_forget", vec![]).await;
    let report = finish(&setup, &runs, 1, stop, worker).await;
    assert_eq!(report.succeeded, 1);
    assert_eq!(
        setup.results.fetch(&id).await.unwrap(),
        None,
        "no state, not even STARTED"
    );
}

#[tokio::test]
async fn a_message_asking_to_ignore_its_result_writes_no_state() {
    let setup = setup(Duration::from_secs(5)).await;
    let runs = Arc::new(AtomicU32::new(0));
    let tasks = TaskRegistry::new().register("task", counted(&runs));
    let (stop, worker) = start(&setup, tasks, fast_options());
    let ignored = TaskMessage::new("task", vec![], Map::new()).with_ignore_result(Some(true));
    let ignored = send_task(&setup.queue, &ignored).await.expect("send");
    let kept = send(&setup, "task", vec![]).await;
    finish(&setup, &runs, 2, stop, worker).await;
    assert_eq!(setup.results.fetch(&ignored).await.unwrap(), None);
    assert_eq!(
        setup.results.fetch(&kept).await.unwrap().map(|r| r.status),
        Some(TaskState::Success),
        "a message that does not ask keeps its result"
    );
}

#[tokio::test]
async fn a_worker_without_a_result_store_runs_only_tasks_that_ignore_results() {
    let setup = setup(Duration::from_secs(5)).await;
    let runs = Arc::new(AtomicU32::new(0));
    let storing = TaskRegistry::new()
        .register_with(
            "ignored",
            counted(&runs),
            TaskOptions {
                ignore_result: true,
            },
        )
        .register("stored", counted(&runs));
    let refused = Worker::without_results(setup.queue.clone(), storing).expect_err("refused");
    assert_eq!(refused.kind(), ErrorKind::Configuration);
    assert!(refused.to_string().contains("stored"), "{refused}");

    let tasks = TaskRegistry::new().register_with(
        "ignored",
        counted(&runs),
        TaskOptions {
            ignore_result: true,
        },
    );
    let worker = Worker::without_results(setup.queue.clone(), tasks)
        .expect("every task ignores its result")
        .with_options(fast_options());
    let stop = CancellationToken::new();
    let token = stop.clone();
    let handle = tokio::spawn(async move { worker.run(token).await.expect("worker runs") });
    send(&setup, "ignored", vec![]).await;
    send(&setup, "ignored", vec![]).await;
    let report = finish(&setup, &runs, 2, stop, handle).await;
    assert_eq!(report.succeeded, 2);
}

/// The in-process broker, recording how many deliveries each receive that got any returned
/// and how many tokens each ack call carried; with `slow_first_ack`, the first ack takes a
/// second.
#[derive(Debug)]
struct Observed {
    inner: MemoryBroker,
    slow_first_ack: bool,
    receives: Mutex<Vec<usize>>,
    acks: Mutex<Vec<usize>>,
}

impl Observed {
    fn new(slow_first_ack: bool) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryBroker::new(MemoryConfig {
                visibility_timeout: Duration::from_secs(30),
                ..MemoryConfig::default()
            }),
            slow_first_ack,
            receives: Mutex::default(),
            acks: Mutex::default(),
        })
    }

    async fn setup(self: &Arc<Self>) -> Setup {
        let queue = Queue::declare(self.clone(), "tasks")
            .await
            .expect("declare");
        Setup {
            queue,
            results: Arc::new(MemoryResultStore::new(Duration::from_secs(3600))),
        }
    }

    fn record(
        &self,
        got: broker_core::Result<Vec<broker_core::Received>>,
    ) -> broker_core::Result<Vec<broker_core::Received>> {
        if let Ok(received) = &got {
            if !received.is_empty() {
                self.receives.lock().unwrap().push(received.len());
            }
        }
        got
    }
}

#[async_trait::async_trait]
impl Broker for Observed {
    fn capabilities(&self) -> &broker_core::Capabilities {
        self.inner.capabilities()
    }
    async fn declare_queue(&self, queue: &str) -> broker_core::Result<()> {
        self.inner.declare_queue(queue).await
    }
    async fn delete_queue(&self, queue: &str) -> broker_core::Result<()> {
        self.inner.delete_queue(queue).await
    }
    async fn publish(&self, queue: &str, batch: &[Message]) -> broker_core::Result<()> {
        self.inner.publish(queue, batch).await
    }
    async fn receive_up_to(
        &self,
        queue: &str,
        capacity: &Capacity<'_>,
        wait: Duration,
    ) -> broker_core::Result<Vec<broker_core::Received>> {
        self.record(self.inner.receive_up_to(queue, capacity, wait).await)
    }
    async fn ack(&self, queue: &str, tokens: &[broker_core::AckToken]) -> broker_core::Result<()> {
        let first = {
            let mut calls = self.acks.lock().unwrap();
            calls.push(tokens.len());
            calls.len() == 1
        };
        if first && self.slow_first_ack {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.inner.ack(queue, tokens).await
    }
    async fn nack(
        &self,
        queue: &str,
        token: &broker_core::AckToken,
        action: &broker_core::NackAction,
    ) -> broker_core::Result<()> {
        self.inner.nack(queue, token, action).await
    }
    async fn extend_lease(
        &self,
        queue: &str,
        token: &broker_core::AckToken,
        lease: Duration,
    ) -> broker_core::Result<()> {
        self.inner.extend_lease(queue, token, lease).await
    }
    fn dead_letter_queue(&self, queue: &str) -> Option<String> {
        self.inner.dead_letter_queue(queue)
    }
    async fn close(&self) -> broker_core::Result<()> {
        self.inner.close().await
    }
}

/// Sends ten `echo` tasks, runs them ten at a time (no `STARTED`) until all succeeded, and
/// stops the worker.
async fn run_ten_at_once(setup: &Setup) {
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(send(setup, "echo", vec![json!(n)]).await);
    }
    let tasks =
        TaskRegistry::new().register(
            "echo",
            |req: TaskRequest| async move { Ok(req.args[0].clone()) },
        );
    let options = WorkerOptions {
        concurrency: 10,
        prefetch: 10,
        track_started: false,
        ..fast_options()
    };
    let (stop, worker) = start(setup, tasks, options);
    for id in &ids {
        wait_for_state(setup, id, TaskState::Success).await;
    }
    stop.cancel();
    assert_eq!(worker.await.expect("join").succeeded, 10);
}

#[tokio::test]
async fn acks_of_tasks_finishing_together_go_out_in_one_call() {
    let broker = Observed::new(true);
    let setup = broker.setup().await;
    run_ten_at_once(&setup).await;

    let calls = broker.acks.lock().unwrap().clone();
    assert_eq!(
        calls.iter().sum::<usize>(),
        10,
        "every task acked once: {calls:?}"
    );
    assert!(
        calls.len() <= 3,
        "acks made while the first was in flight went out together: {calls:?}"
    );
    let left = setup
        .queue
        .receive(10, Duration::from_millis(200))
        .await
        .expect("receive");
    assert!(left.is_empty(), "acked before the worker returned");
}

/// A result store that records each batch it is given, with the acks the broker had seen
/// when the batch came; its first write is slow, so tasks finishing meanwhile pile up.
#[derive(Debug)]
struct Batched {
    inner: MemoryResultStore,
    broker: Arc<Observed>,
    /// Per `store_all` call: its records, and the messages acked before it.
    calls: Mutex<Vec<(usize, usize)>>,
}

#[async_trait::async_trait]
impl ResultStore for Batched {
    fn backend(&self) -> &'static str {
        "batched"
    }
    async fn store(&self, result: &broker_core::TaskResult) -> broker_core::Result<()> {
        self.store_all(std::slice::from_ref(result)).await
    }
    async fn store_all(&self, results: &[broker_core::TaskResult]) -> broker_core::Result<()> {
        let acked: usize = self.broker.acks.lock().unwrap().iter().sum();
        let first = {
            let mut calls = self.calls.lock().unwrap();
            calls.push((results.len(), acked));
            calls.len() == 1
        };
        if first {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.inner.store_all(results).await
    }
    async fn fetch(&self, id: &str) -> broker_core::Result<Option<broker_core::TaskResult>> {
        self.inner.fetch(id).await
    }
    async fn forget(&self, id: &str) -> broker_core::Result<()> {
        self.inner.forget(id).await
    }
}

#[tokio::test]
async fn states_of_tasks_finishing_together_are_written_in_one_call_before_their_acks() {
    let broker = Observed::new(false);
    let mut setup = broker.setup().await;
    let store = Arc::new(Batched {
        inner: MemoryResultStore::new(Duration::from_secs(3600)),
        broker: broker.clone(),
        calls: Mutex::default(),
    });
    setup.results = store.clone();
    run_ten_at_once(&setup).await;

    let calls = store.calls.lock().unwrap().clone();
    let written: Vec<usize> = calls.iter().map(|(records, _)| *records).collect();
    assert_eq!(
        written.iter().sum::<usize>(),
        10,
        "one SUCCESS per task: {calls:?}"
    );
    assert!(
        calls.len() <= 3,
        "states of tasks finishing while the first write was in flight went together: {calls:?}"
    );
    let mut stored_before = 0;
    for (records, acked_before) in &calls {
        assert!(
            *acked_before <= stored_before,
            "no message is acked before its state is written: {calls:?}"
        );
        stored_before += records;
    }
    let acked: usize = broker.acks.lock().unwrap().iter().sum();
    assert_eq!(acked, 10, "every task acked once");
}

#[tokio::test]
async fn a_waiting_receive_takes_as_many_tasks_as_slots_are_free_when_they_arrive() {
    let broker = Observed::new(false);
    let setup = broker.setup().await;
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let tasks = TaskRegistry::new()
        .register("hold", move |_req: TaskRequest| {
            let gate = gate.clone();
            async move {
                gate.notified().await;
                Ok(Value::Null)
            }
        })
        .register("quick", |_req: TaskRequest| async { Ok(Value::Null) });
    let options = WorkerOptions {
        concurrency: 4,
        prefetch: 4,
        poll_wait: Duration::from_secs(5),
        ..fast_options()
    };
    let (stop, worker) = start(&setup, tasks, options);

    // One slot busy: the worker's next receive begins with room for three.
    let held = send(&setup, "hold", vec![]).await;
    wait_for_state(&setup, &held, TaskState::Started).await;
    release.notify_one();
    wait_for_state(&setup, &held, TaskState::Success).await;
    // Four tasks arrive while that receive waits, with all four slots free again.
    let batch = (0..4)
        .map(|_| {
            let task = TaskMessage::new("quick", vec![], serde_json::Map::new());
            broker_core::tasks::task_to_message(&task, setup.queue.capabilities().delay).unwrap()
        })
        .collect();
    setup.queue.publish_batch(batch).await.expect("publish");
    tokio::time::sleep(Duration::from_millis(500)).await;

    stop.cancel();
    assert_eq!(worker.await.expect("join").succeeded, 5);
    assert_eq!(
        *broker.receives.lock().unwrap(),
        [1, 4],
        "the four tasks were taken in one receive"
    );
}

#[tokio::test]
async fn transient_failure_is_retried_with_exponential_backoff() {
    let setup = setup(Duration::from_secs(5)).await;
    let attempts = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = attempts.clone();
    let tasks = TaskRegistry::new().register("flaky", move |req: TaskRequest| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(Instant::now());
            if req.retries < 2 {
                Err(TaskError::retry("calendar host down"))
            } else {
                Ok(json!("ok"))
            }
        }
    });
    let (stop, worker) = start(&setup, tasks, fast_options());
    let id = send(&setup, "flaky", vec![]).await;

    wait_for_state(&setup, &id, TaskState::Success).await;
    stop.cancel();
    let report = worker.await.expect("join");
    assert_eq!((report.retried, report.succeeded), (2, 1));
    let times = attempts.lock().unwrap().clone();
    assert_eq!(times.len(), 3);
    let gaps = [times[1] - times[0], times[2] - times[1]];
    assert!(
        gaps[0] >= Duration::from_millis(200),
        "first backoff {:?}",
        gaps[0]
    );
    assert!(
        gaps[1] >= Duration::from_millis(400),
        "second backoff doubles: {:?}",
        gaps[1]
    );
}

#[tokio::test]
async fn retry_state_is_visible_between_attempts() {
    let setup = setup(Duration::from_secs(5)).await;
    let tasks = TaskRegistry::new().register("slow_retry", |req: TaskRequest| async move {
        if req.retries == 0 {
            Err(TaskError::Retry {
                message: "busy".into(),
                countdown: Some(Duration::from_secs(2)),
            })
        } else {
            Ok(json!(1))
        }
    });
    let (stop, worker) = start(&setup, tasks, fast_options());
    let id = send(&setup, "slow_retry", vec![]).await;

    let retry = wait_for_state(&setup, &id, TaskState::Retry).await;
    assert_eq!(retry.error_message().as_deref(), Some("busy"));
    wait_for_state(&setup, &id, TaskState::Success).await;
    stop.cancel();
    worker.await.expect("join");
}

#[tokio::test]
async fn exhausted_retries_record_failure_and_dead_letter_the_message() {
    let setup = setup(Duration::from_secs(5)).await;
    let tasks = TaskRegistry::new().register("doomed", |_req: TaskRequest| async {
        Err(TaskError::retry("still down"))
    });
    let (stop, worker) = start(&setup, tasks, fast_options());
    let id = send(&setup, "doomed", vec![]).await;

    let failed = wait_for_state(&setup, &id, TaskState::Failure).await;
    assert!(
        failed
            .error_message()
            .unwrap()
            .contains("retries exhausted after 3 attempts: still down")
    );
    let dead = dead_letters(&setup).await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .header_str(DEAD_LETTER_REASON_HEADER)
            .unwrap()
            .contains("retries exhausted")
    );
    stop.cancel();
    let report = worker.await.expect("join");
    assert_eq!(
        (report.retried, report.failed, report.dead_lettered),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_and_the_worker_keeps_going() {
    let setup = setup(Duration::from_secs(5)).await;
    let tasks = TaskRegistry::new().register("echo", |req: TaskRequest| async move {
        Ok(Value::Array(req.args))
    });
    let (stop, worker) = start(&setup, tasks, fast_options());

    setup
        .queue
        .publish(Message::new("{not json").content_type("application/json"))
        .await
        .expect("publish");
    let mut wrong_body = TaskMessage::new("echo", vec![], serde_json::Map::new());
    wrong_body.headers.id = "broken-body".into();
    let mut broken =
        broker_core::tasks::task_to_message(&wrong_body, broker_core::Delay::Unsupported).unwrap();
    broken.payload = bytes::Bytes::from_static(b"{\"task\": \"v1 style\"}");
    setup.queue.publish(broken).await.expect("publish");
    let unknown = send(&setup, "no_such_task", vec![]).await;
    let good = send(&setup, "echo", vec![json!("still working")]).await;

    assert_eq!(
        wait_for_state(&setup, &good, TaskState::Success)
            .await
            .result,
        json!(["still working"])
    );
    let unknown_state = wait_for_state(&setup, &unknown, TaskState::Failure).await;
    assert!(
        unknown_state
            .error_message()
            .unwrap()
            .contains("unknown task `no_such_task`")
    );
    let broken_state = wait_for_state(&setup, "broken-body", TaskState::Failure).await;
    assert!(
        broken_state
            .error_message()
            .unwrap()
            .starts_with("cannot decode task")
    );
    let dead = dead_letters(&setup).await;
    let mut reasons: Vec<&str> = dead
        .iter()
        .map(|d| d.header_str(DEAD_LETTER_REASON_HEADER).unwrap())
        .collect();
    reasons.sort_unstable();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .filter(|r| r.starts_with("cannot decode task"))
            .count()
            == 2,
        "{reasons:?}"
    );
    stop.cancel();
    assert_eq!(worker.await.expect("join").dead_lettered, 3);
}

#[tokio::test]
async fn panicking_handler_is_recorded_as_failure_and_the_worker_survives() {
    let setup = setup(Duration::from_secs(5)).await;
    let tasks = TaskRegistry::new()
        .register("boom", |_req: TaskRequest| async { panic!("handler bug") })
        .register("fine", |_req: TaskRequest| async { Ok(json!(true)) });
    let (stop, worker) = start(&setup, tasks, fast_options());
    let boom = send(&setup, "boom", vec![]).await;
    let fine = send(&setup, "fine", vec![]).await;

    let failed = wait_for_state(&setup, &boom, TaskState::Failure).await;
    assert_eq!(failed.result["exc_type"], "Panic");
    wait_for_state(&setup, &fine, TaskState::Success).await;
    stop.cancel();
    worker.await.expect("join");
}

#[tokio::test]
async fn a_task_past_its_hard_time_limit_is_stopped_and_recorded_as_failure() {
    let setup = setup(Duration::from_secs(5)).await;
    let finished = Arc::new(AtomicUsize::new(0));
    let done = finished.clone();
    let tasks = TaskRegistry::new().register("slow", move |_req: TaskRequest| {
        let done = done.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            done.fetch_add(1, Ordering::SeqCst);
            Ok(Value::Null)
        }
    });
    let (stop, worker) = start(&setup, tasks, fast_options());
    let task = TaskMessage::new("slow", vec![], serde_json::Map::new())
        .with_timelimit(Some(Duration::from_millis(200)), None);
    let id = send_task(&setup.queue, &task).await.expect("send");

    let failed = wait_for_state(&setup, &id, TaskState::Failure).await;
    assert_eq!(failed.result["exc_type"], "TimeLimitExceeded");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "the handler was stopped"
    );
    stop.cancel();
    let report = worker.await.expect("join");
    assert_eq!(
        (report.failed, report.succeeded),
        (1, 0),
        "run once, not again"
    );
}

#[tokio::test]
async fn a_slow_task_keeps_its_lease_and_runs_once() {
    let lease = Duration::from_millis(600);
    let setup = setup(lease).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let tasks = TaskRegistry::new().register("slow", move |_req: TaskRequest| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(json!("done"))
        }
    });
    let (stop, worker) = start(&setup, tasks, fast_options());
    let id = send(&setup, "slow", vec![]).await;
    wait_for_state(&setup, &id, TaskState::Started).await;

    let thief = setup
        .queue
        .receive(1, Duration::from_millis(1500))
        .await
        .expect("receive");
    assert!(
        thief.is_empty(),
        "the running task was handed out again: its lease was not renewed"
    );
    wait_for_state(&setup, &id, TaskState::Success).await;
    stop.cancel();
    worker.await.expect("join");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn concurrency_limit_caps_tasks_running_at_once() {
    let setup = setup(Duration::from_secs(5)).await;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let tasks = TaskRegistry::new().register("busy", move |_req: TaskRequest| {
        let (running, peak) = (r.clone(), p.clone());
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(Value::Null)
        }
    });
    let options = WorkerOptions {
        concurrency: 3,
        prefetch: 2,
        ..fast_options()
    };
    let (stop, worker) = start(&setup, tasks, options);
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(send(&setup, "busy", vec![]).await);
    }
    for id in &ids {
        wait_for_state(&setup, id, TaskState::Success).await;
    }
    stop.cancel();
    assert_eq!(worker.await.expect("join").succeeded, 12);
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "ran up to, and never beyond, the limit"
    );
}

#[tokio::test]
async fn graceful_shutdown_lets_running_tasks_finish() {
    let setup = setup(Duration::from_secs(5)).await;
    let tasks = TaskRegistry::new().register("report", |_req: TaskRequest| async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        Ok(json!("pdf"))
    });
    let (stop, worker) = start(&setup, tasks, fast_options());
    let id = send(&setup, "report", vec![]).await;
    wait_for_state(&setup, &id, TaskState::Started).await;

    stop.cancel();
    let report = worker.await.expect("join");
    assert_eq!((report.succeeded, report.released), (1, 0));
    assert_eq!(
        setup.results.state(&id).await.unwrap().status,
        TaskState::Success
    );
}

#[tokio::test]
async fn shutdown_releases_tasks_still_running_after_the_grace_period() {
    let setup = setup(Duration::from_secs(30)).await;
    let tasks = TaskRegistry::new().register("endless", |_req: TaskRequest| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(Value::Null)
    });
    let options = WorkerOptions {
        shutdown_grace: Duration::from_millis(300),
        ..fast_options()
    };
    let (stop, worker) = start(&setup, tasks, options);
    let id = send(&setup, "endless", vec![]).await;
    wait_for_state(&setup, &id, TaskState::Started).await;

    let stopped_at = Instant::now();
    stop.cancel();
    let report = worker.await.expect("join");
    assert_eq!(report.released, 1);
    assert!(
        stopped_at.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        stopped_at.elapsed()
    );
    let back = setup
        .queue
        .receive(1, Duration::from_secs(1))
        .await
        .expect("receive");
    assert_eq!(
        back.len(),
        1,
        "the released task is on the queue for another worker at once, not after its 30 s lease"
    );
    assert!(back[0].redelivered());
}

#[tokio::test]
async fn expired_task_is_revoked_without_running() {
    let setup = setup(Duration::from_secs(5)).await;
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let tasks = TaskRegistry::new().register("late", move |_req: TaskRequest| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(Value::Null)
        }
    });
    let mut task = TaskMessage::new("late", vec![], serde_json::Map::new());
    task.headers.expires = Some(chrono::Utc::now() - chrono::Duration::seconds(1));
    send_task(&setup.queue, &task).await.expect("send");
    let (stop, worker) = start(&setup, tasks, fast_options());

    wait_for_state(&setup, &task.headers.id, TaskState::Revoked).await;
    stop.cancel();
    assert_eq!(worker.await.expect("join").revoked, 1);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_draining_worker_finishes_queued_tasks_before_it_stops() {
    let setup = setup(Duration::from_secs(5)).await;
    let tasks = TaskRegistry::new().register("step", |_req: TaskRequest| async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(Value::Null)
    });
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(send(&setup, "step", vec![]).await);
    }
    let options = WorkerOptions {
        concurrency: 2,
        drain_on_shutdown: true,
        ..fast_options()
    };
    let (stop, worker) = start(&setup, tasks, options);
    stop.cancel();

    let report = worker.await.expect("join");
    assert_eq!(
        report.succeeded, 30,
        "every queued task ran before the worker stopped"
    );
    assert_eq!(
        report.drained, 30,
        "all of them were taken after the shutdown request"
    );
    for id in &ids {
        assert_eq!(
            setup.results.state(id).await.unwrap().status,
            TaskState::Success
        );
    }
}

#[tokio::test]
async fn a_stopping_worker_leaves_queued_tasks_for_the_next_one() {
    let setup = setup(Duration::from_secs(5)).await;
    let tasks = TaskRegistry::new().register("step", |_req: TaskRequest| async { Ok(Value::Null) });
    for _ in 0..30 {
        send(&setup, "step", vec![]).await;
    }
    let options = WorkerOptions {
        concurrency: 2,
        ..fast_options()
    };
    let stop = CancellationToken::new();
    stop.cancel();
    let worker =
        Worker::new(setup.queue.clone(), setup.results.clone(), tasks).with_options(options);
    let report = worker.run(stop).await.expect("runs");

    assert_eq!(
        report.succeeded, 0,
        "a worker told to stop takes no new work"
    );
    let left = setup
        .queue
        .receive(100, Duration::from_millis(200))
        .await
        .expect("receive");
    assert_eq!(left.len(), 30);
}

#[tokio::test]
async fn json_helpers_round_trip_typed_values_and_reject_poison() {
    let setup = setup(Duration::from_secs(5)).await;
    setup
        .queue
        .publish(Message::json(&json!({"report": "q3", "pages": 12})).unwrap())
        .await
        .unwrap();
    setup
        .queue
        .publish(Message::new("{not json"))
        .await
        .unwrap();
    let got = setup
        .queue
        .receive(2, Duration::from_secs(1))
        .await
        .unwrap();

    let value: Value = got[0].json().expect("typed payload");
    assert_eq!(value["pages"], 12);
    let err = got[1].json::<Value>().expect_err("poison");
    assert_eq!(err.kind(), broker_core::ErrorKind::Codec);
    assert!(
        err.to_string().contains("is not the expected JSON"),
        "{err}"
    );
}
