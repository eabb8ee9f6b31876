//! On the wire, our messages are Celery's: the golden messages real Celery 5.7 wrote (the
//! fixtures of `broker-core`), published raw as py-amqp encodes them, decode through this
//! backend to what Celery meant; and a task we send carries the AMQP properties and protocol
//! v2 headers Celery sets.

use std::{path::PathBuf, sync::Arc, time::Duration};

use broker_amqp::{AmqpBroker, AmqpConfig};
use broker_core::{
    Broker, Headers, Queue,
    celery::{TaskMessage, TaskProperties},
    tasks::{send_task, task_from_delivery},
};
use conformance_tests::{endpoint, skip};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions},
    types::{AMQPValue, FieldArray, FieldTable},
};
use serde_json::{Map, Value, json};

fn fixtures() -> Vec<(String, Value)> {
    let folder =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../broker-core/tests/fixtures/celery");
    let mut fixtures: Vec<(String, Value)> = std::fs::read_dir(&folder)
        .expect("the golden fixtures")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read a fixture");
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (
                name,
                serde_json::from_str(&text).expect("a fixture is JSON"),
            )
        })
        .collect();
    fixtures.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(fixtures.len() >= 5, "the fixtures are missing");
    fixtures
}

/// A JSON value as py-amqp writes it: `I` for integers that fit 32 bits, `l` beyond, `d` for
/// floats, `S` for text, `V` for None, `t` for booleans, `A` for lists, `F` for dicts.
fn py_amqp(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i32::try_from(i).map_or(AMQPValue::LongLongInt(i), AMQPValue::LongInt),
            None => AMQPValue::Double(n.as_f64().unwrap()),
        },
        Value::String(s) => AMQPValue::LongString(s.as_str().into()),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(py_amqp).collect::<Vec<_>>(),
        )),
        Value::Object(map) => AMQPValue::FieldTable(py_table(map)),
    }
}

fn py_table(map: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in map {
        table.insert(name.as_str().into(), py_amqp(value));
    }
    table
}

struct Rabbit {
    broker: Arc<dyn Broker>,
    raw: lapin::Channel,
}

impl Rabbit {
    async fn open() -> Option<Self> {
        let url = skip::or_skip(endpoint::broker_url("amqp"))?;
        let config = AmqpConfig::from_url(&url).expect("the test URL parses");
        let broker: Arc<dyn Broker> = Arc::new(AmqpBroker::connect(config).await.expect("connect"));
        let connection = Connection::connect(&url, ConnectionProperties::default())
            .await
            .expect("raw connection");
        let raw = connection.create_channel().await.expect("raw channel");
        Some(Self { broker, raw })
    }

    async fn queue(&self) -> Queue {
        let name = format!("wire-{}", uuid::Uuid::new_v4().simple());
        Queue::declare(self.broker.clone(), name)
            .await
            .expect("declare")
    }
}

#[tokio::test]
async fn celerys_golden_messages_published_raw_decode_as_celery_meant_them() {
    let Some(rabbit) = Rabbit::open().await else {
        return;
    };
    let queue = rabbit.queue().await;
    for (name, fixture) in fixtures() {
        let headers = fixture["headers"].as_object().expect("headers").clone();
        let props = &fixture["properties"];
        let text = |key: &str| props[key].as_str().map(Into::into);
        let mut properties = BasicProperties::default()
            .with_headers(py_table(&headers))
            .with_delivery_mode(2)
            .with_priority(0);
        if let Some(v) = text("content_type") {
            properties = properties.with_content_type(v);
        }
        if let Some(v) = text("content_encoding") {
            properties = properties.with_content_encoding(v);
        }
        if let Some(v) = text("correlation_id") {
            properties = properties.with_correlation_id(v);
        }
        if let Some(v) = text("reply_to") {
            properties = properties.with_reply_to(v);
        }
        let body = fixture["body"].as_str().expect("body");
        // As Celery publishes: to the exchange named like the queue, routed by its name.
        rabbit
            .raw
            .basic_publish(
                queue.name().into(),
                queue.name().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("sent");

        let delivery = queue
            .receive_one(Duration::from_secs(10))
            .await
            .expect("receive")
            .unwrap_or_else(|| panic!("{name}: Celery's message arrives"));
        let ours = task_from_delivery(&delivery).unwrap_or_else(|e| panic!("{name}: {e}"));
        let meant = TaskMessage::decode_parts(
            &Headers::from(headers.clone()),
            &serde_json::from_value::<TaskProperties>(props.clone()).expect("properties"),
            body.as_bytes(),
        )
        .expect("the fixture decodes");
        assert_eq!(ours.headers, meant.headers, "{name}: headers");
        assert_eq!(ours.args, meant.args, "{name}: args");
        assert_eq!(ours.kwargs, meant.kwargs, "{name}: kwargs");
        assert_eq!(ours.embed, meant.embed, "{name}: embed");
        assert_eq!(
            ours.properties.correlation_id, meant.properties.correlation_id,
            "{name}: correlation_id"
        );
        assert_eq!(
            ours.properties.reply_to, meant.properties.reply_to,
            "{name}: reply_to"
        );
        assert_eq!(
            delivery.id(),
            headers["id"].as_str().unwrap(),
            "{name}: the id is the task's"
        );
        delivery.ack().await.expect("ack");
    }
    rabbit
        .broker
        .delete_queue(queue.name())
        .await
        .expect("delete");
}

#[tokio::test]
async fn a_task_we_send_carries_the_properties_and_headers_celery_sets() {
    let Some(rabbit) = Rabbit::open().await else {
        return;
    };
    let queue = rabbit.queue().await;
    let task = TaskMessage::new("tasks.add", vec![json!(2), json!(3)], Map::new());
    let id = send_task(&queue, &task).await.expect("send");

    let got = rabbit
        .raw
        .basic_get(queue.name().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("the task is on the queue");
    let properties = &got.delivery.properties;
    let short = |v: &Option<lapin::types::ShortString>| v.as_ref().map(ToString::to_string);
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    assert_eq!(*properties.priority(), Some(0));
    assert_eq!(
        short(properties.content_type()).as_deref(),
        Some("application/json")
    );
    assert_eq!(
        short(properties.content_encoding()).as_deref(),
        Some("utf-8")
    );
    assert_eq!(short(properties.correlation_id()), Some(id.clone()));
    let headers = properties.headers().clone().expect("headers");
    let (_, plain) = fixtures()
        .into_iter()
        .find(|(name, _)| name == "plain")
        .expect("the plain fixture");
    for name in plain["headers"].as_object().expect("headers").keys() {
        if name == "origin" {
            continue; // Celery's host name; optional in protocol v2
        }
        assert!(headers.contains_key(name), "header `{name}` is missing");
    }
    let text = |name: &str| match headers.inner().get(name) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(text("task"), "tasks.add");
    assert_eq!(text("id"), id);
    let body: Value = serde_json::from_slice(&got.delivery.data).expect("JSON body");
    assert_eq!(body[0], json!([2, 3]));
    rabbit
        .broker
        .delete_queue(queue.name())
        .await
        .expect("delete");
}
