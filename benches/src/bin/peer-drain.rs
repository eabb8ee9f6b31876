//! #14's drain scenario against the fastest Rust peer, from one run: 20,000 tasks of 100 B wait
//! in a Redis queue, then eight at a time drain them. Prints tasks/s for omniqueue 0.3 (list
//! mode, which stores no results) and for Switchyard's worker with `SUCCESS` stored and with
//! `ignore_result`, and each ratio to the peer. With `BROKER_TEST_POSTGRES_URL` set, the same
//! worker drains the same tasks from PostgreSQL too (results in Celery's tables there), and
//! with `BROKER_TEST_AMQP_URL` from RabbitMQ (results in the Redis given), beside no peer:
//! #14 and #12 give the peers' rates measured once.
//!
//! ```sh
//! cargo run --release -p broker-benches --features peers --bin peer-drain -- redis://127.0.0.1:6379
//! ```
//!
//! On Redis it also measures #14's producer path (a worker waits while a producer sends the
//! tasks one by one, or 100 per `send_tasks`, until all ran) and the idle pickup (one task
//! sent to a waiting worker until its handler runs).
//!
//! A second argument, `omniqueue`, `stored`, `ignored`, `one-by-one`, `batched`, `pickup`,
//! `pg-stored`, `pg-ignored`, `amqp-stored` or `amqp-ignored`, runs that side alone (for
//! `valgrind --tool=callgrind`).
//!
//! Built only with the `peers` feature, so a normal build does not compile omniqueue.

use std::{
    sync::{
        Arc, LazyLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use broker_amqp::{AmqpBroker, AmqpConfig};
use broker_core::{
    Broker, Queue, ResultStore,
    celery::TaskMessage,
    tasks::{send_task, send_tasks, task_to_message},
    worker::{TaskOptions, TaskRegistry, TaskRequest, Worker, WorkerOptions},
};
use broker_postgres::{PostgresBroker, PostgresConfig, PostgresResultStore};
use broker_redis::{RedisBroker, RedisConfig, RedisResultStore};
use omniqueue::backends::{RedisBackend, redis::RedisConfig as PeerConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Tasks per drain: 20,000, or `PEER_DRAIN_TASKS` (CI checks the wiring with a few).
static TASKS: LazyLock<usize> = LazyLock::new(|| {
    std::env::var("PEER_DRAIN_TASKS")
        .map_or(20_000, |n| n.parse().expect("PEER_DRAIN_TASKS is a number"))
});
const CONCURRENCY: usize = 8;
const PAYLOAD: usize = 100;

#[tokio::main]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("BROKER_TEST_REDIS_URL").ok())
        .expect("give a Redis URL, or set BROKER_TEST_REDIS_URL");
    // One side alone (`omniqueue`, `stored` or `ignored`), for a profile under callgrind.
    let only = std::env::args().nth(2);
    let runs = |side: &str| only.as_deref().is_none_or(|only| only == side);
    let run = uuid::Uuid::new_v4().simple().to_string();
    println!(
        "drain of {} tasks of {PAYLOAD} B, {CONCURRENCY} at a time, one run",
        *TASKS
    );
    let peer = if runs("omniqueue") {
        let peer = omniqueue_drain(&url, &run).await;
        println!("omniqueue 0.3, list mode (no results): {peer:>8.0} tasks/s");
        peer
    } else {
        f64::NAN
    };
    for (side, label, ignore_result) in [
        ("stored", "SUCCESS stored", false),
        ("ignored", "ignore_result", true),
    ] {
        if runs(side) {
            let (broker, results) = redis(&url, &run, ignore_result).await;
            let ours = switchyard_drain(broker, results, &run).await;
            println!(
                "switchyard, {label:<16}: {ours:>8.0} tasks/s, {:.2}x omniqueue",
                ours / peer
            );
        }
    }
    for (side, label, batch) in [
        ("one-by-one", "one send_task at a time", 1),
        ("batched", "send_tasks, 100 at a time", 100),
    ] {
        if runs(side) {
            let rate = produce_and_run(&url, &run, batch).await;
            println!("switchyard, producer beside the worker, {label}: {rate:>8.0} tasks/s");
        }
    }
    if runs("pickup") {
        let (median, p99) = idle_pickup(&url, &run).await;
        println!(
            "switchyard, idle pickup of one task ({PICKUPS} sends): median {median:.2} ms, 99th percentile {p99:.2} ms"
        );
    }
    if let Ok(postgres_url) = std::env::var("BROKER_TEST_POSTGRES_URL") {
        for (side, label, ignore_result) in [
            ("pg-stored", "SUCCESS stored", false),
            ("pg-ignored", "ignore_result", true),
        ] {
            if runs(side) {
                let (broker, results) = postgres(&postgres_url, ignore_result).await;
                let ours = switchyard_drain(broker, results, &run).await;
                println!("switchyard on PostgreSQL, {label:<16}: {ours:>8.0} tasks/s");
            }
        }
    }
    if let Ok(amqp_url) = std::env::var("BROKER_TEST_AMQP_URL") {
        for (side, label, ignore_result) in [
            ("amqp-stored", "SUCCESS stored in Redis", false),
            ("amqp-ignored", "ignore_result", true),
        ] {
            if runs(side) {
                let config = AmqpConfig::from_url(&amqp_url).expect("an AMQP URL");
                let broker = AmqpBroker::connect(config).await.expect("connect");
                let (_, results) = redis(&url, &run, ignore_result).await;
                let ours = switchyard_drain(Arc::new(broker), results, &run).await;
                println!("switchyard on RabbitMQ, {label:<23}: {ours:>8.0} tasks/s");
            }
        }
    }
}

/// A Redis broker under keys of this run, and a result store unless results are ignored.
async fn redis(
    url: &str,
    run: &str,
    ignore_result: bool,
) -> (Arc<dyn Broker>, Option<Arc<dyn ResultStore>>) {
    let config = RedisConfig {
        key_prefix: format!("peer-drain:{run}:"),
        // The results are read by nobody: let them go soon.
        result_expires: Duration::from_secs(60),
        ..RedisConfig::new(url)
    };
    let broker = RedisBroker::connect(config.clone()).await.expect("connect");
    let results = unless_ignored(ignore_result, RedisResultStore::connect(config)).await;
    (Arc::new(broker), results)
}

/// A PostgreSQL broker in schema `peer_drain` (each run drains a queue of its own), and a
/// result store in Celery's tables there unless results are ignored.
async fn postgres(
    url: &str,
    ignore_result: bool,
) -> (Arc<dyn Broker>, Option<Arc<dyn ResultStore>>) {
    let config = PostgresConfig {
        schema: "peer_drain".to_owned(),
        result_schema: Some("peer_drain".to_owned()),
        // The results are read by nobody: later runs purge them.
        result_expires: Duration::from_secs(60),
        ..PostgresConfig::new(url)
    };
    let broker = PostgresBroker::connect(config.clone())
        .await
        .expect("connect");
    let results = unless_ignored(ignore_result, PostgresResultStore::connect(config)).await;
    (Arc::new(broker), results)
}

/// The store `connect` opens, unless results are ignored (then it is never opened).
async fn unless_ignored<S: ResultStore>(
    ignore_result: bool,
    connect: impl Future<Output = broker_core::Result<S>>,
) -> Option<Arc<dyn ResultStore>> {
    if ignore_result {
        return None;
    }
    Some(Arc::new(connect.await.expect("result store")))
}

/// How many single tasks the idle-pickup measurement sends, one after another.
const PICKUPS: usize = 200;

/// A worker on a fresh Redis queue of this run, storing `SUCCESS`, that calls `ran` as each
/// task runs; and what stops it.
async fn running_worker(
    url: &str,
    run: &str,
    scenario: &str,
    ran: impl Fn() + Send + Sync + 'static,
) -> (Queue, CancellationToken, tokio::task::JoinHandle<()>) {
    let (broker, results) = redis(url, run, false).await;
    let queue = Queue::declare(broker, format!("switchyard-{scenario}"))
        .await
        .expect("declare");
    let handler = move |_: TaskRequest| {
        ran();
        async { Ok::<Value, _>(Value::Null) }
    };
    let worker = Worker::new(
        queue.clone(),
        results.expect("a result store"),
        TaskRegistry::new().register("noop", handler),
    )
    .with_options(WorkerOptions {
        concurrency: CONCURRENCY,
        prefetch: CONCURRENCY,
        ..WorkerOptions::default()
    });
    let stop = CancellationToken::new();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move {
            worker.run(stop).await.expect("the worker runs");
        }
    });
    (queue, stop, running)
}

/// Stops the worker `running_worker` started, then deletes its queue.
async fn stop_and_delete(
    queue: &Queue,
    stop: CancellationToken,
    running: tokio::task::JoinHandle<()>,
) {
    stop.cancel();
    running.await.expect("join");
    queue
        .broker()
        .delete_queue(queue.name())
        .await
        .expect("delete the queue");
}

/// #14's end-to-end producer path: tasks/s from the first send until the last task ran, with
/// a worker already waiting, the producer sending `batch` tasks per call.
async fn produce_and_run(url: &str, run: &str, batch: usize) -> f64 {
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = ran.clone();
    let scenario = format!("produce-{batch}");
    let (queue, stop, running) = running_worker(url, run, &scenario, move || {
        counted.fetch_add(1, Ordering::Relaxed);
    })
    .await;
    let tasks: Vec<TaskMessage> = (0..*TASKS)
        .map(|n| TaskMessage::new("noop", vec![json!(payload(n))], serde_json::Map::new()))
        .collect();
    let started = Instant::now();
    for chunk in tasks.chunks(batch) {
        if let [task] = chunk {
            send_task(&queue, task).await.expect("send");
        } else {
            send_tasks(&queue, chunk).await.expect("send");
        }
    }
    while ran.load(Ordering::Relaxed) < *TASKS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rate = *TASKS as f64 / started.elapsed().as_secs_f64();
    stop_and_delete(&queue, stop, running).await;
    rate
}

/// #14's idle pickup: milliseconds from sending one task to a waiting worker until its handler
/// runs, as the median and 99th percentile of [`PICKUPS`] sends, each after the worker has
/// been idle for 20 ms.
async fn idle_pickup(url: &str, run: &str) -> (f64, f64) {
    let (ran, mut runs) = tokio::sync::mpsc::unbounded_channel();
    let (queue, stop, running) = running_worker(url, run, "pickup", move || {
        let _ = ran.send(Instant::now());
    })
    .await;
    let mut waits = Vec::with_capacity(PICKUPS);
    for n in 0..PICKUPS {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let task = TaskMessage::new("noop", vec![json!(payload(n))], serde_json::Map::new());
        let sent = Instant::now();
        send_task(&queue, &task).await.expect("send");
        let ran_at = runs.recv().await.expect("the worker runs it");
        waits.push(ran_at.duration_since(sent).as_secs_f64() * 1_000.0);
    }
    stop_and_delete(&queue, stop, running).await;
    waits.sort_by(f64::total_cmp);
    (waits[PICKUPS / 2], waits[PICKUPS * 99 / 100])
}

/// The payload of task `n`: 100 bytes.
fn payload(n: usize) -> String {
    format!("{n:0>PAYLOAD$}")
}

/// Tasks/s of our worker draining `TASKS` waiting tasks, storing `SUCCESS` in `results` or,
/// without a store, with every task registered to ignore its result.
async fn switchyard_drain(
    broker: Arc<dyn Broker>,
    results: Option<Arc<dyn ResultStore>>,
    run: &str,
) -> f64 {
    let ignore_result = results.is_none();
    let name = format!("switchyard-{}-{ignore_result}", &run[..12]);
    let queue = Queue::declare(broker.clone(), name.clone())
        .await
        .expect("declare");
    let delay = queue.capabilities().delay;
    let messages: Vec<_> = (0..*TASKS)
        .map(|n| {
            let task = TaskMessage::new("noop", vec![json!(payload(n))], serde_json::Map::new());
            task_to_message(&task, delay).expect("encode")
        })
        .collect();
    for chunk in messages.chunks(1_000) {
        queue.publish_batch(chunk.to_vec()).await.expect("publish");
    }

    let ran = Arc::new(AtomicUsize::new(0));
    let counted = ran.clone();
    let noop = move |_: TaskRequest| {
        counted.fetch_add(1, Ordering::Relaxed);
        async { Ok::<Value, _>(Value::Null) }
    };
    let options = WorkerOptions {
        concurrency: CONCURRENCY,
        prefetch: CONCURRENCY,
        ..WorkerOptions::default()
    };
    let worker = match results {
        None => {
            let tasks =
                TaskRegistry::new().register_with("noop", noop, TaskOptions { ignore_result });
            Worker::without_results(queue, tasks).expect("no task stores results")
        }
        Some(results) => Worker::new(queue, results, TaskRegistry::new().register("noop", noop)),
    }
    .with_options(options);

    let stop = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(worker.run(stop.clone()));
    while ran.load(Ordering::Relaxed) < *TASKS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stop.cancel();
    // Returns once every ack was sent.
    let report = running.await.expect("join").expect("the worker runs");
    let rate = *TASKS as f64 / started.elapsed().as_secs_f64();
    assert_eq!(report.succeeded, *TASKS as u64);
    broker.delete_queue(&name).await.expect("delete the queue");
    rate
}

async fn omniqueue_drain(url: &str, run: &str) -> f64 {
    let config = || PeerConfig {
        dsn: url.to_owned(),
        max_connections: 16,
        reinsert_on_nack: false,
        queue_key: format!("peer-drain:{run}:omniqueue"),
        delayed_queue_key: format!("peer-drain:{run}:omniqueue:delayed"),
        delayed_lock_key: format!("peer-drain:{run}:omniqueue:lock"),
        consumer_group: "group".to_owned(),
        consumer_name: "consumer".to_owned(),
        payload_key: "payload".to_owned(),
        ack_deadline_ms: 30_000,
        dlq_config: None,
        sentinel_config: None,
    };
    let builder = || RedisBackend::builder(config()).use_redis_streams(false);
    let producer = builder().build_producer().await.expect("producer");
    for n in 0..*TASKS {
        producer
            .send_raw(payload(n).as_bytes())
            .await
            .expect("send");
    }
    let done = Arc::new(AtomicUsize::new(0));
    let mut consumers = Vec::new();
    for _ in 0..CONCURRENCY {
        consumers.push(builder().build_consumer().await.expect("consumer"));
    }
    let started = Instant::now();
    let workers: Vec<_> = consumers
        .into_iter()
        .map(|mut consumer| {
            let done = done.clone();
            tokio::spawn(async move {
                while done.load(Ordering::Relaxed) < *TASKS {
                    let Ok(delivery) =
                        tokio::time::timeout(Duration::from_millis(200), consumer.receive()).await
                    else {
                        continue;
                    };
                    let delivery = delivery.expect("receive");
                    delivery.ack().await.map_err(|(e, _)| e).expect("ack");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("join");
    }
    *TASKS as f64 / started.elapsed().as_secs_f64()
}
