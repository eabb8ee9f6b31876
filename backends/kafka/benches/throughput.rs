//! Publishing throughput of the Kafka backend beside a baseline that drives rdkafka directly
//! with the same calls: the same producer settings (idempotent, `acks=all`, `linger.ms=1`),
//! one record per message with the same headers, every delivery awaited, in the same run. The
//! ratio of the two is the framework's overhead.
//!
//! Group `kafka/publish` with `framework` and `raw` at batch sizes 1, 10 and 100; throughput
//! in messages. Group `kafka/consume_ack` (batch sizes 1 and 10) receives a batch and acks it: the framework through
//! `Queue`, the raw side with an rdkafka consumer in the same group settings making the same
//! calls (the handed-out mark committed to the `.handed` group before the batch is used, then
//! the batch's offsets committed), and `raw_commit_only`, a raw consumer that skips the mark
//! (and so cannot tell a redelivery). Needs `BROKER_TEST_KAFKA_URL`; without it the benchmark
//! prints why and does nothing. Its topics are deleted at the end.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use broker_benches::groups;
use broker_core::{Broker, Message, Queue};
use broker_kafka::{KafkaBroker, KafkaConfig};
use criterion::{BenchmarkId, Criterion, Throughput};
use futures::future::join_all;
use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use tokio::runtime::Runtime;

const BATCHES: [usize; 3] = [1, 10, 100];
/// Consuming at 100 a batch would need more records filled beforehand than is worth writing.
const CONSUME_BATCHES: [usize; 2] = [1, 10];

fn message(n: u64) -> Message {
    Message::new(format!("task-{n}"))
        .header("task", "ical.build")
        .header("id", n)
        .content_type("application/json")
}

/// What the raw side sends for message `n`: the same value and the same headers the backend
/// writes (its id header, each application header as JSON text, the content type).
fn raw_send(producer: &FutureProducer, topic: &str, n: u64) -> rdkafka::producer::DeliveryFuture {
    let id = uuid::Uuid::new_v4().to_string();
    let number = n.to_string();
    let headers = OwnedHeaders::new_with_capacity(4)
        .insert(Header {
            key: "id",
            value: Some(number.as_bytes()),
        })
        .insert(Header {
            key: "task",
            value: Some("\"ical.build\"".as_bytes()),
        })
        .insert(Header {
            key: "switchyard-id",
            value: Some(id.as_bytes()),
        })
        .insert(Header {
            key: "switchyard-content-type",
            value: Some("application/json".as_bytes()),
        });
    let payload = format!("task-{n}");
    producer
        .send_result(
            FutureRecord::<str, str>::to(topic)
                .payload(&payload)
                .headers(headers),
        )
        .map_err(|(e, _)| e)
        .expect("enqueue")
}

fn publish(c: &mut Criterion) {
    let Ok(url) = std::env::var("BROKER_TEST_KAFKA_URL") else {
        println!("kafka/publish: BROKER_TEST_KAFKA_URL is not set; nothing measured");
        return;
    };
    let runtime = Runtime::new().expect("runtime");
    let config = KafkaConfig::from_url(&url).expect("a Kafka URL");
    let topic = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let broker: Arc<dyn Broker> = runtime
        .block_on(async { Arc::new(KafkaBroker::connect(config.clone()).await.expect("connect")) });
    let queue = runtime
        .block_on(Queue::declare(broker.clone(), topic.clone()))
        .expect("declare");
    let raw: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", config.bootstrap_servers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("raw producer");
    // Both producers know the topic's leader before the clock starts.
    runtime.block_on(async {
        queue.publish(message(0)).await.expect("warm up");
        raw_send(&raw, &topic, 0)
            .await
            .expect("delivered")
            .expect("warm up");
    });

    let mut group = groups::group(c, "kafka/publish");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("framework", batch), &batch, |b, &batch| {
            b.iter_custom(|rounds| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for round in 0..rounds {
                        let messages = (0..batch as u64)
                            .map(|n| message(round * 1000 + n))
                            .collect();
                        queue.publish_batch(messages).await.expect("publish");
                    }
                    start.elapsed()
                })
            });
        });
        group.bench_with_input(BenchmarkId::new("raw", batch), &batch, |b, &batch| {
            b.iter_custom(|rounds| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for round in 0..rounds {
                        let pending: Vec<_> = (0..batch as u64)
                            .map(|n| raw_send(&raw, &topic, round * 1000 + n))
                            .collect();
                        for delivered in join_all(pending).await {
                            delivered.expect("delivered").expect("published");
                        }
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
    let _ = runtime.block_on(broker.delete_queue(&topic));
}

/// A raw consumer of `topic` in `group`, with the backend's consumer settings.
fn raw_consumer(config: &KafkaConfig, topic: &str, group: &str) -> (StreamConsumer, BaseConsumer) {
    let mut settings = ClientConfig::new();
    settings
        .set("bootstrap.servers", config.bootstrap_servers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100");
    let consumer: StreamConsumer = settings.create().expect("raw consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let marks: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", config.bootstrap_servers())
        .set("group.id", format!("{group}.handed"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("marks client");
    (consumer, marks)
}

/// Offsets one past the highest of each partition in `batch`.
fn next_offsets(topic: &str, batch: &[(i32, i64)]) -> TopicPartitionList {
    let mut highest = std::collections::HashMap::new();
    for &(partition, offset) in batch {
        let entry = highest.entry(partition).or_insert(offset);
        *entry = (*entry).max(offset);
    }
    let mut list = TopicPartitionList::new();
    for (partition, offset) in highest {
        list.add_partition_offset(topic, partition, Offset::Offset(offset + 1))
            .expect("offset");
    }
    list
}

/// Receives `batch` records (waiting as long as it takes), then commits as `marks` says.
async fn raw_round(
    consumer: &StreamConsumer,
    marks: Option<&BaseConsumer>,
    topic: &str,
    batch: usize,
) {
    let mut got = Vec::with_capacity(batch);
    while got.len() < batch {
        let message = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
            .await
            .expect("the topic ran dry: fill it with more")
            .expect("recv");
        got.push((message.partition(), message.offset()));
    }
    let offsets = next_offsets(topic, &got);
    if let Some(marks) = marks {
        marks.commit(&offsets, CommitMode::Sync).expect("mark");
    }
    consumer.commit(&offsets, CommitMode::Sync).expect("commit");
}

fn consume_ack(c: &mut Criterion) {
    let Ok(url) = std::env::var("BROKER_TEST_KAFKA_URL") else {
        println!("kafka/consume_ack: BROKER_TEST_KAFKA_URL is not set; nothing measured");
        return;
    };
    let runtime = Runtime::new().expect("runtime");
    let config = KafkaConfig::from_url(&url).expect("a Kafka URL");
    let broker: Arc<dyn Broker> = runtime
        .block_on(async { Arc::new(KafkaBroker::connect(config.clone()).await.expect("connect")) });
    let mut group = groups::group(c, "kafka/consume_ack");
    let mut topics = Vec::new();
    for batch in CONSUME_BATCHES {
        // Enough for every round criterion may ask for at this batch size.
        let supply = batch * 60_000;
        let fill = |topic: &str| {
            let queue = runtime
                .block_on(Queue::declare(broker.clone(), topic.to_owned()))
                .expect("declare");
            runtime.block_on(async {
                for chunk in (0..supply as u64).collect::<Vec<_>>().chunks(500) {
                    let messages = chunk.iter().map(|&n| message(n)).collect();
                    queue.publish_batch(messages).await.expect("fill");
                }
            });
            queue
        };
        group.throughput(Throughput::Elements(batch as u64));

        let topic = format!("bench-c-{}", uuid::Uuid::new_v4().simple());
        let queue = fill(&topic);
        topics.push(topic);
        // The first receive joins the group; the clock starts after it.
        runtime.block_on(async {
            let first = queue
                .receive(1, Duration::from_secs(30))
                .await
                .expect("join");
            queue.ack_all(first).await.expect("ack");
        });
        group.bench_with_input(BenchmarkId::new("framework", batch), &batch, |b, &batch| {
            b.iter_custom(|rounds| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..rounds {
                        let mut got = Vec::with_capacity(batch);
                        while got.len() < batch {
                            let more = queue
                                .receive(batch - got.len(), Duration::from_secs(5))
                                .await
                                .expect("receive");
                            assert!(!more.is_empty(), "the topic ran dry: fill it with more");
                            got.extend(more);
                        }
                        queue.ack_all(got).await.expect("ack");
                    }
                    start.elapsed()
                })
            });
        });

        for (name, with_marks) in [("raw", true), ("raw_commit_only", false)] {
            let topic = format!("bench-c-{}", uuid::Uuid::new_v4().simple());
            fill(&topic);
            topics.push(topic.clone());
            let group_id = format!("{topic}-consumer-group");
            let (consumer, marks) = {
                let _inside = runtime.enter();
                raw_consumer(&config, &topic, &group_id)
            };
            runtime.block_on(raw_round(&consumer, None, &topic, 1));
            group.bench_with_input(BenchmarkId::new(name, batch), &batch, |b, &batch| {
                b.iter_custom(|rounds| {
                    runtime.block_on(async {
                        let start = Instant::now();
                        for _ in 0..rounds {
                            raw_round(&consumer, with_marks.then_some(&marks), &topic, batch).await;
                        }
                        start.elapsed()
                    })
                });
            });
        }
    }
    group.finish();
    for topic in topics {
        let _ = runtime.block_on(broker.delete_queue(&topic));
    }
}

criterion::criterion_group!(benches, publish, consume_ack);
criterion::criterion_main!(benches);
