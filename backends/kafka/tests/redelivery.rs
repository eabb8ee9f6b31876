//! What the receive count does on Kafka, where it travels in the `switchyard-receives` header:
//! a message read after `max_receives` earlier receives goes to the dead-letter topic instead.

use std::{sync::Arc, time::Duration};

use broker_core::{Broker, DEAD_LETTER_REASON_HEADER, Queue};
use broker_kafka::{KafkaBroker, KafkaConfig};
use conformance_tests::{endpoint, skip::or_skip};
use rdkafka::{
    ClientConfig,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};

const SERVICE: &str = "kafka";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_read_after_max_receives_goes_to_the_dead_letter_topic() {
    let Some(url) = or_skip(endpoint::broker_url(SERVICE)) else {
        return;
    };
    let config = KafkaConfig {
        max_receives: 3,
        session_timeout: Duration::from_secs(1),
        ..KafkaConfig::from_url(&url).expect("a Kafka URL")
    };
    let broker: Arc<dyn Broker> = Arc::new(
        KafkaBroker::connect(config.clone())
            .await
            .expect("the broker answers"),
    );
    let name = format!("redelivery-{}", uuid::Uuid::new_v4().simple());
    let queue = Queue::declare(broker.clone(), name.clone())
        .await
        .expect("declare");
    // A copy that was already handed out three times, as a republish writes it.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", config.bootstrap_servers())
        .create()
        .expect("producer");
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "switchyard-id",
            value: Some("worn-out".as_bytes()),
        })
        .insert(Header {
            key: "switchyard-receives",
            value: Some("3".as_bytes()),
        });
    producer
        .send(
            FutureRecord::<str, str>::to(&name)
                .payload("poison")
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .expect("written");

    let handed = queue
        .receive(1, Duration::from_secs(5))
        .await
        .expect("receive");
    assert!(
        handed.is_empty(),
        "a fourth receive of max 3 was handed out"
    );
    let dlq = Queue::new(
        broker.clone(),
        broker
            .dead_letter_queue(&name)
            .expect("a dead-letter queue"),
    );
    let dead = dlq
        .receive_one(Duration::from_secs(10))
        .await
        .expect("receive")
        .expect("in the dead-letter topic");
    assert_eq!(dead.id(), "worn-out");
    assert_eq!(dead.payload().as_ref(), b"poison");
    let reason = dead
        .header_str(DEAD_LETTER_REASON_HEADER)
        .expect("the reason");
    assert!(reason.contains("received 4 times"), "{reason}");
    dead.ack().await.expect("ack");
    let _ = broker.delete_queue(&name).await;
}

/// rdkafka would panic on a header name holding a NUL byte; the publish refuses it first, and
/// nothing of the batch is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_name_holding_a_nul_byte_is_refused_before_anything_is_sent() {
    let Some(url) = or_skip(endpoint::broker_url(SERVICE)) else {
        return;
    };
    let config = KafkaConfig {
        session_timeout: Duration::from_secs(1),
        ..KafkaConfig::from_url(&url).expect("a Kafka URL")
    };
    let broker: Arc<dyn Broker> = Arc::new(KafkaBroker::connect(config).await.expect("connect"));
    let name = format!("nul-header-{}", uuid::Uuid::new_v4().simple());
    let queue = Queue::declare(broker.clone(), name).await.expect("declare");
    let good = broker_core::Message::new("first");
    let bad = broker_core::Message::new("second").header("a\0b", "value");
    let err = queue
        .publish_batch(vec![good, bad])
        .await
        .expect_err("a NUL in a header name is refused");
    assert_eq!(err.kind(), broker_core::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("NUL"), "{err}");
    let sent = queue
        .receive(2, Duration::from_secs(8))
        .await
        .expect("receive");
    assert!(sent.is_empty(), "nothing of the refused batch was sent");
}
