//! The one throughput benchmark every backend runs.
//!
//! Three groups, `<backend>/publish`, `<backend>/consume_ack` and `<backend>/end_to_end`. Each
//! measures a `framework` function and a `raw` function (the backend's [`RawClient`]) at
//! every batch size of [`BATCHES`] and payload of [`PAYLOADS`]; the parameter reads
//! `<batch>x<payload>`, as in `10x100B`. Throughput is in messages (tasks). The two sides of
//! one parameter run one after the other, so that both see the same machine, and each side
//! has queues of its own, declared by the framework so that both have the same settings.
//!
//! - **publish**: `batch` messages per call, `Queue::publish_batch` against
//!   [`RawClient::publish`]; the queue is emptied after each sample, untimed.
//! - **consume_ack**: the queue is filled first, untimed; then each round takes `batch`
//!   messages (receiving until it holds that many) and acks them in one call.
//! - **end_to_end**: tasks through a worker, from publish until `SUCCESS` is stored. The
//!   framework side is the worker runtime with a task that returns at once, fed by
//!   `publish_batch` of Celery task messages; the raw side is [`raw_worker::run`], fed by
//!   [`RawClient::publish`] of the same message with a fresh task id each. Both run
//!   [`CONCURRENCY`] tasks at once, store results in the backend's store where it has one,
//!   and have connections of their own for producing and for working, as separate processes
//!   do.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use broker_core::{
    Delay, Message, Queue,
    celery::TaskMessage,
    tasks::task_to_message,
    worker::{TaskError, TaskRegistry, TaskRequest, Worker, WorkerOptions},
};
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, measurement::WallTime};
use serde_json::{Map, Value, json};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::{
    finished::{self, Discard, Reporting},
    raw::{RawClient, RawMessage},
    raw_worker,
    target::BenchTarget,
};

/// Messages per publish call and per consumed round.
pub const BATCHES: [usize; 3] = [1, 10, 100];
/// Payload sizes.
pub const PAYLOADS: [Payload; 2] = [
    Payload {
        len: 100,
        label: "100B",
    },
    Payload {
        len: 10 * 1024,
        label: "10KiB",
    },
];
/// Tasks a worker runs at once, on both sides of the end-to-end group.
pub const CONCURRENCY: usize = 16;
/// The longest any single receive waits for a message that must be there.
const RECEIVE_WAIT: Duration = Duration::from_secs(10);

/// A payload size and its name in benchmark parameters.
#[derive(Debug, Clone, Copy)]
pub struct Payload {
    /// Bytes.
    pub len: usize,
    /// `100B`, `10KiB`.
    pub label: &'static str,
}

/// Runs every group for the target that `open` builds from the URL in `variable`; without
/// the variable, prints why and measures nothing.
pub fn run_with_url<T, Fut>(variable: &str, open: impl FnOnce(String) -> Fut)
where
    T: BenchTarget,
    Fut: Future<Output = T>,
{
    match std::env::var(variable) {
        Ok(url) if !url.trim().is_empty() => run(open(url)),
        _ => println!(
            "{variable} is not set; nothing measured (run `eval \"$(scripts/services.sh)\"`)"
        ),
    }
}

/// Runs every group for the target `open` builds, then removes what the run created.
pub fn run<T: BenchTarget>(open: impl Future<Output = T>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // Clients dropped between groups (sqlx pools, for one) need the runtime's context.
    let _inside = runtime.enter();
    let target = runtime.block_on(open);
    let bench = Bench {
        runtime,
        run: uuid::Uuid::new_v4().simple().to_string()[..6].to_owned(),
        target,
        queues: Mutex::default(),
    };
    let mut criterion = Criterion::default().configure_from_args();
    publish(&mut criterion, &bench);
    consume_ack(&mut criterion, &bench);
    end_to_end(&mut criterion, &bench);
    criterion.final_summary();
    bench.runtime.block_on(bench.clean_up());
}

struct Bench<T> {
    runtime: Runtime,
    /// Part of every queue name, so that runs never share a queue.
    run: String,
    target: T,
    /// Every queue declared, to delete at the end.
    queues: Mutex<Vec<String>>,
}

impl<T: BenchTarget> Bench<T> {
    fn group<'a>(&self, c: &'a mut Criterion, operation: &str) -> BenchmarkGroup<'a, WallTime> {
        let mut group = c.benchmark_group(format!("{}/{operation}", self.target.name()));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        group
    }

    /// A queue of the framework's on a broker connection of its own, declared (so that the
    /// raw side may use it too) and remembered for deletion.
    async fn queue(&self, name: &str) -> Queue {
        self.queues.lock().unwrap().push(name.to_owned());
        Queue::declare(self.target.broker().await, name.to_owned())
            .await
            .expect("declare")
    }

    fn queue_name(&self, operation: &str, side: &str, parameter: &str) -> String {
        format!("bench-{}-{operation}-{parameter}-{side}", self.run)
    }

    async fn clean_up(&self) {
        let broker = self.target.broker().await;
        let mut queues = self.queues.lock().unwrap().clone();
        queues.sort();
        queues.dedup();
        for queue in queues {
            if let Err(e) = broker.delete_queue(&queue).await {
                eprintln!("{queue} was not deleted: {e}");
            }
        }
        self.target.clean_up().await;
    }
}

fn parameter(batch: usize, payload: Payload) -> String {
    format!("{batch}x{}", payload.label)
}

fn framework_message(payload: Payload) -> Message {
    Message::new(vec![b'x'; payload.len])
        .header("task", "bench")
        .content_type("application/json")
}

fn raw_message(payload: Payload) -> RawMessage {
    RawMessage {
        payload: vec![b'x'; payload.len],
        headers: r#"{"task":"bench"}"#.to_owned(),
        content_type: "application/json",
    }
}

/// Fills `queue` with `count` messages through the raw client, untimed.
async fn fill(raw: &impl RawClient, queue: &str, count: usize, payload: Payload) {
    let mut left = count;
    while left > 0 {
        let n = left.min(100);
        raw.publish(queue, vec![raw_message(payload); n]).await;
        left -= n;
    }
}

/// Fills `queue` with `count` messages through the framework, untimed.
async fn fill_framework(queue: &Queue, count: usize, payload: Payload) {
    let mut left = count;
    while left > 0 {
        let n = left.min(100);
        let messages = vec![framework_message(payload); n];
        queue.publish_batch(messages).await.expect("fill");
        left -= n;
    }
}

/// Publishes one message with `publish_one` and takes it back with `receive_one`, so that
/// connections, consumer groups and metadata are settled before the clock runs.
async fn prime<P, R>(name: &str, publish_one: P, mut receive_one: impl FnMut() -> R)
where
    P: Future<Output = ()>,
    R: Future<Output = usize>,
{
    publish_one.await;
    let deadline = Instant::now() + RECEIVE_WAIT * 3;
    while receive_one().await == 0 {
        assert!(
            Instant::now() < deadline,
            "{name}: the priming message never came"
        );
    }
}

fn publish<T: BenchTarget>(c: &mut Criterion, bench: &Bench<T>) {
    let mut group = bench.group(c, "publish");
    for payload in PAYLOADS {
        for batch in BATCHES {
            let parameter = parameter(batch, payload);
            group.throughput(Throughput::Elements(batch as u64));

            let name = bench.queue_name("publish", "framework", &parameter);
            let (queue, raw) = bench
                .runtime
                .block_on(async { (bench.queue(&name).await, bench.target.raw().await) });
            group.bench_function(BenchmarkId::new("framework", &parameter), |b| {
                b.to_async(&bench.runtime).iter_custom(|iters| {
                    let (queue, raw) = (&queue, &raw);
                    async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let messages = vec![framework_message(payload); batch];
                            queue.publish_batch(messages).await.expect("publish");
                        }
                        let took = start.elapsed();
                        bench.target.clear(queue, raw).await;
                        took
                    }
                });
            });

            let name = bench.queue_name("publish", "raw", &parameter);
            bench.runtime.block_on(bench.queue(&name));
            group.bench_function(BenchmarkId::new("raw", &parameter), |b| {
                b.to_async(&bench.runtime).iter_custom(|iters| {
                    let (name, raw) = (&name, &raw);
                    async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            raw.publish(name, vec![raw_message(payload); batch]).await;
                        }
                        let took = start.elapsed();
                        raw.clear(name).await;
                        took
                    }
                });
            });
        }
    }
    group.finish();
}

/// Takes exactly `batch` deliveries from `queue`, receiving as often as it takes.
async fn framework_round(queue: &Queue, batch: usize) {
    let mut got = Vec::with_capacity(batch);
    while got.len() < batch {
        let more = queue
            .receive(batch - got.len(), RECEIVE_WAIT)
            .await
            .expect("receive");
        assert!(!more.is_empty(), "{}: the queue ran dry", queue.name());
        got.extend(more);
    }
    queue.ack_all(got).await.expect("ack");
}

/// Takes exactly `batch` messages from `queue` with the raw client, then acks them at once.
async fn raw_round(raw: &impl RawClient, queue: &str, batch: usize) {
    let mut got = Vec::with_capacity(batch);
    while got.len() < batch {
        let more = raw.receive(queue, batch - got.len(), RECEIVE_WAIT).await;
        assert!(!more.is_empty(), "{queue}: the queue ran dry");
        got.extend(more);
    }
    raw.ack(queue, got).await;
}

fn consume_ack<T: BenchTarget>(c: &mut Criterion, bench: &Bench<T>) {
    let mut group = bench.group(c, "consume_ack");
    for payload in PAYLOADS {
        for batch in BATCHES {
            let parameter = parameter(batch, payload);
            group.throughput(Throughput::Elements(batch as u64));
            let count = |iters: u64| usize::try_from(iters).expect("fits") * batch;

            let name = bench.queue_name("consume", "framework", &parameter);
            let (queue, filler) = bench.runtime.block_on(async {
                let (queue, filler) = (bench.queue(&name).await, bench.queue(&name).await);
                prime(&name, fill_framework(&filler, 1, payload), || async {
                    let got = queue.receive(1, RECEIVE_WAIT).await.expect("receive");
                    let n = got.len();
                    queue.ack_all(got).await.expect("ack");
                    n
                })
                .await;
                (queue, filler)
            });
            group.bench_function(BenchmarkId::new("framework", &parameter), |b| {
                b.to_async(&bench.runtime).iter_custom(|iters| {
                    let (queue, filler) = (&queue, &filler);
                    async move {
                        fill_framework(filler, count(iters), payload).await;
                        let start = Instant::now();
                        for _ in 0..iters {
                            framework_round(queue, batch).await;
                        }
                        start.elapsed()
                    }
                });
            });

            let name = bench.queue_name("consume", "raw", &parameter);
            let (raw, filler) = bench.runtime.block_on(async {
                bench.queue(&name).await;
                let (raw, filler) = (bench.target.raw().await, bench.target.raw().await);
                prime(&name, fill(&filler, &name, 1, payload), || async {
                    let got = raw.receive(&name, 1, RECEIVE_WAIT).await;
                    let n = got.len();
                    raw.ack(&name, got).await;
                    n
                })
                .await;
                (raw, filler)
            });
            group.bench_function(BenchmarkId::new("raw", &parameter), |b| {
                b.to_async(&bench.runtime).iter_custom(|iters| {
                    let (name, raw, filler) = (&name, &raw, &filler);
                    async move {
                        fill(filler, name, count(iters), payload).await;
                        let start = Instant::now();
                        for _ in 0..iters {
                            raw_round(raw, name, batch).await;
                        }
                        start.elapsed()
                    }
                });
            });
        }
    }
    group.finish();
}

/// The task both end-to-end sides run: `noop` with one argument that makes its body about
/// `payload` bytes long.
fn task(payload: Payload) -> TaskMessage {
    let padding = "x".repeat(payload.len.saturating_sub(70));
    TaskMessage::new("noop", vec![json!(padding)], Map::new())
}

/// `count` copies of `template` as a hand-written producer sends them: the same body and
/// headers, with a fresh task id in each.
fn raw_tasks(template: &Message, count: usize) -> Vec<RawMessage> {
    let headers = serde_json::to_string(&template.headers).expect("headers encode");
    let id = template.headers["id"].as_str().expect("a task id");
    (0..count)
        .map(|_| RawMessage {
            payload: template.payload.to_vec(),
            headers: headers.replace(id, &uuid::Uuid::new_v4().to_string()),
            content_type: "application/json",
        })
        .collect()
}

fn end_to_end<T: BenchTarget>(c: &mut Criterion, bench: &Bench<T>) {
    let mut group = bench.group(c, "end_to_end");
    let stop = CancellationToken::new();
    let framework_name = bench.queue_name("e2e", "framework", "all");
    let raw_name = bench.queue_name("e2e", "raw", "all");
    let (producer, framework_running, framework_done, raw_producer, raw_done, raw_running) =
        bench.runtime.block_on(async {
            let producer = bench.queue(&framework_name).await;
            let (tx, framework_done) = finished::channel();
            let store = bench.target.result_store().await;
            let store = Reporting::new(store.unwrap_or_else(|| Arc::new(Discard)), tx);
            let tasks = TaskRegistry::new().register("noop", |_: TaskRequest| async {
                Ok::<Value, TaskError>(Value::Null)
            });
            let worker = Worker::new(bench.queue(&framework_name).await, Arc::new(store), tasks)
                .with_options(WorkerOptions {
                    concurrency: CONCURRENCY,
                    prefetch: CONCURRENCY,
                    ..WorkerOptions::default()
                });
            let framework_running = tokio::spawn(worker.run(stop.clone()));

            bench.queue(&raw_name).await;
            let (tx, raw_done) = finished::channel();
            let worker_client = Arc::new(bench.target.raw().await);
            let raw_running = tokio::spawn(raw_worker::run(
                worker_client,
                raw_name.clone(),
                CONCURRENCY,
                tx,
            ));
            (
                producer,
                framework_running,
                framework_done,
                bench.target.raw().await,
                raw_done,
                raw_running,
            )
        });

    for payload in PAYLOADS {
        let template = task_to_message(&task(payload), Delay::Unsupported).expect("encode");
        // One task through each side first, so that consumers have joined before timing.
        bench.runtime.block_on(async {
            framework_done
                .time_rounds(1, 1, |_| async {
                    let message = task_to_message(&task(payload), Delay::Unsupported).unwrap();
                    producer.publish(message).await.expect("publish");
                })
                .await;
            raw_done
                .time_rounds(1, 1, |_| {
                    raw_producer.publish(&raw_name, raw_tasks(&template, 1))
                })
                .await;
        });
        for batch in BATCHES {
            let parameter = parameter(batch, payload);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(BenchmarkId::new("framework", &parameter), |b| {
                b.to_async(&bench.runtime).iter_custom(|iters| {
                    framework_done.time_rounds(iters, batch, |n| {
                        let messages = (0..n)
                            .map(|_| task_to_message(&task(payload), Delay::Unsupported).unwrap())
                            .collect();
                        let producer = producer.clone();
                        async move { producer.publish_batch(messages).await.expect("publish") }
                    })
                });
            });
            group.bench_function(BenchmarkId::new("raw", &parameter), |b| {
                b.to_async(&bench.runtime).iter_custom(|iters| {
                    raw_done.time_rounds(iters, batch, |n| {
                        raw_producer.publish(&raw_name, raw_tasks(&template, n))
                    })
                });
            });
        }
    }
    // Both workers' clients are gone before the run's queues are deleted.
    stop.cancel();
    raw_running.abort();
    bench.runtime.block_on(async {
        framework_running
            .await
            .expect("the worker ran")
            .expect("the worker stopped cleanly");
        let _ = raw_running.await;
    });
    group.finish();
}
