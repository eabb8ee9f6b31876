//! Kafka's own guarantee beside the shared suite: consumers of one queue share its partitions,
//! and a key's messages still arrive in publish order.

use std::{collections::HashMap, sync::Arc, time::Duration};

use broker_core::{Broker, Message, Queue};
use broker_kafka::{KafkaBroker, KafkaConfig};
use conformance_tests::{endpoint, skip::or_skip};
use tokio::time::Instant;

const SERVICE: &str = "kafka";

async fn connect() -> Arc<dyn Broker> {
    let url = endpoint::broker_url(SERVICE).expect("checked by the caller");
    let config = KafkaConfig {
        session_timeout: Duration::from_secs(1),
        ..KafkaConfig::from_url(&url).expect("a Kafka URL")
    };
    Arc::new(
        KafkaBroker::connect(config)
            .await
            .expect("the broker answers"),
    )
}

/// Receives and acks until `seen` reaches `total` or `until` passes; returns the payloads in
/// the order they arrived.
async fn consume(
    queue: Queue,
    until: Instant,
    total: usize,
    seen: Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<String> {
    let mut got = Vec::new();
    while Instant::now() < until && seen.load(std::sync::atomic::Ordering::SeqCst) < total {
        let batch = queue
            .receive(20, Duration::from_millis(200))
            .await
            .expect("receive");
        seen.fetch_add(batch.len(), std::sync::atomic::Ordering::SeqCst);
        got.extend(
            batch
                .iter()
                .map(|d| String::from_utf8_lossy(d.payload()).into_owned()),
        );
        queue.ack_all(batch).await.expect("ack");
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_in_one_group_split_the_partitions_and_keep_per_key_order() {
    if or_skip(endpoint::broker_url(SERVICE)).is_none() {
        return;
    }
    let name = format!("groups-{}", uuid::Uuid::new_v4().simple());
    let publisher = Queue::declare(connect().await, name.clone())
        .await
        .expect("declare");
    let (keys, each) = (16, 25);
    let total = keys * each;
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(60);
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let seen = seen.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let queue = Queue::new(connect().await, name);
                consume(queue, until, total, seen).await
            })
        })
        .collect();
    // Both join the group (tansu answers a join after about the session timeout) before
    // there is anything to take.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let messages: Vec<Message> = (0..each)
        .flat_map(|n| {
            (0..keys).map(move |k| Message::new(format!("k{k}-{n}")).ordering_key(format!("k{k}")))
        })
        .collect();
    publisher.publish_batch(messages).await.expect("publish");

    let mut per_consumer = Vec::new();
    for consumer in consumers {
        per_consumer.push(consumer.await.expect("consumer"));
    }
    let mut arrived: HashMap<String, usize> = HashMap::new();
    for (index, payloads) in per_consumer.iter().enumerate() {
        assert!(
            !payloads.is_empty(),
            "consumer {index} got no partition: the group did not split the topic"
        );
        let mut last: HashMap<&str, u32> = HashMap::new();
        for payload in payloads {
            let (key, n) = payload.split_once('-').expect("key-number");
            let n: u32 = n.parse().expect("number");
            if let Some(previous) = last.insert(key, n) {
                assert!(
                    previous < n,
                    "consumer {index} saw {key} out of order: {previous} then {n}"
                );
            }
            *arrived.entry(payload.clone()).or_default() += 1;
        }
    }
    assert_eq!(arrived.len(), total, "every message arrives");
    let _ = publisher.broker().delete_queue(&name).await;
}
