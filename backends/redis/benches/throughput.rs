//! Throughput of the Redis backend beside a baseline that drives the `redis` crate directly
//! with the same commands (the same Lua scripts, the same result writes), in the same run, so
//! that the ratio of the two is the framework's overhead.
//!
//! Groups `redis/publish`, `redis/consume_ack` and `redis/end_to_end`, each with `framework`
//! and `raw` at batch sizes 1, 10 and 100; throughput in messages (tasks). Needs
//! `BROKER_TEST_REDIS_URL`; without it the benchmark prints why and does nothing. Every key it
//! writes is under a fresh prefix and deleted at the end.

use std::{
    sync::{Arc, LazyLock},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use broker_core::{
    Delay, Message, Queue, ResultStore, TaskResult, TaskState,
    celery::TaskMessage,
    tasks::task_to_message,
    worker::{TaskError, TaskRegistry, TaskRequest, Worker, WorkerOptions},
};
use broker_redis::{RedisBroker, RedisConfig, RedisResultStore, layout::Keys, scripts};
use criterion::{BenchmarkId, Criterion, Throughput};
use futures::StreamExt;
use redis::{Script, aio::MultiplexedConnection};
use serde_json::{Value, json};
use tokio::{runtime::Runtime, sync::mpsc};
use tokio_util::sync::CancellationToken;

const BATCHES: [usize; 3] = [1, 10, 100];
const CONCURRENCY: usize = 16;
const LEASE_MS: u64 = 60_000;

static PUBLISH: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::PUBLISH));
static RECEIVE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::RECEIVE));
static ACK: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::ACK));

struct Bench {
    url: String,
    prefix: String,
    keys: Keys,
    runtime: Runtime,
}

impl Bench {
    fn config(&self) -> RedisConfig {
        RedisConfig {
            key_prefix: self.prefix.clone(),
            visibility_timeout: Duration::from_millis(LEASE_MS),
            ..RedisConfig::new(self.url.clone())
        }
    }

    async fn raw(&self) -> MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    async fn framework_queue(&self, name: &str) -> Queue {
        let broker = RedisBroker::connect(self.config()).await.expect("connect");
        Queue::declare(Arc::new(broker), name)
            .await
            .expect("declare")
    }
}

/// The payload every publish benchmark sends: 100 bytes.
fn payload() -> Vec<u8> {
    b"0123456789".repeat(10)
}

/// What a hand-written client sends to the publish script for one message: kombu's envelope
/// after its counters, with a fresh delivery tag, around a body it encoded once.
fn raw_tail(queue: &str, body_base64: &str, headers: &str) -> String {
    format!(
        r#""properties":{{"delivery_tag":"{}","body_encoding":"base64","delivery_info":{{"exchange":"{queue}","routing_key":"{queue}"}},"priority":0,"delivery_mode":2}},"headers":{headers},"content-type":"application/json","content-encoding":"utf-8","body":"{body_base64}"}}"#,
        uuid::Uuid::new_v4()
    )
}

async fn raw_publish(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    queue: &str,
    tails: impl IntoIterator<Item = String>,
) {
    let mut call = PUBLISH.prepare_invoke();
    call.key(keys.binding(queue))
        .key(keys.queue(queue))
        .key(keys.delayed(queue))
        .key(keys.sequence())
        .arg(keys.prefix())
        .arg(queue)
        .arg(300_000);
    for tail in tails {
        call.arg(tail).arg(0).arg("");
    }
    let _: i64 = call.invoke_async(conn).await.expect("publish script");
}

/// Receives up to `max` with the receive script: (tag, receive count) pairs and envelopes.
async fn raw_receive(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    queue: &str,
    max: usize,
) -> Vec<(String, Vec<u8>)> {
    let reply: Vec<redis::Value> = RECEIVE
        .key(keys.binding(queue))
        .key(keys.queue(queue))
        .key(keys.unacked())
        .key(keys.unacked_index())
        .key(keys.delayed(queue))
        .key(keys.sequence())
        .arg(keys.prefix())
        .arg(queue)
        .arg(max)
        .arg(LEASE_MS)
        .arg(5)
        .arg("\"exhausted\"")
        .invoke_async(conn)
        .await
        .expect("receive script");
    reply[2..]
        .chunks(2)
        .map(|pair| match pair {
            [redis::Value::BulkString(tag), redis::Value::BulkString(env)] => {
                (String::from_utf8(tag.clone()).unwrap(), env.clone())
            }
            other => panic!("unexpected reply {other:?}"),
        })
        .collect()
}

async fn raw_ack(conn: &mut MultiplexedConnection, keys: &Keys, tags: &[String]) {
    let mut call = ACK.prepare_invoke();
    call.key(keys.unacked())
        .key(keys.unacked_index())
        .arg(LEASE_MS);
    for tag in tags {
        call.arg(tag).arg(1);
    }
    let lost: i64 = call.invoke_async(conn).await.expect("ack script");
    assert_eq!(lost, 0);
}

async fn declare_raw(conn: &mut MultiplexedConnection, keys: &Keys, queue: &str) {
    let _: () = redis::cmd("SADD")
        .arg(keys.binding(queue))
        .arg(Keys::binding_member(queue))
        .query_async(conn)
        .await
        .unwrap();
}

async fn clear(conn: &mut MultiplexedConnection, keys: &Keys, queue: &str) {
    let _: () = redis::cmd("DEL")
        .arg(keys.queue(queue))
        .arg(keys.unacked())
        .arg(keys.unacked_index())
        .query_async(conn)
        .await
        .unwrap();
}

fn publish(c: &mut Criterion, bench: &Bench) {
    let mut group = c.benchmark_group("redis/publish");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let body = base64_of(&payload());
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("framework", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| async move {
                let queue = bench.framework_queue("bench-publish").await;
                let mut raw = bench.raw().await;
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
                clear(&mut raw, &bench.keys, "bench-publish").await;
                took
            });
        });
        let body = body.clone();
        group.bench_function(BenchmarkId::new("raw", batch), |b| {
            let body = body.clone();
            b.to_async(&bench.runtime).iter_custom(move |iters| {
                let body = body.clone();
                async move {
                    let mut raw = bench.raw().await;
                    declare_raw(&mut raw, &bench.keys, "bench-publish").await;
                    let start = Instant::now();
                    for _ in 0..iters {
                        let tails = (0..batch)
                            .map(|_| raw_tail("bench-publish", &body, r#"{"task":"bench"}"#));
                        raw_publish(&mut raw, &bench.keys, "bench-publish", tails).await;
                    }
                    let took = start.elapsed();
                    clear(&mut raw, &bench.keys, "bench-publish").await;
                    took
                }
            });
        });
    }
    group.finish();
}

/// Fills `queue` with `count` messages (untimed).
async fn prefill(bench: &Bench, queue: &str, count: usize) {
    let mut raw = bench.raw().await;
    declare_raw(&mut raw, &bench.keys, queue).await;
    let body = base64_of(&payload());
    let mut left = count;
    while left > 0 {
        let n = left.min(100);
        let tails = (0..n).map(|_| raw_tail(queue, &body, r#"{"task":"bench"}"#));
        raw_publish(&mut raw, &bench.keys, queue, tails).await;
        left -= n;
    }
}

fn consume_ack(c: &mut Criterion, bench: &Bench) {
    let mut group = c.benchmark_group("redis/consume_ack");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("framework", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| async move {
                prefill(bench, "bench-consume", iters as usize * batch).await;
                let queue = bench.framework_queue("bench-consume").await;
                let start = Instant::now();
                for _ in 0..iters {
                    let got = queue.receive(batch, Duration::ZERO).await.expect("receive");
                    assert_eq!(got.len(), batch);
                    queue.ack_all(got).await.expect("ack");
                }
                let took = start.elapsed();
                clear(&mut bench.raw().await, &bench.keys, "bench-consume").await;
                took
            });
        });
        group.bench_function(BenchmarkId::new("raw", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| async move {
                prefill(bench, "bench-consume", iters as usize * batch).await;
                let mut raw = bench.raw().await;
                let start = Instant::now();
                for _ in 0..iters {
                    let got = raw_receive(&mut raw, &bench.keys, "bench-consume", batch).await;
                    assert_eq!(got.len(), batch);
                    let tags: Vec<String> = got.into_iter().map(|(tag, _)| tag).collect();
                    raw_ack(&mut raw, &bench.keys, &tags).await;
                }
                let took = start.elapsed();
                clear(&mut raw, &bench.keys, "bench-consume").await;
                took
            });
        });
    }
    group.finish();
}

/// The Redis result store, telling the benchmark when a task's SUCCESS was written.
#[derive(Debug)]
struct Signalling {
    inner: RedisResultStore,
    done: mpsc::UnboundedSender<()>,
}

#[async_trait]
impl ResultStore for Signalling {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn store(&self, result: &TaskResult) -> broker_core::Result<()> {
        self.inner.store(result).await?;
        if result.status == TaskState::Success {
            let _ = self.done.send(());
        }
        Ok(())
    }
    async fn fetch(&self, task_id: &str) -> broker_core::Result<Option<TaskResult>> {
        self.inner.fetch(task_id).await
    }
    async fn forget(&self, task_id: &str) -> broker_core::Result<()> {
        self.inner.forget(task_id).await
    }
}

/// A minimal hand-written worker with the same commands and concurrency as the runtime: wait
/// for a free slot, take up to the free slots with the receive script (polling every 200 us
/// when empty), then per task write STARTED, run, write SUCCESS (SETEX + PUBLISH in MULTI, as
/// the result store does), signal, ack.
async fn raw_worker(
    mut conn: MultiplexedConnection,
    wake: redis::aio::PubSub,
    keys: Keys,
    queue: &'static str,
    done: mpsc::UnboundedSender<()>,
    stop: CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut wake = wake.into_on_message();
    while !stop.is_cancelled() {
        let mut permits = vec![slots.clone().acquire_owned().await.unwrap()];
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        let got = raw_receive(&mut conn, &keys, queue, permits.len()).await;
        if got.is_empty() {
            let _ = tokio::time::timeout(Duration::from_millis(250), wake.next()).await;
            continue;
        }
        for ((tag, _envelope), permit) in got.into_iter().zip(permits) {
            let mut conn = conn.clone();
            let keys = keys.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let key = keys.result(&tag);
                for state in ["STARTED", "SUCCESS"] {
                    let text = json!({"status": state, "result": null, "traceback": null, "children": [], "date_done": null, "task_id": tag}).to_string();
                    let _: () = redis::pipe()
                        .atomic()
                        .set_ex(&key, &text, 3600)
                        .ignore()
                        .publish(&key, &text)
                        .ignore()
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                }
                let _ = done.send(());
                raw_ack(&mut conn, &keys, &[tag]).await;
                drop(permit);
            });
        }
    }
}

fn end_to_end(c: &mut Criterion, bench: &Bench) {
    let mut group = c.benchmark_group("redis/end_to_end");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let template = TaskMessage::new("noop", vec![json!(1), json!(2)], serde_json::Map::new());
    let message = task_to_message(&template, Delay::Unsupported).unwrap();
    let headers = serde_json::to_string(&message.headers).unwrap();
    let body = base64_of(&message.payload);

    // The framework: the worker runtime with a task that returns at once.
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let done_rx = Arc::new(tokio::sync::Mutex::new(done_rx));
    let stop = CancellationToken::new();
    let queue = bench.runtime.block_on(async {
        // The producer and the worker have connections of their own, as separate processes do.
        let queue = bench.framework_queue("bench-e2e").await;
        let worker_queue = bench.framework_queue("bench-e2e").await;
        let store = Signalling {
            inner: RedisResultStore::connect(bench.config()).await.unwrap(),
            done: done_tx,
        };
        let tasks = TaskRegistry::new().register("noop", |_: TaskRequest| async {
            Ok::<Value, TaskError>(Value::Null)
        });
        let worker =
            Worker::new(worker_queue, Arc::new(store), tasks).with_options(WorkerOptions {
                concurrency: CONCURRENCY,
                prefetch: CONCURRENCY,
                ..WorkerOptions::default()
            });
        let stop = stop.clone();
        bench.runtime.spawn(async move { worker.run(stop).await });
        queue
    });
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("framework", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| {
                let queue = queue.clone();
                let done_rx = done_rx.clone();
                async move {
                    let mut done = done_rx.lock().await;
                    let start = Instant::now();
                    for _ in 0..iters {
                        let messages = (0..batch)
                            .map(|_| {
                                let task = TaskMessage::new(
                                    "noop",
                                    vec![json!(1), json!(2)],
                                    serde_json::Map::new(),
                                );
                                task_to_message(&task, Delay::Unsupported).unwrap()
                            })
                            .collect();
                        queue.publish_batch(messages).await.expect("publish");
                        for _ in 0..batch {
                            done.recv().await.expect("a task finished");
                        }
                    }
                    start.elapsed()
                }
            });
        });
    }
    stop.cancel();

    // The baseline: the same commands from a hand-written producer and worker.
    let (raw_tx, raw_rx) = mpsc::unbounded_channel();
    let raw_rx = Arc::new(tokio::sync::Mutex::new(raw_rx));
    let raw_stop = CancellationToken::new();
    bench.runtime.block_on(async {
        declare_raw(&mut bench.raw().await, &bench.keys, "bench-e2e-raw").await;
    });
    let (conn, wake) = bench.runtime.block_on(async {
        let client = redis::Client::open(bench.url.as_str()).unwrap();
        let mut wake = client.get_async_pubsub().await.unwrap();
        wake.subscribe(bench.keys.wake_channel()).await.unwrap();
        (bench.raw().await, wake)
    });
    let worker_stop = raw_stop.clone();
    bench.runtime.spawn(raw_worker(
        conn,
        wake,
        bench.keys.clone(),
        "bench-e2e-raw",
        raw_tx,
        worker_stop,
    ));
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        let body = body.clone();
        let headers = headers.clone();
        group.bench_function(BenchmarkId::new("raw", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| {
                let raw_rx = raw_rx.clone();
                let body = body.clone();
                let headers = headers.clone();
                async move {
                    let mut conn = bench.raw().await;
                    let mut done = raw_rx.lock().await;
                    let start = Instant::now();
                    for _ in 0..iters {
                        let tails = (0..batch).map(|_| raw_tail("bench-e2e-raw", &body, &headers));
                        raw_publish(&mut conn, &bench.keys, "bench-e2e-raw", tails).await;
                        for _ in 0..batch {
                            done.recv().await.expect("a task finished");
                        }
                    }
                    start.elapsed()
                }
            });
        });
    }
    raw_stop.cancel();
    group.finish();
}

fn base64_of(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn main() {
    let Ok(url) = std::env::var("BROKER_TEST_REDIS_URL") else {
        println!("BROKER_TEST_REDIS_URL is not set; skipping the Redis benchmarks");
        return;
    };
    let prefix = format!("bench:{}:", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let bench = Bench {
        keys: Keys::new(prefix.clone()),
        url,
        prefix,
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    };
    let mut criterion = Criterion::default().configure_from_args();
    publish(&mut criterion, &bench);
    consume_ack(&mut criterion, &bench);
    end_to_end(&mut criterion, &bench);
    criterion.final_summary();
    bench.runtime.block_on(async {
        let mut conn = bench.raw().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", bench.prefix))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<()> =
                redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
        }
    });
}
