//! Throughput of the Kafka backend beside a baseline that drives rdkafka directly with the
//! same calls: the backend's producer settings (idempotent, `acks=all`, `linger.ms=1`), one
//! record per message with the same headers, every delivery awaited; a consumer in a group
//! of its own with the backend's consumer settings, which commits the handed-out mark to the
//! `.handed` group before handing records out (as the backend does, so that a redelivery can
//! be told) and commits each partition's offset below every unacked record. The groups are
//! the shared harness's (`broker_benches::harness`). Neither side keeps results: Kafka is a
//! broker only. Needs `BROKER_TEST_KAFKA_URL`; its topics are deleted at the end.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use broker_benches::{
    harness,
    raw::{RawClient, RawMessage, RawTask},
    target::BenchTarget,
};
use broker_core::{Broker, ResultStore};
use broker_kafka::{KafkaBroker, KafkaConfig};
use futures::FutureExt as _;
use rdkafka::{
    Message as _, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer},
    message::{Header, Headers as _, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};

struct Kafka {
    config: KafkaConfig,
}

#[async_trait]
impl BenchTarget for Kafka {
    type Raw = RawKafka;

    fn name(&self) -> &'static str {
        "kafka"
    }

    async fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(
            KafkaBroker::connect(self.config.clone())
                .await
                .expect("connect"),
        )
    }

    async fn result_store(&self) -> Option<Arc<dyn ResultStore>> {
        None
    }

    async fn raw(&self) -> RawKafka {
        RawKafka {
            config: self.config.clone(),
            producer: self.config.producer().create().expect("raw producer"),
            consumers: tokio::sync::Mutex::default(),
        }
    }
}

/// The hand-written client: one producer, and a consumer per topic read.
struct RawKafka {
    config: KafkaConfig,
    producer: FutureProducer,
    consumers: tokio::sync::Mutex<HashMap<String, Arc<Consuming>>>,
}

/// A consumer of one topic, and where each of its partitions stands.
struct Consuming {
    consumer: Arc<StreamConsumer>,
    marks: Arc<BaseConsumer>,
    /// One receive at a time, so each partition is handed out in order.
    receiving: tokio::sync::Mutex<()>,
    partitions: Mutex<HashMap<i32, Standing>>,
}

/// One partition: offsets handed out and not acked, one past the highest handed out, and
/// the offset committed last.
#[derive(Default)]
struct Standing {
    unacked: BTreeSet<i64>,
    next: i64,
    committed: i64,
}

/// A record handed out.
struct Taken {
    partition: i32,
    offset: i64,
    task: RawTask,
}

impl RawKafka {
    async fn consuming(&self, topic: &str) -> Arc<Consuming> {
        let mut consumers = self.consumers.lock().await;
        if let Some(consuming) = consumers.get(topic) {
            return consuming.clone();
        }
        // The backend's settings, in a group of its own, so that both sides read every
        // record of their own topics.
        let group = format!("{topic}-raw");
        let consumer: StreamConsumer = self
            .config
            .consumer(topic)
            .set("group.id", &group)
            .create()
            .expect("raw consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let marks: BaseConsumer = self
            .config
            .marks(topic)
            .set("group.id", format!("{group}.handed"))
            .create()
            .expect("marks client");
        let consuming = Arc::new(Consuming {
            consumer: Arc::new(consumer),
            marks: Arc::new(marks),
            receiving: tokio::sync::Mutex::new(()),
            partitions: Mutex::default(),
        });
        consumers.insert(topic.to_owned(), consuming.clone());
        consuming
    }
}

/// What a worker reads from a record: the `id` and `task` headers, each the JSON text of a
/// string, and the value.
fn task_of(message: &impl rdkafka::Message) -> RawTask {
    let mut task = RawTask {
        id: String::new(),
        name: String::new(),
        body: message.payload().unwrap_or_default().to_vec(),
    };
    for header in message.headers().expect("headers").iter() {
        let text = || {
            serde_json::from_slice::<String>(header.value.unwrap_or_default()).expect("JSON text")
        };
        match header.key {
            "id" => task.id = text(),
            "task" => task.name = text(),
            _ => {}
        }
    }
    task
}

/// Commits `offsets` (partition, next offset) of `topic` with `client`, off the async
/// threads: rdkafka's commit blocks.
async fn commit<C: Consumer + Send + Sync + 'static>(
    client: Arc<C>,
    topic: &str,
    offsets: Vec<(i32, i64)>,
) {
    if offsets.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::with_capacity(offsets.len());
    for (partition, offset) in offsets {
        list.add_partition_offset(topic, partition, Offset::Offset(offset))
            .expect("an offset");
    }
    tokio::task::spawn_blocking(move || client.commit(&list, CommitMode::Sync))
        .await
        .expect("the commit ran")
        .expect("committed");
}

#[async_trait]
impl RawClient for RawKafka {
    type Received = Taken;

    async fn publish(&self, topic: &str, messages: Vec<RawMessage>) {
        let mut pending = Vec::with_capacity(messages.len());
        for message in &messages {
            let mut headers = OwnedHeaders::new_with_capacity(8);
            for (name, value) in message.header_map() {
                let text = value.to_string();
                headers = headers.insert(Header {
                    key: &name,
                    value: Some(text.as_bytes()),
                });
            }
            let id = uuid::Uuid::new_v4().to_string();
            headers = headers
                .insert(Header {
                    key: "switchyard-id",
                    value: Some(id.as_bytes()),
                })
                .insert(Header {
                    key: "switchyard-content-type",
                    value: Some(message.content_type.as_bytes()),
                });
            let record = FutureRecord::<str, [u8]>::to(topic)
                .payload(&message.payload)
                .headers(headers);
            pending.push(
                self.producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("enqueued"),
            );
        }
        for delivered in futures::future::join_all(pending).await {
            delivered.expect("delivered").expect("written");
        }
    }

    async fn receive(&self, topic: &str, max: usize, wait: Duration) -> Vec<Taken> {
        let consuming = self.consuming(topic).await;
        let _one_at_a_time = consuming.receiving.lock().await;
        let mut taken = Vec::with_capacity(max);
        let take = |message: &rdkafka::message::BorrowedMessage<'_>| Taken {
            partition: message.partition(),
            offset: message.offset(),
            task: task_of(message),
        };
        if let Ok(first) = tokio::time::timeout(wait, consuming.consumer.recv()).await {
            taken.push(take(&first.expect("a record")));
            while taken.len() < max {
                match consuming.consumer.recv().now_or_never() {
                    Some(next) => taken.push(take(&next.expect("a record"))),
                    None => break,
                }
            }
        }
        let marks: Vec<(i32, i64)> = {
            let mut partitions = consuming.partitions.lock().unwrap();
            for record in &taken {
                let standing = partitions.entry(record.partition).or_default();
                standing.unacked.insert(record.offset);
                standing.next = standing.next.max(record.offset + 1);
            }
            let touched: BTreeSet<i32> = taken.iter().map(|t| t.partition).collect();
            touched
                .into_iter()
                .map(|p| (p, partitions[&p].next))
                .collect()
        };
        commit(consuming.marks.clone(), topic, marks).await;
        taken
    }

    async fn ack(&self, topic: &str, received: Vec<Taken>) {
        let consuming = self.consuming(topic).await;
        let commits: Vec<(i32, i64)> = {
            let mut partitions = consuming.partitions.lock().unwrap();
            for record in &received {
                if let Some(standing) = partitions.get_mut(&record.partition) {
                    standing.unacked.remove(&record.offset);
                }
            }
            let touched: BTreeSet<i32> = received.iter().map(|t| t.partition).collect();
            touched
                .into_iter()
                .filter_map(|partition| {
                    let standing = partitions.get_mut(&partition)?;
                    let below = standing.unacked.first().copied().unwrap_or(standing.next);
                    (below > standing.committed).then(|| {
                        standing.committed = below;
                        (partition, below)
                    })
                })
                .collect()
        };
        commit(consuming.consumer.clone(), topic, commits).await;
    }

    fn task(&self, taken: &Taken) -> RawTask {
        taken.task.clone()
    }

    async fn store_result(&self, _task_id: &str, _state: &str) {}

    /// Nothing: a topic keeps its records, and no consumer reads a publish benchmark's
    /// topic.
    async fn clear(&self, _topic: &str) {}
}

fn main() {
    harness::run_with_url("BROKER_TEST_KAFKA_URL", |url| async move {
        Kafka {
            config: KafkaConfig::from_url(&url).expect("BROKER_TEST_KAFKA_URL parses"),
        }
    });
}
