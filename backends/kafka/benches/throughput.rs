//! Publishing throughput of the Kafka backend beside a baseline that drives rdkafka directly
//! with the same calls: the same producer settings (idempotent, `acks=all`, `linger.ms=1`),
//! one record per message with the same headers, every delivery awaited, in the same run. The
//! ratio of the two is the framework's overhead.
//!
//! Group `kafka/publish` with `framework` and `raw` at batch sizes 1, 10 and 100; throughput
//! in messages. Needs `BROKER_TEST_KAFKA_URL`; without it the benchmark prints why and does
//! nothing. Its topic is deleted at the end.

use std::{sync::Arc, time::Instant};

use broker_benches::groups;
use broker_core::{Broker, Message, Queue};
use broker_kafka::{KafkaBroker, KafkaConfig};
use criterion::{BenchmarkId, Criterion, Throughput};
use futures::future::join_all;
use rdkafka::{
    ClientConfig,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use tokio::runtime::Runtime;

const BATCHES: [usize; 3] = [1, 10, 100];

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

criterion::criterion_group!(benches, publish);
criterion::criterion_main!(benches);
