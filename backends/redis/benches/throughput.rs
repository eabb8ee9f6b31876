//! Throughput of the Redis backend beside a baseline that drives the `redis` crate directly
//! with the same commands (the same Lua scripts, the same result writes, the same number of
//! connections), in the same run, so that the ratio of the two is the framework's overhead.
//!
//! Groups `redis/publish`, `redis/consume_ack` and `redis/end_to_end`, each with `framework`
//! and `raw` at batch sizes 1, 10 and 100, the two sides of one batch size measured one after
//! the other; throughput in messages (tasks). The raw end-to-end worker does what a minimal
//! hand-written Celery worker must: it reads the task's name, id and arguments from the
//! envelope; its producer gives every task a fresh id. Needs `BROKER_TEST_REDIS_URL`; without
//! it the benchmark prints why and does nothing. Every key it writes is under a fresh prefix
//! and deleted at the end.

use std::{
    borrow::Cow,
    sync::{Arc, LazyLock},
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use broker_benches::{
    acks,
    finished::{self, Reporting},
    groups,
};
use broker_core::{
    DEAD_LETTER_SUFFIX, Delay, Message, Queue,
    celery::TaskMessage,
    tasks::task_to_message,
    worker::{TaskError, TaskRegistry, TaskRequest, Worker, WorkerOptions},
};
use broker_redis::{RedisBroker, RedisConfig, RedisResultStore, layout::Keys, scripts};
use criterion::{BenchmarkId, Criterion, Throughput};
use futures::StreamExt;
use redis::{IntoConnectionInfo, Script, aio::MultiplexedConnection, io::tcp::TcpSettings};
use serde::Deserialize;
use serde_json::{Map, Value, json};
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

    /// A plain client with `TCP_NODELAY`, as the backend's own connections have.
    fn raw_client(&self) -> redis::Client {
        let info = self
            .url
            .as_str()
            .into_connection_info()
            .unwrap()
            .set_tcp_settings(TcpSettings::default().set_nodelay(true));
        redis::Client::open(info).unwrap()
    }

    async fn raw(&self) -> MultiplexedConnection {
        self.raw_client()
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
        .arg(DEAD_LETTER_SUFFIX)
        .invoke_async(conn)
        .await
        .expect("receive script");
    reply[2..]
        .chunks(2)
        .map(|pair| match pair {
            [
                redis::Value::BulkString(tag),
                redis::Value::BulkString(entry),
            ] => {
                // kombu's unacked entry: `[envelope,"<queue>","<queue>"]`
                let env = &entry[1..entry.len() - 2 * queue.len() - 7];
                (String::from_utf8(tag.clone()).unwrap(), env.to_vec())
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
    let mut group = groups::group(c, "redis/publish");
    let body = BASE64.encode(payload());
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
    let body = BASE64.encode(payload());
    let mut left = count;
    while left > 0 {
        let n = left.min(100);
        let tails = (0..n).map(|_| raw_tail(queue, &body, r#"{"task":"bench"}"#));
        raw_publish(&mut raw, &bench.keys, queue, tails).await;
        left -= n;
    }
}

fn consume_ack(c: &mut Criterion, bench: &Bench) {
    let mut group = groups::group(c, "redis/consume_ack");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("framework", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| async move {
                prefill(bench, "bench-consume", iters as usize * batch).await;
                let queue = bench.framework_queue("bench-consume").await;
                let took = groups::time_consume_ack(&queue, iters, batch).await;
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

/// What a hand-written worker reads from kombu's envelope to run a Celery task: the task's
/// name and id from the headers, and the base64 body.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    headers: RawHeaders<'a>,
    #[serde(borrow)]
    body: Cow<'a, str>,
}

#[derive(Deserialize)]
struct RawHeaders<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    task: Cow<'a, str>,
}

/// A minimal hand-written worker with the same commands and concurrency as the runtime: wait
/// for a free slot, take up to the free slots with the receive script (sleeping until a
/// wake-up when empty), then per task decode the envelope and the `[args, kwargs, embed]`
/// body, write STARTED, run, write SUCCESS (SETEX + PUBLISH in MULTI, as the result store
/// does), signal, and hand the tag to an acker that acks in batches as the runtime does.
async fn raw_worker(
    mut conn: MultiplexedConnection,
    results: MultiplexedConnection,
    wake: redis::aio::PubSub,
    keys: Keys,
    queue: &'static str,
    done: mpsc::UnboundedSender<()>,
    stop: CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut wake = wake.into_on_message();
    let (acks, _acker) = acks::batching(100, {
        let (conn, keys) = (conn.clone(), keys.clone());
        move |tags: Vec<String>| {
            let (mut conn, keys) = (conn.clone(), keys.clone());
            async move { raw_ack(&mut conn, &keys, &tags).await }
        }
    });
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
        for ((tag, envelope), permit) in got.into_iter().zip(permits) {
            let mut results = results.clone();
            let (keys, done, acks) = (keys.clone(), done.clone(), acks.clone());
            tokio::spawn(async move {
                let envelope: RawEnvelope<'_> = serde_json::from_slice(&envelope).unwrap();
                let body = BASE64.decode(envelope.body.as_bytes()).unwrap();
                let (args, _kwargs, _embed): (Vec<Value>, Map<String, Value>, Value) =
                    serde_json::from_slice(&body).unwrap();
                assert_eq!((envelope.headers.task.as_ref(), args.len()), ("noop", 2));
                let id = envelope.headers.id;
                let key = keys.result(&id);
                for state in ["STARTED", "SUCCESS"] {
                    let text = json!({"status": state, "result": null, "traceback": null, "children": [], "date_done": null, "task_id": id}).to_string();
                    let _: () = redis::pipe()
                        .atomic()
                        .set_ex(&key, &text, 3600)
                        .ignore()
                        .publish(&key, &text)
                        .ignore()
                        .query_async(&mut results)
                        .await
                        .unwrap();
                }
                let _ = done.send(());
                let _ = acks.send(tag);
                drop(permit);
            });
        }
    }
}

/// Tasks through a worker, from publish to acknowledgement. The framework side is the worker
/// runtime with a task that returns at once, fed by `Queue::publish_batch` of Celery task
/// messages; the raw side is [`raw_worker`], fed by the publish script with envelopes built
/// from a template (a fresh task id each). For each batch size the two run one after the
/// other, so that both see the same machine.
fn end_to_end(c: &mut Criterion, bench: &Bench) {
    let mut group = groups::group(c, "redis/end_to_end");
    let new_task = || TaskMessage::new("noop", vec![json!(1), json!(2)], Map::new());
    let template = task_to_message(&new_task(), Delay::Unsupported).unwrap();
    let template_id = template.headers["id"].as_str().unwrap().to_owned();
    let template_headers = serde_json::to_string(&template.headers).unwrap();
    let body = BASE64.encode(&template.payload);

    let stop = CancellationToken::new();
    let (framework_done, raw_done, queue, raw_conn) = bench.runtime.block_on(async {
        // Producers and workers have connections of their own, as separate processes do.
        let queue = bench.framework_queue("bench-e2e").await;
        let worker_queue = bench.framework_queue("bench-e2e").await;
        let (framework_tx, framework_done) = finished::channel();
        let store = Reporting::new(
            RedisResultStore::connect(bench.config()).await.unwrap(),
            framework_tx,
        );
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

        let mut raw_conn = bench.raw().await;
        declare_raw(&mut raw_conn, &bench.keys, "bench-e2e-raw").await;
        let mut wake = bench.raw_client().get_async_pubsub().await.unwrap();
        wake.subscribe(bench.keys.wake_channel()).await.unwrap();
        let (raw_tx, raw_done) = finished::channel();
        tokio::spawn(raw_worker(
            bench.raw().await,
            bench.raw().await,
            wake,
            bench.keys.clone(),
            "bench-e2e-raw",
            raw_tx,
            stop.clone(),
        ));
        (framework_done, raw_done, queue, raw_conn)
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
                let conn = raw_conn.clone();
                let (template_id, template_headers, body) =
                    (&template_id, &template_headers, &body);
                raw_done.time_rounds(iters, batch, move |n| {
                    let tails: Vec<String> = (0..n)
                        .map(|_| {
                            let id = uuid::Uuid::new_v4().to_string();
                            let headers = template_headers.replace(template_id, &id);
                            raw_tail("bench-e2e-raw", body, &headers)
                        })
                        .collect();
                    let mut conn = conn.clone();
                    async move {
                        raw_publish(&mut conn, &bench.keys, "bench-e2e-raw", tails).await;
                    }
                })
            });
        });
    }
    stop.cancel();
    group.finish();
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
