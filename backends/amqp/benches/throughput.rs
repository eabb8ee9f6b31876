//! Throughput of the RabbitMQ backend beside a baseline that drives `lapin` directly with the
//! same calls: persistent mandatory publishes on a confirming channel, every confirm awaited;
//! a consumer with manual acks whose prefetch follows what it holds plus what it asks for;
//! acks with `multiple` where that covers exactly what finished. The groups are the shared
//! harness's (`broker_benches::harness`). Neither side keeps results: RabbitMQ is a broker
//! only. Needs `BROKER_TEST_AMQP_URL`; every queue it declares is deleted at the end.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use broker_amqp::{AmqpBroker, AmqpConfig};
use broker_benches::{
    harness,
    raw::{RawClient, RawMessage, RawTask},
    target::BenchTarget,
};
use broker_core::{Broker, ResultStore};
use futures::{FutureExt as _, StreamExt as _};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, Consumer,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueuePurgeOptions,
    },
    types::{AMQPValue, FieldArray, FieldTable},
};
use serde_json::Value;

struct Amqp {
    url: String,
}

#[async_trait]
impl BenchTarget for Amqp {
    type Raw = RawAmqp;

    fn name(&self) -> &'static str {
        "amqp"
    }

    async fn broker(&self) -> Arc<dyn Broker> {
        let config = AmqpConfig::from_url(&self.url).expect("BROKER_TEST_AMQP_URL parses");
        Arc::new(AmqpBroker::connect(config).await.expect("connect"))
    }

    async fn result_store(&self) -> Option<Arc<dyn ResultStore>> {
        None
    }

    async fn raw(&self) -> RawAmqp {
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("raw connection");
        let publisher = connection.create_channel().await.expect("channel");
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        RawAmqp {
            connection,
            publisher,
            consumers: tokio::sync::Mutex::default(),
        }
    }
}

/// The hand-written client: one connection, a confirming channel for publishing and a
/// channel per consumed queue.
struct RawAmqp {
    connection: Connection,
    publisher: Channel,
    consumers: tokio::sync::Mutex<HashMap<String, Arc<Consuming>>>,
}

/// A consumer of one queue on a channel of its own.
struct Consuming {
    channel: Channel,
    deliveries: tokio::sync::Mutex<Consumer>,
    prefetch: AtomicU16,
    /// Tags delivered and not yet acked.
    held: Mutex<BTreeSet<u64>>,
}

impl RawAmqp {
    async fn consuming(&self, queue: &str) -> Arc<Consuming> {
        let mut consumers = self.consumers.lock().await;
        if let Some(consuming) = consumers.get(queue) {
            return consuming.clone();
        }
        let channel = self.connection.create_channel().await.expect("channel");
        channel
            .basic_qos(1, BasicQosOptions { global: true })
            .await
            .expect("qos");
        let deliveries = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let consuming = Arc::new(Consuming {
            channel,
            deliveries: tokio::sync::Mutex::new(deliveries),
            prefetch: AtomicU16::new(1),
            held: Mutex::default(),
        });
        consumers.insert(queue.to_owned(), consuming.clone());
        consuming
    }
}

/// JSON as AMQP field values, the way Celery's headers travel.
fn field(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => n.as_i64().map_or_else(
            || AMQPValue::Double(n.as_f64().unwrap_or_default()),
            AMQPValue::LongLongInt,
        ),
        Value::String(s) => AMQPValue::LongString(s.as_str().into()),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(field).collect::<Vec<_>>(),
        )),
        Value::Object(object) => AMQPValue::FieldTable(table(object)),
    }
}

fn table(object: &serde_json::Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in object {
        table.insert(name.as_str().into(), field(value));
    }
    table
}

#[async_trait]
impl RawClient for RawAmqp {
    type Received = Delivery;

    async fn publish(&self, queue: &str, messages: Vec<RawMessage>) {
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let mut confirms = Vec::with_capacity(messages.len());
        for message in messages {
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_priority(0)
                .with_message_id(uuid::Uuid::new_v4().simple().to_string().into())
                .with_content_type(message.content_type.into())
                .with_headers(table(&message.header_map()));
            confirms.push(
                self.publisher
                    .basic_publish(
                        "".into(),
                        queue.into(),
                        options,
                        &message.payload,
                        properties,
                    )
                    .await
                    .expect("publish"),
            );
        }
        for confirm in futures::future::join_all(confirms).await {
            assert!(confirm.expect("confirm").is_ack(), "the broker took it");
        }
    }

    async fn receive(&self, queue: &str, max: usize, wait: Duration) -> Vec<Delivery> {
        let consuming = self.consuming(queue).await;
        let wanted = consuming.held.lock().unwrap().len() + max;
        let wanted = u16::try_from(wanted).unwrap_or(u16::MAX);
        if consuming.prefetch.fetch_max(wanted, Ordering::AcqRel) < wanted {
            consuming
                .channel
                .basic_qos(wanted, BasicQosOptions { global: true })
                .await
                .expect("qos");
        }
        let mut deliveries = consuming.deliveries.lock().await;
        let mut got = Vec::with_capacity(max);
        if let Ok(Some(first)) = tokio::time::timeout(wait, deliveries.next()).await {
            got.push(first.expect("a delivery"));
            while got.len() < max {
                match deliveries.next().now_or_never() {
                    Some(Some(next)) => got.push(next.expect("a delivery")),
                    _ => break,
                }
            }
        }
        consuming
            .held
            .lock()
            .unwrap()
            .extend(got.iter().map(|d| d.delivery_tag));
        got
    }

    async fn ack(&self, queue: &str, received: Vec<Delivery>) {
        let consuming = self.consuming(queue).await;
        let tags: BTreeSet<u64> = received.iter().map(|d| d.delivery_tag).collect();
        // One `multiple` ack when the tags are the oldest held ones without a gap; one ack
        // each otherwise.
        let multiple = {
            let mut held = consuming.held.lock().unwrap();
            let oldest: Vec<u64> = held.iter().take(tags.len()).copied().collect();
            let contiguous = oldest.iter().eq(tags.iter());
            held.retain(|tag| !tags.contains(tag));
            contiguous && tags.len() > 1
        };
        if multiple {
            let last = *tags.last().expect("at least two tags");
            consuming
                .channel
                .basic_ack(last, BasicAckOptions { multiple: true })
                .await
                .expect("ack");
        } else {
            for tag in tags {
                consuming
                    .channel
                    .basic_ack(tag, BasicAckOptions::default())
                    .await
                    .expect("ack");
            }
        }
    }

    fn task(&self, delivery: &Delivery) -> RawTask {
        let headers = delivery.properties.headers().as_ref().expect("headers");
        let text = |name: &str| match headers.inner().get(name) {
            Some(AMQPValue::LongString(s)) => s.to_string(),
            other => panic!("{name}: {other:?}"),
        };
        RawTask {
            id: text("id"),
            name: text("task"),
            body: delivery.data.clone(),
        }
    }

    async fn store_result(&self, _task_id: &str, _state: &str) {}

    async fn clear(&self, queue: &str) {
        self.publisher
            .queue_purge(queue.into(), QueuePurgeOptions::default())
            .await
            .expect("purge");
    }
}

fn main() {
    harness::run_with_url("BROKER_TEST_AMQP_URL", |url| async move { Amqp { url } });
}
