//! Throughput of the RabbitMQ backend beside a baseline that drives `lapin` directly with the
//! same calls (persistent mandatory publishes with pipelined confirms, a consumer with manual
//! acks and a prefetch, acks with `multiple`), in the same run, so that the ratio of the two
//! is the framework's overhead.
//!
//! Groups `amqp/publish`, `amqp/consume_ack` and `amqp/end_to_end`, each with `framework` and
//! `raw` at batch sizes 1, 10 and 100, the two sides of one batch size measured one after the
//! other; throughput in messages (tasks). End to end, the framework side is the worker
//! runtime (16 slots) fed by `Queue::publish_batch` of Celery task messages; the raw side is a
//! hand-written worker that does what a minimal Celery worker must (read the task's name and
//! id from the headers, decode the `[args, kwargs, embed]` body, report, ack in batches).
//! Neither side keeps results (the framework's store only counts what finished), so the
//! figure is the broker's and the runtime's.
//! Needs `BROKER_TEST_AMQP_URL`; without it the benchmark prints why and does nothing. Every
//! queue it declares is deleted at the end.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use broker_amqp::{AmqpBroker, AmqpConfig};
use broker_benches::{
    acks,
    finished::{self, Reporting},
    groups,
};
use broker_core::{
    Broker, Delay, Message, Queue, ResultStore, TaskResult,
    celery::TaskMessage,
    tasks::task_to_message,
    worker::{TaskError, TaskRegistry, TaskRequest, Worker, WorkerOptions},
};
use criterion::{BenchmarkId, Criterion, Throughput};
use futures::StreamExt as _;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions,
    },
    types::{AMQPValue, FieldTable},
};
use serde_json::{Map, Value, json};
use tokio::{runtime::Runtime, sync::mpsc};
use tokio_util::sync::CancellationToken;

const BATCHES: [usize; 3] = [1, 10, 100];
const CONCURRENCY: usize = 16;

struct Bench {
    url: String,
    runtime: Runtime,
    queues: std::sync::Mutex<Vec<String>>,
}

impl Bench {
    async fn broker(&self) -> Arc<dyn Broker> {
        let config = AmqpConfig::from_url(&self.url).expect("the URL parses");
        Arc::new(AmqpBroker::connect(config).await.expect("connect"))
    }

    async fn framework_queue(&self, name: &str) -> Queue {
        self.queues.lock().unwrap().push(name.to_owned());
        Queue::declare(self.broker().await, name.to_owned())
            .await
            .expect("declare")
    }

    async fn raw_channel(&self) -> Channel {
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("raw connection");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        channel
    }

    async fn raw_queue(&self, channel: &Channel, name: &str) {
        self.queues.lock().unwrap().push(name.to_owned());
        channel
            .queue_declare(
                name.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare");
    }
}

/// The payload every publish benchmark sends: 100 bytes.
fn payload() -> Vec<u8> {
    b"0123456789".repeat(10)
}

/// What the backend sets on a message: persistent, priority 0, a fresh message id, the
/// content type and the headers.
fn raw_properties(headers: FieldTable) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_priority(0)
        .with_message_id(uuid::Uuid::new_v4().simple().to_string().into())
        .with_content_type("application/json".into())
        .with_headers(headers)
}

fn bench_headers() -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert("task".into(), AMQPValue::LongString("bench".into()));
    headers
}

/// Publishes `bodies` to `queue` through the default exchange, mandatory, then waits for
/// every confirm.
async fn raw_publish(
    channel: &Channel,
    queue: &str,
    messages: impl IntoIterator<Item = (Vec<u8>, BasicProperties)>,
) {
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let mut confirms = Vec::new();
    for (body, properties) in messages {
        confirms.push(
            channel
                .basic_publish("".into(), queue.into(), options, &body, properties)
                .await
                .expect("publish"),
        );
    }
    for confirm in futures::future::join_all(confirms).await {
        assert!(confirm.expect("confirm").is_ack());
    }
}

async fn purge(channel: &Channel, queue: &str) {
    channel
        .queue_purge(queue.into(), QueuePurgeOptions::default())
        .await
        .expect("purge");
}

fn publish(c: &mut Criterion, bench: &Bench) {
    let mut group = groups::group(c, "amqp/publish");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("framework", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| async move {
                let queue = bench.framework_queue("bench-publish").await;
                let start = Instant::now();
                for _ in 0..iters {
                    let messages = (0..batch)
                        .map(|_| {
                            Message::new(payload())
                                .header("task", "bench")
                                .content_type("application/json")
                        })
                        .collect();
                    queue.publish_batch(messages).await.expect("publish");
                }
                let took = start.elapsed();
                purge(&bench.raw_channel().await, "bench-publish").await;
                took
            });
        });
        group.bench_function(BenchmarkId::new("raw", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| async move {
                let channel = bench.raw_channel().await;
                bench.raw_queue(&channel, "bench-publish-raw").await;
                let start = Instant::now();
                for _ in 0..iters {
                    let messages = (0..batch).map(|_| (payload(), raw_properties(bench_headers())));
                    raw_publish(&channel, "bench-publish-raw", messages).await;
                }
                let took = start.elapsed();
                purge(&channel, "bench-publish-raw").await;
                took
            });
        });
    }
    group.finish();
}

/// Fills `queue` with `count` messages (untimed).
async fn prefill(bench: &Bench, queue: &str, count: usize) {
    let channel = bench.raw_channel().await;
    bench.raw_queue(&channel, queue).await;
    let mut left = count;
    while left > 0 {
        let n = left.min(500);
        let messages = (0..n).map(|_| (payload(), raw_properties(bench_headers())));
        raw_publish(&channel, queue, messages).await;
        left -= n;
    }
}

fn consume_ack(c: &mut Criterion, bench: &Bench) {
    let mut group = groups::group(c, "amqp/consume_ack");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("framework", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| async move {
                prefill(bench, "bench-consume", iters as usize * batch).await;
                let queue = bench.framework_queue("bench-consume").await;
                let start = Instant::now();
                for _ in 0..iters {
                    let mut got = Vec::with_capacity(batch);
                    while got.len() < batch {
                        let more = queue
                            .receive(batch - got.len(), Duration::from_secs(5))
                            .await
                            .expect("receive");
                        assert!(!more.is_empty(), "the queue was filled beforehand");
                        got.extend(more);
                    }
                    queue.ack_all(got).await.expect("ack");
                }
                start.elapsed()
            });
        });
        group.bench_function(BenchmarkId::new("raw", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| async move {
                prefill(bench, "bench-consume-raw", iters as usize * batch).await;
                let channel = bench.raw_channel().await;
                let prefetch = u16::try_from(batch).unwrap();
                channel
                    .basic_qos(prefetch, BasicQosOptions { global: true })
                    .await
                    .expect("qos");
                let mut consumer = channel
                    .basic_consume(
                        "bench-consume-raw".into(),
                        "".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .expect("consume");
                let start = Instant::now();
                for _ in 0..iters {
                    let mut last = 0;
                    for _ in 0..batch {
                        last = consumer
                            .next()
                            .await
                            .expect("a delivery")
                            .expect("ok")
                            .delivery_tag;
                    }
                    channel
                        .basic_ack(last, BasicAckOptions { multiple: true })
                        .await
                        .expect("ack");
                }
                let took = start.elapsed();
                let _ = channel.close(200, "done".into()).await;
                took
            });
        });
    }
    group.finish();
}

/// A minimal hand-written worker with the same calls and concurrency as the runtime: a
/// consumer with 16 slots of prefetch; per delivery read the task's name and id from the
/// headers, decode the body, report, and hand the tag to an acker that acks what finished
/// with one `multiple` ack when that is safe (here: when it holds every unacked tag up to its
/// highest, which the acker checks by counting).
async fn raw_worker(channel: Channel, queue: &'static str, done: mpsc::UnboundedSender<()>) {
    channel
        .basic_qos(CONCURRENCY as u16, BasicQosOptions { global: true })
        .await
        .expect("qos");
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let acked = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let (acks, _acker) = acks::batching(100, {
        let channel = channel.clone();
        move |tags: Vec<u64>| {
            let channel = channel.clone();
            async move {
                let max = *tags.iter().max().unwrap();
                channel
                    .basic_ack(
                        max,
                        BasicAckOptions {
                            multiple: tags.len() > 1,
                        },
                    )
                    .await
                    .expect("ack");
            }
        }
    });
    // Tags finish out of order; hand the acker only a contiguous run from the lowest unacked.
    let mut next_to_ack = 1_u64;
    let (finished_tx, mut finished_rx) = mpsc::unbounded_channel::<u64>();
    let runs = tokio::spawn({
        let acked = acked.clone();
        async move {
            while let Some(tag) = finished_rx.recv().await {
                let mut finished = acked.lock().unwrap();
                finished.insert(tag);
                while finished.remove(&next_to_ack) {
                    let _ = acks.send(next_to_ack);
                    next_to_ack += 1;
                }
            }
        }
    });
    while let Some(Ok(delivery)) = consumer.next().await {
        let (done, finished) = (done.clone(), finished_tx.clone());
        tokio::spawn(async move {
            let headers = delivery.properties.headers().as_ref().expect("headers");
            let text = |name: &str| match headers.inner().get(name) {
                Some(AMQPValue::LongString(s)) => s.to_string(),
                other => panic!("{name}: {other:?}"),
            };
            let (task, _id) = (text("task"), text("id"));
            let (args, _kwargs, _embed): (Vec<Value>, Map<String, Value>, Value) =
                serde_json::from_slice(&delivery.data).expect("body");
            assert_eq!((task.as_str(), args.len()), ("noop", 2));
            let _ = done.send(());
            let _ = finished.send(delivery.delivery_tag);
        });
    }
    runs.abort();
}

/// A result store that keeps nothing: the raw worker writes no results either.
#[derive(Debug)]
struct Discard;

#[async_trait::async_trait]
impl ResultStore for Discard {
    fn backend(&self) -> &'static str {
        "discard"
    }

    async fn store(&self, _: &TaskResult) -> broker_core::Result<()> {
        Ok(())
    }

    async fn fetch(&self, _: &str) -> broker_core::Result<Option<TaskResult>> {
        Ok(None)
    }

    async fn forget(&self, _: &str) -> broker_core::Result<()> {
        Ok(())
    }
}

fn end_to_end(c: &mut Criterion, bench: &Bench) {
    let mut group = groups::group(c, "amqp/end_to_end");
    let new_task = || TaskMessage::new("noop", vec![json!(1), json!(2)], Map::new());
    let stop = CancellationToken::new();
    let (framework_done, raw_done, queue, raw_channel) = bench.runtime.block_on(async {
        // Producers and workers have connections of their own, as separate processes do.
        let queue = bench.framework_queue("bench-e2e").await;
        let worker_queue = bench.framework_queue("bench-e2e").await;
        let (framework_tx, framework_done) = finished::channel();
        let store = Reporting::new(Discard, framework_tx);
        let tasks = TaskRegistry::new().register("noop", |_: TaskRequest| async {
            Ok::<Value, TaskError>(Value::Null)
        });
        let worker =
            Worker::new(worker_queue, Arc::new(store), tasks).with_options(WorkerOptions {
                concurrency: CONCURRENCY,
                prefetch: CONCURRENCY,
                ..WorkerOptions::default()
            });
        tokio::spawn(worker.run(stop.clone()));

        let raw_channel = bench.raw_channel().await;
        bench.raw_queue(&raw_channel, "bench-e2e-raw").await;
        let (raw_tx, raw_done) = finished::channel();
        tokio::spawn(raw_worker(
            bench.raw_channel().await,
            "bench-e2e-raw",
            raw_tx,
        ));
        (framework_done, raw_done, queue, raw_channel)
    });

    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("framework", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| {
                framework_done.time_rounds(iters, batch, |n| {
                    let messages = (0..n)
                        .map(|_| task_to_message(&new_task(), Delay::Unsupported).unwrap())
                        .collect();
                    let queue = queue.clone();
                    async move { queue.publish_batch(messages).await.expect("publish") }
                })
            });
        });
        group.bench_function(BenchmarkId::new("raw", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| {
                let channel = raw_channel.clone();
                raw_done.time_rounds(iters, batch, move |n| {
                    let messages: Vec<(Vec<u8>, BasicProperties)> = (0..n)
                        .map(|_| {
                            let task = task_to_message(&new_task(), Delay::Unsupported).unwrap();
                            let mut headers = FieldTable::default();
                            for (name, value) in task.headers.iter() {
                                if let Some(text) = value.as_str() {
                                    headers.insert(
                                        name.as_str().into(),
                                        AMQPValue::LongString(text.into()),
                                    );
                                }
                            }
                            (task.payload.to_vec(), raw_properties(headers))
                        })
                        .collect();
                    let channel = channel.clone();
                    async move { raw_publish(&channel, "bench-e2e-raw", messages).await }
                })
            });
        });
    }
    stop.cancel();
    group.finish();
}

fn main() {
    let Ok(url) = std::env::var("BROKER_TEST_AMQP_URL") else {
        println!("BROKER_TEST_AMQP_URL is not set; skipping the RabbitMQ benchmarks");
        return;
    };
    let bench = Bench {
        url,
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
        queues: std::sync::Mutex::default(),
    };
    let mut criterion = Criterion::default().configure_from_args();
    publish(&mut criterion, &bench);
    consume_ack(&mut criterion, &bench);
    end_to_end(&mut criterion, &bench);
    criterion.final_summary();
    bench.runtime.block_on(async {
        let broker = bench.broker().await;
        let mut queues = bench.queues.lock().unwrap().clone();
        queues.sort();
        queues.dedup();
        for queue in queues {
            let _ = broker.delete_queue(&queue).await;
        }
    });
}
