//! Throughput of the PostgreSQL backend beside a baseline that runs the very same SQL
//! statements (`broker_postgres::sql::Statements`) through sqlx directly, in the same run, so
//! that the ratio of the two is the framework's overhead.
//!
//! Groups `postgres/publish`, `postgres/consume_ack` and `postgres/end_to_end`, each with
//! `framework` and `raw` at batch sizes 1, 10 and 100; throughput in messages (tasks). The raw
//! end-to-end worker reads each task's name, id and arguments, as any worker must; its producer
//! gives every task a fresh id. Needs
//! `BROKER_TEST_POSTGRES_URL`; without it the benchmark prints why and does nothing. Its tables
//! live in a fresh schema, dropped at the end.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use broker_benches::{
    acks,
    finished::{self, Reporting},
    groups,
};
use broker_core::{
    Delay, Headers, Message, Queue,
    celery::TaskMessage,
    dead_letter_queue,
    tasks::task_to_message,
    worker::{TaskError, TaskRegistry, TaskRequest, Worker, WorkerOptions},
};
use broker_postgres::{
    PostgresBroker, PostgresConfig, PostgresResultStore,
    celery_tables::CeleryTables,
    sql::{Statements, channel},
};
use criterion::{BenchmarkId, Criterion, Throughput};
use serde_json::{Map, Value, json};
use sqlx::{
    PgPool, Row,
    postgres::{PgListener, PgPoolOptions},
    types::Json,
};
use tokio::{runtime::Runtime, sync::mpsc};
use tokio_util::sync::CancellationToken;

const BATCHES: [usize; 3] = [1, 10, 100];
/// Tasks a worker runs at once, in both end-to-end variants.
const CONCURRENCY: usize = 16;
const LEASE: Duration = Duration::from_secs(60);
const DEDUP_WINDOW: Duration = Duration::from_secs(300);

struct Bench {
    url: String,
    schema: String,
    sql: Statements,
    results: CeleryTables,
    channel: String,
    runtime: Runtime,
    raw: PgPool,
}

impl Bench {
    fn config(&self) -> PostgresConfig {
        PostgresConfig {
            schema: self.schema.clone(),
            result_schema: Some(self.schema.clone()),
            visibility_timeout: LEASE,
            dedup_window: DEDUP_WINDOW,
            ..PostgresConfig::new(self.url.clone())
        }
    }

    async fn framework_queue(&self, name: &str) -> Queue {
        let broker = PostgresBroker::connect(self.config())
            .await
            .expect("connect");
        Queue::declare(Arc::new(broker), name)
            .await
            .expect("declare")
    }

    async fn declare_raw(&self, queue: &str) {
        sqlx::query(&self.sql.declare)
            .bind(
                std::iter::once(queue.to_owned())
                    .chain(dead_letter_queue(queue))
                    .collect::<Vec<_>>(),
            )
            .execute(&self.raw)
            .await
            .expect("declare");
    }

    /// Empties `queue` and vacuums the table (untimed), so that every sample starts without
    /// the dead rows of the previous one; otherwise whichever variant runs second would scan
    /// them.
    async fn clear(&self, queue: &str) {
        sqlx::query(&format!(
            "DELETE FROM \"{}\".messages WHERE queue = $1",
            self.schema
        ))
        .bind(queue)
        .execute(&self.raw)
        .await
        .expect("clear");
        sqlx::query(&format!("VACUUM \"{}\".messages", self.schema))
            .execute(&self.raw)
            .await
            .expect("vacuum");
    }
}

/// The payload every publish benchmark sends: 100 bytes.
fn payload() -> Vec<u8> {
    b"0123456789".repeat(10)
}

fn bench_headers() -> Headers {
    Headers::from_iter([("task".to_owned(), json!("bench"))])
}

/// What a hand-written client binds for `count` copies of one message.
struct RawBatch {
    payloads: Vec<Vec<u8>>,
    headers: Vec<Json<Headers>>,
    properties: Vec<Json<Value>>,
    ordering_keys: Vec<Option<String>>,
    dedup_keys: Vec<Option<String>>,
    delays: Vec<f64>,
}

impl RawBatch {
    fn new(count: usize, payload: &[u8], headers: &Headers, properties: &Value) -> Self {
        Self {
            payloads: vec![payload.to_vec(); count],
            headers: vec![Json(headers.clone()); count],
            properties: vec![Json(properties.clone()); count],
            ordering_keys: vec![None; count],
            dedup_keys: vec![None; count],
            delays: vec![0.0; count],
        }
    }

    /// `count` tasks made from one Celery message, each with a fresh task id, as a
    /// hand-written producer would send them.
    fn tasks(count: usize, template: &Message, properties: &Value) -> Self {
        let mut batch = Self::new(count, &template.payload, &template.headers, properties);
        for Json(headers) in &mut batch.headers {
            let id = Value::from(uuid::Uuid::new_v4().to_string());
            headers.insert("root_id".to_owned(), id.clone());
            headers.insert("id".to_owned(), id);
        }
        batch
    }
}

/// A leased message, as the claim statement returns it.
struct Claimed {
    id: i64,
    token: i64,
    payload: Vec<u8>,
    headers: Value,
}

async fn raw_publish(bench: &Bench, queue: &str, batch: RawBatch) {
    let row = sqlx::query(&bench.sql.publish)
        .bind(queue)
        .bind(batch.payloads)
        .bind(batch.headers)
        .bind(batch.properties)
        .bind(batch.ordering_keys)
        .bind(batch.dedup_keys)
        .bind(batch.delays)
        .bind(DEDUP_WINDOW.as_secs_f64())
        .bind(&bench.channel)
        .fetch_one(&bench.raw)
        .await
        .expect("publish");
    assert!(row.get::<bool, _>("queue_exists"));
}

/// Claims up to `max` messages.
async fn raw_claim(bench: &Bench, queue: &str, max: usize) -> Vec<Claimed> {
    sqlx::query(&bench.sql.claim)
        .bind(queue)
        .bind(max as i64)
        .bind(LEASE.as_secs_f64())
        .bind(dead_letter_queue(queue))
        .bind(5_i32)
        .bind("received 5 times without an ack")
        .bind(&bench.channel)
        .bind("x-dead-letter-reason")
        .fetch_all(&bench.raw)
        .await
        .expect("claim")
        .iter()
        // A row without an id is the statement's "nothing leased" report.
        .filter_map(|row| {
            let id: i64 = row.get::<Option<i64>, _>("id")?;
            let Json(headers): Json<Value> = row.get("headers");
            Some(Claimed {
                id,
                token: row.get("lease_token"),
                payload: row.get("payload"),
                headers,
            })
        })
        .collect()
}

async fn raw_ack(bench: &Bench, queue: &str, claimed: &[(i64, i64)]) {
    let (ids, tokens): (Vec<i64>, Vec<i64>) = claimed.iter().copied().unzip();
    let done = sqlx::query(&bench.sql.ack)
        .bind(queue)
        .bind(ids)
        .bind(tokens)
        .execute(&bench.raw)
        .await
        .expect("ack")
        .rows_affected();
    assert_eq!(done as usize, claimed.len());
}

fn publish(c: &mut Criterion, bench: &Bench) {
    let mut group = groups::group(c, "postgres/publish");
    let properties = json!({"content_type": "application/json"});
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
                bench.clear("bench-publish").await;
                took
            });
        });
        group.bench_function(BenchmarkId::new("raw", batch), |b| {
            let properties = properties.clone();
            b.to_async(&bench.runtime).iter_custom(move |iters| {
                let properties = properties.clone();
                async move {
                    bench.declare_raw("bench-publish").await;
                    let headers = bench_headers();
                    let start = Instant::now();
                    for _ in 0..iters {
                        let raw = RawBatch::new(batch, &payload(), &headers, &properties);
                        raw_publish(bench, "bench-publish", raw).await;
                    }
                    let took = start.elapsed();
                    bench.clear("bench-publish").await;
                    took
                }
            });
        });
    }
    group.finish();
}

/// Fills `queue` with `count` messages (untimed).
async fn prefill(bench: &Bench, queue: &str, count: usize) {
    bench.declare_raw(queue).await;
    let headers = bench_headers();
    let properties = json!({"content_type": "application/json"});
    let mut left = count;
    while left > 0 {
        let n = left.min(1000);
        raw_publish(
            bench,
            queue,
            RawBatch::new(n, &payload(), &headers, &properties),
        )
        .await;
        left -= n;
    }
}

fn consume_ack(c: &mut Criterion, bench: &Bench) {
    let mut group = groups::group(c, "postgres/consume_ack");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("framework", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| async move {
                prefill(bench, "bench-consume", iters as usize * batch).await;
                let queue = bench.framework_queue("bench-consume").await;
                let took = groups::time_consume_ack(&queue, iters, batch).await;
                bench.clear("bench-consume").await;
                took
            });
        });
        group.bench_function(BenchmarkId::new("raw", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| async move {
                prefill(bench, "bench-consume", iters as usize * batch).await;
                let start = Instant::now();
                for _ in 0..iters {
                    let got = raw_claim(bench, "bench-consume", batch).await;
                    assert_eq!(got.len(), batch);
                    let held: Vec<(i64, i64)> = got.iter().map(|c| (c.id, c.token)).collect();
                    raw_ack(bench, "bench-consume", &held).await;
                }
                let took = start.elapsed();
                bench.clear("bench-consume").await;
                took
            });
        });
    }
    group.finish();
}

async fn raw_store(bench: &Bench, task_id: &str, status: &str) {
    let date_done = (status == "SUCCESS").then(|| chrono::Utc::now().naive_utc());
    sqlx::query(&bench.results.store)
        .bind(task_id)
        .bind(status)
        .bind(b"null".as_slice())
        .bind(date_done)
        .bind(None::<String>)
        .execute(&bench.raw)
        .await
        .expect("store result");
}

/// A minimal hand-written worker with the same statements and concurrency as the runtime:
/// claim up to the free slots (waiting on LISTEN when the queue is empty), then per task read
/// its name and id from the headers and its `[args, kwargs, embed]` body, write STARTED, run
/// nothing, write SUCCESS, signal, and hand it to an acker that acks in batches as the
/// runtime does.
async fn raw_worker(
    bench: &'static Bench,
    queue: &'static str,
    done: mpsc::UnboundedSender<()>,
    stop: CancellationToken,
) {
    let mut listener = PgListener::connect(&bench.url).await.expect("listen");
    listener.listen(&bench.channel).await.expect("listen");
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let (acks, _acker) = acks::batching(1000, move |held: Vec<(i64, i64)>| async move {
        raw_ack(bench, queue, &held).await;
    });
    while !stop.is_cancelled() {
        let first = slots.clone().acquire_owned().await.expect("open semaphore");
        let mut permits = vec![first];
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        let got = raw_claim(bench, queue, permits.len()).await;
        if got.is_empty() {
            // Buffered notifications return at once, so none is missed between the claim
            // and this wait.
            let _ = tokio::time::timeout(Duration::from_millis(100), listener.recv()).await;
            continue;
        }
        for (claimed, permit) in got.into_iter().zip(permits) {
            let (done, acks) = (done.clone(), acks.clone());
            tokio::spawn(async move {
                let (args, _kwargs, _embed): (Vec<Value>, Map<String, Value>, Value) =
                    serde_json::from_slice(&claimed.payload).expect("a Celery body");
                assert_eq!(
                    (claimed.headers["task"].as_str(), args.len()),
                    (Some("noop"), 2)
                );
                let task_id = claimed.headers["id"].as_str().expect("a task id");
                raw_store(bench, task_id, "STARTED").await;
                raw_store(bench, task_id, "SUCCESS").await;
                let _ = done.send(());
                let _ = acks.send((claimed.id, claimed.token));
                drop(permit);
            });
        }
    }
}

fn end_to_end(c: &mut Criterion, bench: &'static Bench) {
    let mut group = groups::group(c, "postgres/end_to_end");

    // The framework: the worker runtime with a task that returns at once.
    let (done_tx, done) = finished::channel();
    let stop = CancellationToken::new();
    let queue = bench.runtime.block_on(async {
        let queue = bench.framework_queue("bench-e2e").await;
        let store = Reporting::new(
            PostgresResultStore::connect(bench.config())
                .await
                .expect("store"),
            done_tx,
        );
        let tasks = TaskRegistry::new().register("noop", |_: TaskRequest| async {
            Ok::<Value, TaskError>(Value::Null)
        });
        let worker =
            Worker::new(queue.clone(), Arc::new(store), tasks).with_options(WorkerOptions {
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
                done.time_rounds(iters, batch, |n| {
                    let messages = (0..n)
                        .map(|_| {
                            let task =
                                TaskMessage::new("noop", vec![json!(1), json!(2)], Map::new());
                            task_to_message(&task, Delay::Unsupported).expect("encode")
                        })
                        .collect();
                    let queue = queue.clone();
                    async move { queue.publish_batch(messages).await.expect("publish") }
                })
            });
        });
    }
    stop.cancel();

    // The baseline: the same statements from a hand-written producer and worker.
    let template = TaskMessage::new("noop", vec![json!(1), json!(2)], Map::new());
    let message = task_to_message(&template, Delay::Unsupported).expect("encode");
    let properties = json!({
        "content_type": message.properties.content_type,
        "content_encoding": message.properties.content_encoding,
        "correlation_id": message.properties.correlation_id,
    });
    let (raw_tx, raw_done) = finished::channel();
    let raw_stop = CancellationToken::new();
    bench.runtime.block_on(bench.declare_raw("bench-e2e-raw"));
    bench
        .runtime
        .spawn(raw_worker(bench, "bench-e2e-raw", raw_tx, raw_stop.clone()));
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("raw", batch), |b| {
            b.to_async(&bench.runtime).iter_custom(|iters| {
                raw_done.time_rounds(iters, batch, |n| {
                    let raw = RawBatch::tasks(n, &message, &properties);
                    raw_publish(bench, "bench-e2e-raw", raw)
                })
            });
        });
    }
    raw_stop.cancel();
    group.finish();
}

fn main() {
    let Ok(url) = std::env::var("BROKER_TEST_POSTGRES_URL") else {
        println!("BROKER_TEST_POSTGRES_URL is not set; skipping the PostgreSQL benchmarks");
        return;
    };
    let schema = format!(
        "bpg_bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let raw = runtime.block_on(async {
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect(&url)
            .await
            .expect("raw pool");
        // The broker and the result store create their tables; the baseline uses the same.
        let config = PostgresConfig {
            schema: schema.clone(),
            result_schema: Some(schema.clone()),
            ..PostgresConfig::new(url.clone())
        };
        PostgresBroker::connect(config.clone())
            .await
            .expect("migrate");
        PostgresResultStore::connect(config)
            .await
            .expect("result tables");
        pool
    });
    let bench: &'static Bench = Box::leak(Box::new(Bench {
        sql: Statements::new(&schema),
        results: CeleryTables::new(Some(&schema)),
        channel: channel(&schema),
        url,
        schema,
        runtime,
        raw,
    }));
    let mut criterion = Criterion::default().configure_from_args();
    publish(&mut criterion, bench);
    consume_ack(&mut criterion, bench);
    end_to_end(&mut criterion, bench);
    criterion.final_summary();
    bench.runtime.block_on(async {
        sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", bench.schema))
            .execute(&bench.raw)
            .await
            .expect("drop the benchmark schema");
    });
}
