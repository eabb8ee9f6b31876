//! Throughput of the in-process broker through the framework, beside a raw tokio channel
//! doing the same hand-off (the floor any in-process queue is measured against).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use broker_core::{
    Broker, Message, Queue, ResultStore,
    celery::TaskMessage,
    tasks::send_task,
    worker::{TaskRegistry, TaskRequest, Worker, WorkerOptions},
};
use broker_memory::{MemoryBroker, MemoryConfig, MemoryResultStore};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

const MESSAGES: usize = 1_000;
const BATCHES: [usize; 3] = [1, 10, 100];

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn fresh_queue() -> Queue {
    let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(MemoryConfig::default()));
    Queue::declare(broker, "bench").await.expect("declare")
}

async fn publish(queue: &Queue, batch: usize) {
    for _ in 0..MESSAGES / batch {
        let messages = (0..batch)
            .map(|n| Message::new(format!("message {n}")))
            .collect();
        queue.publish_batch(messages).await.expect("publish");
    }
}

async fn consume_ack(queue: &Queue, batch: usize) {
    let mut left = MESSAGES;
    while left > 0 {
        let got = queue
            .receive(batch, Duration::from_secs(1))
            .await
            .expect("receive");
        left -= got.len();
        queue.ack_all(got).await.expect("ack");
    }
}

fn bench_publish(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("memory/publish");
    group
        .throughput(Throughput::Elements(MESSAGES as u64))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    for batch in BATCHES {
        group.bench_function(BenchmarkId::new("framework", batch), |b| {
            b.to_async(&rt).iter(|| async {
                let queue = fresh_queue().await;
                publish(&queue, batch).await;
            });
        });
        group.bench_function(BenchmarkId::new("raw", batch), |b| {
            b.to_async(&rt).iter(|| async {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                for _ in 0..MESSAGES / batch {
                    for n in 0..batch {
                        tx.send(format!("message {n}")).expect("send");
                    }
                }
                drop(rx);
            });
        });
    }
    group.finish();
}

fn bench_consume_ack(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("memory/consume_ack");
    group
        .throughput(Throughput::Elements(MESSAGES as u64))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    for batch in BATCHES {
        group.bench_function(BenchmarkId::new("framework", batch), |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let queue = fresh_queue().await;
                    publish(&queue, 100).await;
                    let start = std::time::Instant::now();
                    consume_ack(&queue, batch).await;
                    total += start.elapsed();
                }
                total
            });
        });
    }
    group.finish();
}

fn bench_end_to_end(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("memory/end_to_end");
    group
        .throughput(Throughput::Elements(MESSAGES as u64))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10);
    for batch in BATCHES {
        group.bench_function(BenchmarkId::new("framework", batch), |b| {
            b.to_async(&rt).iter(|| async move {
                let queue = fresh_queue().await;
                let results: Arc<dyn ResultStore> =
                    Arc::new(MemoryResultStore::new(Duration::from_secs(60)));
                let done = Arc::new(AtomicUsize::new(0));
                let counter = done.clone();
                let tasks = TaskRegistry::new().register("noop", move |_req: TaskRequest| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    async { Ok(serde_json::Value::Null) }
                });
                let options = WorkerOptions {
                    concurrency: batch.max(4),
                    prefetch: batch,
                    poll_wait: Duration::from_millis(5),
                    ..WorkerOptions::default()
                };
                let stop = CancellationToken::new();
                let worker =
                    Worker::new(queue.clone(), results.clone(), tasks).with_options(options);
                let running = tokio::spawn(worker.run(stop.clone()));
                for _ in 0..MESSAGES {
                    send_task(
                        &queue,
                        &TaskMessage::new("noop", vec![], serde_json::Map::new()),
                    )
                    .await
                    .expect("send");
                }
                while done.load(Ordering::Relaxed) < MESSAGES {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                stop.cancel();
                running.await.expect("join").expect("worker");
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_publish, bench_consume_ack, bench_end_to_end);
criterion_main!(benches);
