//! A publish RabbitMQ refuses (a `basic.nack` instead of a confirm) is an error, never a silent
//! loss, and what it confirmed before stays queued. The trigger is RabbitMQ's own: a queue with
//! `x-max-length` and `x-overflow = reject-publish` nacks every publish once it is full.
//!
//! The backend declares its queues without arguments (kombu's default), and RabbitMQ refuses a
//! declaration whose arguments differ from the existing queue's (`PRECONDITION_FAILED`), so the
//! test declares the limited queue itself with `lapin` and hands it to [`Queue::new`]: the
//! backend publishes to it by its name as it does to any queue.

use std::{sync::Arc, time::Duration};

use broker_amqp::{AmqpBroker, AmqpConfig};
use broker_core::{Broker, ErrorKind, Message, Queue, RetryPolicy};
use conformance_tests::{endpoint, skip};
use lapin::{
    Channel, Connection, ConnectionProperties,
    options::{QueueDeclareOptions, QueueDeleteOptions},
    types::{AMQPValue, FieldTable},
};
use tokio::time::Instant;

/// Messages the limited queue holds before it refuses more.
const LIMIT: i64 = 3;

/// Declares `name` with room for [`LIMIT`] ready messages, refusing publishes beyond them.
async fn declare_limited(raw: &Channel, name: &str) {
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(LIMIT));
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    raw.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        arguments,
    )
    .await
    .expect("declare the limited queue");
}

/// Receives and acks until `queue` has nothing more within half a second; the payloads in
/// the order they came.
async fn drain(queue: &Queue) -> Vec<String> {
    let mut payloads = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let got = queue
            .receive(10, Duration::from_millis(500))
            .await
            .expect("receive");
        if got.is_empty() {
            break;
        }
        payloads.extend(
            got.iter()
                .map(|d| String::from_utf8_lossy(d.payload()).into_owned()),
        );
        queue.ack_all(got).await.expect("ack");
    }
    payloads
}

fn numbered(range: std::ops::Range<usize>) -> Vec<Message> {
    range.map(|n| Message::new(n.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_rabbitmq_nacks_is_an_error_and_what_it_confirmed_stays() {
    let Some(url) = skip::or_skip(endpoint::broker_url("amqp")) else {
        return;
    };
    let raw = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("raw connection")
        .create_channel()
        .await
        .expect("raw channel");
    let name = format!("nacked-{}", uuid::Uuid::new_v4().simple());
    declare_limited(&raw, &name).await;
    let config = AmqpConfig::from_url(&url).expect("the test URL parses");
    let broker: Arc<dyn Broker> = Arc::new(AmqpBroker::connect(config).await.expect("connect"));
    // No retry, so that the error seen is the first attempt's: a retry re-sends the whole
    // batch, which the still full queue refuses whole.
    let queue = Queue::new(broker.clone(), name.as_str()).with_retry(RetryPolicy::never());

    let err = queue
        .publish_batch(numbered(0..5))
        .await
        .expect_err("two of five messages do not fit and are nacked");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable(), "a full queue may drain: {err}");
    let shown = err.to_string();
    assert!(
        shown.starts_with("amqp: publish failed")
            && shown.contains(&format!("refused to store 2 of 5 messages for `{name}`")),
        "{shown}"
    );
    let err = queue
        .publish(Message::new("5"))
        .await
        .expect_err("a full queue nacks a single publish too");
    assert!(err.to_string().contains("refused to store 1 of 1"), "{err}");

    assert_eq!(
        drain(&queue).await,
        ["0", "1", "2"],
        "exactly the confirmed messages are queued"
    );
    queue
        .publish(Message::new("after"))
        .await
        .expect("a drained queue takes publishes again");
    assert_eq!(drain(&queue).await, ["after"]);

    broker.close().await.expect("close");
    raw.queue_delete(name.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete the limited queue");
}
