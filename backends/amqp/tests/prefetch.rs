//! RabbitMQ pushes a receiver only as many messages as it has room for: the rest stay in the
//! queue for other consumers instead of waiting in this one's buffer.

use std::{sync::Arc, time::Duration};

use broker_amqp::{AmqpBroker, AmqpConfig};
use broker_core::{Broker, Capacity, Message, Queue};
use conformance_tests::{endpoint, skip};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_keeps_no_more_than_its_room_and_others_get_the_rest() {
    let Some(url) = skip::or_skip(endpoint::broker_url("amqp")) else {
        return;
    };
    let config = AmqpConfig::from_url(&url).expect("the test URL parses");
    let name = format!("prefetch-{}", uuid::Uuid::new_v4().simple());
    let small: Arc<dyn Broker> = Arc::new(AmqpBroker::connect(config.clone()).await.unwrap());
    let other: Arc<dyn Broker> = Arc::new(AmqpBroker::connect(config).await.unwrap());
    let publisher = Queue::declare(other.clone(), name.as_str()).await.unwrap();
    let messages = (0..10).map(|n| Message::new(n.to_string())).collect();
    publisher.publish_batch(messages).await.unwrap();

    // A receiver with room for two takes what has arrived (one or two) and never acks; what
    // RabbitMQ pushed it but it did not take yet counts against the same room of two.
    let held = Queue::new(small.clone(), name.as_str())
        .receive_up_to(Capacity::fixed(2), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(!held.is_empty() && held.len() <= 2, "took {}", held.len());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The other eight are in the queue for another consumer.
    let rest = Queue::new(other.clone(), name.as_str());
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 8 && Instant::now() < deadline {
        got.extend(rest.receive(10, Duration::from_millis(500)).await.unwrap());
    }
    assert_eq!(
        got.len(),
        8,
        "the receiver with room for two kept more than two"
    );
    rest.ack_all(got).await.unwrap();
    drop(held);
    small.close().await.unwrap();
    other.delete_queue(&name).await.unwrap();
}
