//! A dropped connection or a restarted server costs nothing: the connection is reopened with
//! backoff, calls in flight fail with retryable errors that [`Queue`] retries, and every message
//! arrives (a repeat is possible, a loss is not). A server restarted without its data gets its
//! queues declared again by the clients that declared them. Runs against private
//! `redis-server`s only.

mod support;

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use broker_core::{Message, Queue};
use broker_redis::{RedisBroker, RedisConfig};
use support::PrivateServer;
use tokio::time::Instant;

async fn pair(server: &PrivateServer, name: &str) -> (Queue, Queue) {
    let config = RedisConfig {
        visibility_timeout: Duration::from_secs(2),
        ..RedisConfig::new(server.url())
    };
    let publisher = RedisBroker::connect(config.clone()).await.expect("connect");
    let consumer = RedisBroker::connect(config).await.expect("connect");
    let publisher = Queue::declare(Arc::new(publisher), name)
        .await
        .expect("declare");
    (publisher, Queue::new(Arc::new(consumer), name))
}

/// Receives and acks until every number below `total` was seen or `within` passed.
fn consume(
    queue: Queue,
    total: usize,
    within: Duration,
) -> tokio::task::JoinHandle<BTreeSet<usize>> {
    tokio::spawn(async move {
        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + within;
        while seen.len() < total && Instant::now() < deadline {
            let Ok(got) = queue.receive(10, Duration::from_millis(200)).await else {
                continue; // retries ran out mid-outage: try again
            };
            for delivery in &got {
                let n = String::from_utf8_lossy(delivery.payload()).parse().unwrap();
                seen.insert(n);
            }
            // A failed ack only means the message comes back after its lease.
            let _ = queue.ack_all(got).await;
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_client_connections_are_reopened_and_nothing_is_lost() {
    let server = PrivateServer::start(false).expect("a private redis-server starts");
    let (publisher, consumer) = pair(&server, "work").await;
    let total = 400;
    let received = consume(consumer, total, Duration::from_secs(60));

    let sender = tokio::spawn(async move {
        for n in 0..total {
            publisher
                .publish(Message::new(n.to_string()))
                .await
                .expect("publish survives dropped connections");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let reply = server.kill_clients().expect("CLIENT KILL");
        let killed: u32 = reply
            .trim()
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("CLIENT KILL answered {reply}"));
        assert!(killed >= 2, "only {killed} connections were killed");
    }
    sender.await.expect("publisher");
    let seen = received.await.expect("consumer");
    let missing: Vec<usize> = (0..total).filter(|n| !seen.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "lost {} messages: {missing:?}",
        missing.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_server_is_reconnected_and_nothing_is_lost() {
    let server = Arc::new(PrivateServer::start(true).expect("a private redis-server starts"));
    let (publisher, consumer) = pair(&server, "work").await;
    let total = 100;
    for n in 0..total / 2 {
        publisher
            .publish(Message::new(n.to_string()))
            .await
            .unwrap();
    }
    let restarting = server.clone();
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .unwrap()
        .expect("restart");
    for n in total / 2..total {
        publisher
            .publish(Message::new(n.to_string()))
            .await
            .expect("publish after the restart");
    }
    let seen = consume(consumer, total, Duration::from_secs(30))
        .await
        .expect("consumer");
    assert_eq!(
        seen.len(),
        total,
        "missing: {:?}",
        (0..total).filter(|n| !seen.contains(n)).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_empty_gets_its_declared_queues_back() {
    let server = Arc::new(PrivateServer::start(false).expect("a private redis-server starts"));
    let config = RedisConfig::new(server.url());
    let producer = Arc::new(RedisBroker::connect(config.clone()).await.expect("connect"));
    let worker = Arc::new(RedisBroker::connect(config).await.expect("connect"));
    let producer = Queue::declare(producer, "ical").await.expect("declare");
    let worker = Queue::declare(worker, "ical").await.expect("declare");

    let restarting = server.clone();
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .unwrap()
        .expect("restart without data");

    // The worker asks first: its receive declares the queue again rather than failing.
    let waiting = tokio::spawn(async move {
        let got = worker.receive(1, Duration::from_secs(10)).await;
        (worker, got)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    producer
        .publish(Message::new("after the restart"))
        .await
        .expect("publishing to a queue whose declaration vanished declares it again");
    let (worker, got) = waiting.await.expect("the worker's task");
    let got = got.expect("receiving from a queue whose declaration vanished works");
    assert_eq!(
        got.len(),
        1,
        "the message published after the restart arrives"
    );
    assert_eq!(got[0].payload().as_ref(), b"after the restart");
    worker.ack_all(got).await.expect("ack");
}

#[tokio::test]
async fn a_queue_never_declared_is_still_not_found() {
    let server = PrivateServer::start(false).expect("a private redis-server starts");
    let broker = Arc::new(
        RedisBroker::connect(RedisConfig::new(server.url()))
            .await
            .expect("connect"),
    );
    let err = Queue::new(broker, "nobody-declared-me")
        .publish(Message::new("x"))
        .await
        .expect_err("an undeclared queue");
    assert_eq!(err.kind(), broker_core::ErrorKind::QueueNotFound, "{err}");
}
