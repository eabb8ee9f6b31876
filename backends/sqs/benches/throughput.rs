//! Throughput of the SQS backend beside a baseline that makes the same `aws-sdk-sqs` calls
//! directly (`SendMessageBatch`; `ReceiveMessage` then `DeleteMessageBatch`), in the same run,
//! so that the ratio of the two is the framework's overhead.
//!
//! Groups `sqs/publish` and `sqs/consume_ack`, each with `framework` and `raw` at batch sizes 1
//! and 10, the two sides of one batch size measured one after the other; throughput in
//! messages. The raw side sends bodies already in kombu's format, so both move the same bytes.
//! Needs `BROKER_TEST_SQS_URL`; without it the benchmark prints why and does nothing. Its queue
//! is deleted at the end.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use aws_config::{BehaviorVersion, Region, retry::RetryConfig};
use aws_sdk_sqs::{
    Client,
    config::Credentials,
    types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry},
};
use broker_core::{Broker, Message, Queue};
use broker_sqs::{SqsBroker, SqsConfig};
use criterion::{BenchmarkId, Criterion, Throughput};
use tokio::runtime::Runtime;

const BATCHES: [usize; 2] = [1, 10];

struct Bench {
    runtime: Runtime,
    queue: Queue,
    raw: Client,
    url: String,
    body: String,
}

impl Bench {
    fn open(url: &str) -> Self {
        let runtime = Runtime::new().expect("a tokio runtime");
        let config = SqsConfig::from_url(url).expect("BROKER_TEST_SQS_URL parses");
        let name = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let (queue, raw, url) = runtime.block_on(async {
            let broker: Arc<dyn Broker> =
                Arc::new(SqsBroker::connect(config.clone()).await.expect("connects"));
            let queue = Queue::declare(broker, name.clone()).await.expect("declare");
            let raw = raw_client(&config).await;
            let url = raw
                .get_queue_url()
                .queue_name(&name)
                .send()
                .await
                .expect("queue url")
                .queue_url
                .expect("a url");
            (queue, raw, url)
        });
        Self {
            runtime,
            queue,
            raw,
            url,
            body: sealed_body(),
        }
    }

    async fn raw_send(&self, batch: usize) {
        let entries = (0..batch)
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&self.body)
                    .build()
                    .expect("entry")
            })
            .collect();
        let sent = self
            .raw
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("send");
        assert!(sent.failed().is_empty());
    }

    async fn raw_consume(&self, batch: usize, wait_seconds: i32) -> usize {
        let got = self
            .raw
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(batch).expect("small"))
            .wait_time_seconds(wait_seconds)
            .send()
            .await
            .expect("receive");
        let entries: Vec<_> = got
            .messages()
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().expect("handle"))
                    .build()
                    .expect("entry")
            })
            .collect();
        let count = entries.len();
        if count > 0 {
            self.raw
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("delete");
        }
        count
    }

    /// Consumes what publishing left, untimed: the emulator's costs grow with a queue's
    /// length, so each measurement starts from an empty queue.
    async fn drain(&self) {
        while self.raw_consume(10, 0).await > 0 {}
    }

    /// Fills the queue with `count` messages, untimed.
    async fn fill(&self, count: usize) {
        let mut left = count;
        while left > 0 {
            let batch = left.min(10);
            self.raw_send(batch).await;
            left -= batch;
        }
    }
}

/// A client with the settings the broker uses (endpoint, credentials, region, no retries).
async fn raw_client(config: &SqsConfig) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(
            config.region.clone().unwrap_or_else(|| "us-east-1".into()),
        ))
        .retry_config(RetryConfig::disabled());
    if let Some((key, secret)) = &config.credentials {
        loader = loader.credentials_provider(Credentials::new(
            key,
            secret.expose(),
            None,
            None,
            "bench",
        ));
    }
    if let Some(endpoint) = &config.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    Client::new(&loader.load().await)
}

/// A 200-byte payload as the framework sends it: kombu's envelope.
fn sealed_body() -> String {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    let envelope = serde_json::json!({
        "body": STANDARD.encode([b'x'; 200]),
        "content-encoding": "utf-8",
        "content-type": "application/octet-stream",
        "headers": {},
        "properties": {
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": "bench"},
            "delivery_mode": 2,
            "priority": 0,
        },
    });
    STANDARD.encode(envelope.to_string())
}

fn message() -> Message {
    Message::new(vec![b'x'; 200]).content_type("application/octet-stream")
}

fn publish(c: &mut Criterion, bench: &Bench) {
    let mut group = c.benchmark_group("sqs/publish");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("framework", batch), |b| {
            b.iter_custom(|iters| {
                bench.runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let messages = (0..batch).map(|_| message()).collect();
                        bench.queue.publish_batch(messages).await.expect("publish");
                    }
                    let elapsed = started.elapsed();
                    bench.drain().await;
                    elapsed
                })
            });
        });
        group.bench_function(BenchmarkId::new("raw", batch), |b| {
            b.iter_custom(|iters| {
                bench.runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        bench.raw_send(batch).await;
                    }
                    let elapsed = started.elapsed();
                    bench.drain().await;
                    elapsed
                })
            });
        });
    }
    group.finish();
}

fn consume_ack(c: &mut Criterion, bench: &Bench) {
    let mut group = c.benchmark_group("sqs/consume_ack");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("framework", batch), |b| {
            b.iter_custom(|iters| {
                bench.runtime.block_on(async {
                    let count = usize::try_from(iters).expect("fits") * batch;
                    bench.fill(count).await;
                    let started = Instant::now();
                    let mut done = 0;
                    while done < count {
                        let got = bench
                            .queue
                            .receive(batch, Duration::from_secs(1))
                            .await
                            .expect("receive");
                        done += got.len();
                        bench.queue.ack_all(got).await.expect("ack");
                    }
                    started.elapsed()
                })
            });
        });
        group.bench_function(BenchmarkId::new("raw", batch), |b| {
            b.iter_custom(|iters| {
                bench.runtime.block_on(async {
                    let count = usize::try_from(iters).expect("fits") * batch;
                    bench.fill(count).await;
                    let started = Instant::now();
                    let mut done = 0;
                    while done < count {
                        done += bench.raw_consume(batch, 1).await;
                    }
                    started.elapsed()
                })
            });
        });
    }
    group.finish();
}

fn main() {
    let Ok(url) = std::env::var("BROKER_TEST_SQS_URL") else {
        println!("BROKER_TEST_SQS_URL is not set; run `eval \"$(scripts/services.sh)\"` first");
        return;
    };
    let bench = Bench::open(&url);
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    publish(&mut c, &bench);
    consume_ack(&mut c, &bench);
    bench.runtime.block_on(async {
        let _ = bench.queue.broker().delete_queue(bench.queue.name()).await;
    });
    c.final_summary();
}
