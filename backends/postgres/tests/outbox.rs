//! The outbox pattern: messages published inside the caller's transaction exist exactly when
//! that transaction commits, and its commit wakes waiting consumers.

mod support;

use std::{sync::Arc, time::Duration};

use broker_core::{Broker, ErrorKind, Message, Queue};
use broker_postgres::{PostgresBroker, PostgresConfig};
use support::TestSchema;
use tokio::time::Instant;

const QUEUE: &str = "outbox";

struct Fixture {
    schema: TestSchema,
    config: PostgresConfig,
    broker: Arc<PostgresBroker>,
}

impl Fixture {
    /// A broker in a fresh schema with the queue declared and an application table
    /// `orders` beside the broker's tables.
    async fn new(url: &str, poll_interval: Duration) -> Self {
        let schema = TestSchema::fresh();
        let config = PostgresConfig {
            poll_interval,
            ..support::config(url, &schema.name)
        };
        let broker = Arc::new(support::broker(config.clone()).await);
        broker.declare_queue(QUEUE).await.expect("declare");
        sqlx::query(&format!(
            "CREATE TABLE \"{}\".orders (id int PRIMARY KEY)",
            schema.name
        ))
        .execute(broker.pool())
        .await
        .expect("application table");
        Self {
            schema,
            config,
            broker,
        }
    }

    fn queue(&self) -> Queue {
        Queue::new(self.broker.clone(), QUEUE)
    }

    async fn orders(&self) -> i64 {
        sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{}\".orders",
            self.schema.name
        ))
        .fetch_one(self.broker.pool())
        .await
        .expect("count orders")
    }

    async fn stored_messages(&self) -> i64 {
        sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{}\".messages WHERE queue = $1",
            self.schema.name
        ))
        .bind(QUEUE)
        .fetch_one(self.broker.pool())
        .await
        .expect("count messages")
    }

    async fn insert_order(&self, tx: &mut sqlx::PgConnection, id: i32) {
        sqlx::query(&format!(
            "INSERT INTO \"{}\".orders (id) VALUES ($1)",
            self.schema.name
        ))
        .bind(id)
        .execute(tx)
        .await
        .expect("insert order");
    }
}

#[tokio::test]
async fn rolled_back_transaction_enqueues_nothing() {
    let Some(url) = support::url_or_skip("rolled_back_transaction_enqueues_nothing") else {
        return;
    };
    let fixture = Fixture::new(&url, Duration::from_secs(1)).await;

    let mut tx = fixture.broker.pool().begin().await.expect("begin");
    fixture.insert_order(&mut tx, 1).await;
    fixture
        .broker
        .publish_in(&mut tx, QUEUE, &[Message::new("order 1 placed")])
        .await
        .expect("publish inside the transaction");
    tx.rollback().await.expect("rollback");

    let got = fixture
        .queue()
        .receive(10, Duration::from_secs(1))
        .await
        .expect("receive");
    assert!(got.is_empty(), "a rolled-back publish was delivered");
    assert_eq!(fixture.stored_messages().await, 0);
    assert_eq!(fixture.orders().await, 0);
}

#[tokio::test]
async fn committed_transaction_enqueues_exactly_once_with_its_writes() {
    let Some(url) =
        support::url_or_skip("committed_transaction_enqueues_exactly_once_with_its_writes")
    else {
        return;
    };
    let fixture = Fixture::new(&url, Duration::from_secs(1)).await;
    let consumer = Queue::new(
        Arc::new(support::broker(fixture.config.clone()).await),
        QUEUE,
    );

    let mut tx = fixture.broker.pool().begin().await.expect("begin");
    fixture.insert_order(&mut tx, 7).await;
    fixture
        .broker
        .publish_in(&mut tx, QUEUE, &[Message::new("order 7 placed")])
        .await
        .expect("publish inside the transaction");
    let early = consumer.receive(10, Duration::ZERO).await.expect("receive");
    assert!(early.is_empty(), "visible before the commit");
    tx.commit().await.expect("commit");

    let got = consumer
        .receive(10, Duration::from_secs(5))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload().as_ref(), b"order 7 placed");
    consumer.ack_all(got).await.expect("ack");
    let again = consumer
        .receive(10, Duration::from_secs(1))
        .await
        .expect("receive");
    assert!(again.is_empty(), "delivered more than once");
    assert_eq!(fixture.orders().await, 1, "the order was committed with it");
}

#[tokio::test]
async fn commit_wakes_a_consumer_waiting_in_receive() {
    let Some(url) = support::url_or_skip("commit_wakes_a_consumer_waiting_in_receive") else {
        return;
    };
    // A poll interval far longer than the test: only the commit's NOTIFY can wake the consumer.
    let fixture = Fixture::new(&url, Duration::from_secs(60)).await;
    let consumer = Queue::new(
        Arc::new(support::broker(fixture.config.clone()).await),
        QUEUE,
    );
    let waiting = tokio::spawn(async move {
        let got = consumer
            .receive(1, Duration::from_secs(30))
            .await
            .expect("receive");
        (Instant::now(), got.len())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut tx = fixture.broker.pool().begin().await.expect("begin");
    fixture
        .broker
        .publish_in(&mut tx, QUEUE, &[Message::new("wake up")])
        .await
        .expect("publish inside the transaction");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "woken before the commit");
    let committed_at = Instant::now();
    tx.commit().await.expect("commit");

    let (woken_at, count) = waiting.await.expect("consumer");
    assert_eq!(count, 1);
    let latency = woken_at.duration_since(committed_at);
    assert!(
        latency < Duration::from_secs(2),
        "woken {latency:?} after the commit"
    );
}

#[tokio::test]
async fn publishing_to_a_missing_queue_leaves_the_transaction_usable() {
    let Some(url) =
        support::url_or_skip("publishing_to_a_missing_queue_leaves_the_transaction_usable")
    else {
        return;
    };
    let fixture = Fixture::new(&url, Duration::from_secs(1)).await;

    let mut tx = fixture.broker.pool().begin().await.expect("begin");
    let err = fixture
        .broker
        .publish_in(&mut tx, "no-such-queue", &[Message::new("lost")])
        .await
        .expect_err("missing queue");
    assert_eq!(err.kind(), ErrorKind::QueueNotFound);
    fixture.insert_order(&mut tx, 3).await;
    tx.commit().await.expect("the transaction still commits");
    assert_eq!(fixture.orders().await, 1);
}

#[tokio::test]
async fn outbox_checks_payload_limits_and_splits_large_batches() {
    let Some(url) = support::url_or_skip("outbox_checks_payload_limits_and_splits_large_batches")
    else {
        return;
    };
    let fixture = Fixture::new(&url, Duration::from_secs(1)).await;
    let limit = fixture.broker.capabilities().max_payload;

    let mut tx = fixture.broker.pool().begin().await.expect("begin");
    let err = fixture
        .broker
        .publish_in(
            &mut tx,
            QUEUE,
            &[Message::new("fits"), Message::new(vec![0u8; limit + 1])],
        )
        .await
        .expect_err("too large");
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);
    let many: Vec<Message> = (0..2_500).map(|n| Message::new(format!("m{n}"))).collect();
    fixture
        .broker
        .publish_in(&mut tx, QUEUE, &many)
        .await
        .expect("more than max_batch messages are written in batches");
    tx.commit().await.expect("commit");
    assert_eq!(fixture.stored_messages().await, 2_500);
}
