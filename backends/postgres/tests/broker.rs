//! Guarantees of the PostgreSQL broker beyond the shared suite: wake-ups without polling,
//! lease tokens, migrations under concurrency, closing, dead-letter and deduplication edges.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use broker_core::{AckToken, Broker, Capacity, ErrorKind, Message, NackAction, Queue};
use broker_postgres::{PostgresBroker, PostgresConfig, PostgresResultStore, latest_version};
use support::TestSchema;
use tokio::time::Instant;

async fn declared(config: &PostgresConfig, queue: &str) -> Arc<PostgresBroker> {
    let broker = Arc::new(support::broker(config.clone()).await);
    broker.declare_queue(queue).await.expect("declare");
    broker
}

#[tokio::test]
async fn publish_wakes_a_waiting_consumer_without_waiting_for_the_poll() {
    let Some(url) =
        support::url_or_skip("publish_wakes_a_waiting_consumer_without_waiting_for_the_poll")
    else {
        return;
    };
    let schema = TestSchema::fresh();
    let config = PostgresConfig {
        poll_interval: Duration::from_secs(60),
        ..support::config(&url, &schema.name)
    };
    let publisher = declared(&config, "wake").await;
    let consumer = Queue::new(Arc::new(support::broker(config.clone()).await), "wake");
    let mut latencies = Vec::new();
    for round in 0..5 {
        let waiting = {
            let consumer = consumer.clone();
            tokio::spawn(async move {
                let got = consumer
                    .receive(1, Duration::from_secs(30))
                    .await
                    .expect("receive");
                let woken_at = Instant::now();
                consumer.ack_all(got).await.expect("ack");
                woken_at
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let published_at = Instant::now();
        publisher
            .publish("wake", &[Message::new(format!("round {round}"))])
            .await
            .expect("publish");
        let woken_at = waiting.await.expect("consumer");
        latencies.push(woken_at.duration_since(published_at));
    }
    latencies.sort();
    println!("publish-to-receive latency, 5 rounds: {latencies:?}");
    assert!(
        latencies[4] < Duration::from_millis(500),
        "a consumer waited for the poll: {latencies:?}"
    );
}

#[tokio::test]
async fn a_waiting_receive_takes_as_many_as_its_capacity_allows_when_work_arrives() {
    let Some(url) = support::url_or_skip(
        "a_waiting_receive_takes_as_many_as_its_capacity_allows_when_work_arrives",
    ) else {
        return;
    };
    let schema = TestSchema::fresh();
    let config = support::config(&url, &schema.name);
    let publisher = declared(&config, "room").await;
    let consumer = Queue::new(Arc::new(support::broker(config.clone()).await), "room");
    let room = AtomicUsize::new(1);
    let free = || room.load(Ordering::SeqCst);
    let receive = consumer.receive_up_to(Capacity::dynamic(10, &free), Duration::from_secs(10));
    let publish = async {
        // The receive is waiting with room for one; three arrive once it has room for three.
        tokio::time::sleep(Duration::from_millis(300)).await;
        room.store(3, Ordering::SeqCst);
        let batch: Vec<_> = (0..3).map(|n| Message::new(format!("m{n}"))).collect();
        publisher.publish("room", &batch).await.expect("publish");
    };
    let (got, ()) = tokio::join!(receive, publish);
    let got = got.expect("receive");
    assert_eq!(
        got.len(),
        3,
        "the capacity was read when the messages were taken"
    );
    consumer.ack_all(got).await.expect("ack");
}

#[tokio::test]
async fn waiting_consumer_recovers_when_its_listen_connection_is_killed() {
    let Some(url) =
        support::url_or_skip("waiting_consumer_recovers_when_its_listen_connection_is_killed")
    else {
        return;
    };
    let schema = TestSchema::fresh();
    let config = PostgresConfig {
        poll_interval: Duration::from_secs(60),
        ..support::config(&url, &schema.name)
    };
    let publisher = declared(&config, "relisten").await;
    let consumer = Queue::new(Arc::new(support::broker(config.clone()).await), "relisten");
    let waiting = tokio::spawn(async move {
        consumer
            .receive(1, Duration::from_secs(30))
            .await
            .expect("receive")
            .len()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Terminate this test's own LISTEN connection, as a network failure or an administrator
    // would.
    let channel = broker_postgres::sql::channel(&schema.name);
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1
         ) AS terminated",
    )
    .bind(format!("LISTEN \"{channel}\""))
    .fetch_one(publisher.pool())
    .await
    .expect("terminate the listener");
    assert_eq!(killed, 1, "the consumer's listener was found");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let published_at = Instant::now();
    publisher
        .publish("relisten", &[Message::new("after the reconnect")])
        .await
        .expect("publish");
    let count = waiting.await.expect("consumer");
    assert_eq!(count, 1);
    assert!(
        published_at.elapsed() < Duration::from_secs(5),
        "woken only after {:?}",
        published_at.elapsed()
    );
}

#[tokio::test]
async fn stale_lease_token_is_lease_lost_for_ack_nack_and_extend() {
    let Some(url) = support::url_or_skip("stale_lease_token_is_lease_lost_for_ack_nack_and_extend")
    else {
        return;
    };
    let schema = TestSchema::fresh();
    let config = PostgresConfig {
        visibility_timeout: Duration::from_millis(500),
        ..support::config(&url, &schema.name)
    };
    let broker = declared(&config, "leases").await;
    broker
        .publish("leases", &[Message::new("contested")])
        .await
        .expect("publish");
    let first = broker
        .receive_up_to("leases", &Capacity::fixed(1), Duration::from_secs(5))
        .await
        .expect("receive")
        .remove(0);
    let second = broker
        .receive_up_to("leases", &Capacity::fixed(1), Duration::from_secs(5))
        .await
        .expect("receive")
        .pop()
        .expect("back after the lease ended");
    assert_eq!(second.id, first.id);
    assert_eq!(second.receive_count, 2);

    let stale = &first.token;
    let ack = broker.ack("leases", std::slice::from_ref(stale)).await;
    assert_eq!(ack.expect_err("stale ack").kind(), ErrorKind::LeaseLost);
    let nack = broker.nack("leases", stale, &NackAction::Requeue).await;
    assert_eq!(nack.expect_err("stale nack").kind(), ErrorKind::LeaseLost);
    let extend = broker
        .extend_lease("leases", stale, Duration::from_secs(10))
        .await;
    assert_eq!(
        extend.expect_err("stale extend").kind(),
        ErrorKind::LeaseLost
    );
    broker
        .ack("leases", std::slice::from_ref(&second.token))
        .await
        .expect("the current holder acks");
    let foreign = broker
        .ack("leases", &[AckToken::new("not-a-token")])
        .await
        .expect_err("foreign token");
    assert_eq!(foreign.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn concurrent_connects_apply_each_migration_once() {
    let Some(url) = support::url_or_skip("concurrent_connects_apply_each_migration_once") else {
        return;
    };
    let schema = TestSchema::fresh();
    let config = support::config(&url, &schema.name);
    let mut opening = Vec::new();
    for n in 0..8 {
        let config = config.clone();
        opening.push(tokio::spawn(async move {
            if n % 2 == 0 {
                PostgresBroker::connect(config).await.map(|_| ())
            } else {
                PostgresResultStore::connect(config).await.map(|_| ())
            }
        }));
    }
    for task in opening {
        task.await.expect("task").expect("every connect succeeds");
    }
    let broker = support::broker(config).await;
    let versions: Vec<(i64, i64)> = sqlx::query_as(&format!(
        "SELECT version, count(*) FROM \"{}\".schema_migrations GROUP BY version ORDER BY version",
        schema.name
    ))
    .fetch_all(broker.pool())
    .await
    .expect("read migrations");
    let expected: Vec<(i64, i64)> = (1..=latest_version()).map(|v| (v, 1)).collect();
    assert_eq!(versions, expected);
}

#[tokio::test]
async fn a_refused_connection_names_the_endpoint_at_once_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let started = Instant::now();
    let err = PostgresBroker::connect(PostgresConfig::new(format!(
        "postgres://app:s3cret-pw@127.0.0.1:{port}/app"
    )))
    .await
    .expect_err("nothing listens on a port just freed");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        err.to_string(),
        format!(
            "postgres: connect failed: connection failed: 127.0.0.1:{port}: connection refused"
        )
    );
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.backend(), Some("postgres"));
    assert!(!format!("{err:?}").contains("s3cret-pw"));
}

#[tokio::test]
async fn a_missing_database_is_named_as_the_cause() {
    let Some(url) = support::url_or_skip("a_missing_database_is_named_as_the_cause") else {
        return;
    };
    let mut config = PostgresConfig::from_url(&url).expect("the test URL parses");
    let (server, _) = config
        .url
        .rsplit_once('/')
        .expect("the test URL names a database");
    config.url = format!("{server}/no_such_database_here");
    let err = PostgresBroker::connect(config)
        .await
        .expect_err("the database does not exist");
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
    assert!(
        err.to_string()
            .ends_with(": no such database `no_such_database_here`"),
        "{err}"
    );
}

#[tokio::test]
async fn closing_wakes_a_waiting_receive_with_a_closed_error() {
    let Some(url) = support::url_or_skip("closing_wakes_a_waiting_receive_with_a_closed_error")
    else {
        return;
    };
    let schema = TestSchema::fresh();
    let broker = declared(&support::config(&url, &schema.name), "closing").await;
    let waiting = {
        let broker = broker.clone();
        tokio::spawn(async move {
            broker
                .receive_up_to("closing", &Capacity::fixed(1), Duration::from_secs(30))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let closed_at = Instant::now();
    broker.close().await.expect("close");
    let err = waiting.await.expect("task").expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert!(closed_at.elapsed() < Duration::from_secs(2));
    let again = broker.declare_queue("closing").await.expect_err("closed");
    assert_eq!(again.kind(), ErrorKind::Closed);
}

#[tokio::test]
async fn closing_a_broker_on_a_callers_pool_leaves_the_pool_open() {
    let Some(url) = support::url_or_skip("closing_a_broker_on_a_callers_pool_leaves_the_pool_open")
    else {
        return;
    };
    let schema = TestSchema::fresh();
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let broker = PostgresBroker::from_pool(pool.clone(), support::config(&url, &schema.name))
        .await
        .expect("broker on the caller's pool");
    broker.declare_queue("shared").await.expect("declare");
    broker.close().await.expect("close");
    let err = broker
        .publish("shared", &[Message::new("x")])
        .await
        .expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Closed);
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .expect("the caller's pool still works");
    assert_eq!(one, 1);
}

#[tokio::test]
async fn dead_letter_queue_keeps_messages_instead_of_dead_lettering_further() {
    let Some(url) =
        support::url_or_skip("dead_letter_queue_keeps_messages_instead_of_dead_lettering_further")
    else {
        return;
    };
    let schema = TestSchema::fresh();
    let config = PostgresConfig {
        max_receives: 2,
        ..support::config(&url, &schema.name)
    };
    let broker = declared(&config, "work").await;
    let dlq = broker
        .dead_letter_queue("work")
        .expect("a dead-letter queue");
    assert_eq!(broker.dead_letter_queue(&dlq), None);
    broker
        .publish("work", &[Message::new("poison")])
        .await
        .expect("publish");
    let first = broker
        .receive_up_to("work", &Capacity::fixed(1), Duration::from_secs(5))
        .await
        .expect("receive")
        .remove(0);
    broker
        .nack(
            "work",
            &first.token,
            &NackAction::DeadLetter {
                reason: "bad".into(),
            },
        )
        .await
        .expect("dead-letter");

    for attempt in 1..=4 {
        let dead = broker
            .receive_up_to(&dlq, &Capacity::fixed(1), Duration::from_secs(5))
            .await
            .expect("receive")
            .pop()
            .unwrap_or_else(|| panic!("still in the dead-letter queue at attempt {attempt}"));
        assert_eq!(dead.receive_count, attempt);
        broker
            .nack(&dlq, &dead.token, &NackAction::Requeue)
            .await
            .expect("requeue in the dead-letter queue");
    }
    let dead = Queue::new(broker.clone(), dlq)
        .receive_one(Duration::from_secs(5))
        .await
        .expect("receive")
        .expect("still in the dead-letter queue");
    let refused = dead
        .nack(NackAction::DeadLetter {
            reason: "again".into(),
        })
        .await
        .expect_err("nowhere further");
    assert_eq!(refused.error.kind(), ErrorKind::Unsupported);
    refused
        .delivery
        .ack()
        .await
        .expect("the refused delivery is still held");
}

#[tokio::test]
async fn deduplication_ids_collapse_within_a_batch_and_expire_after_the_window() {
    let Some(url) = support::url_or_skip(
        "deduplication_ids_collapse_within_a_batch_and_expire_after_the_window",
    ) else {
        return;
    };
    let schema = TestSchema::fresh();
    let config = PostgresConfig {
        dedup_window: Duration::from_secs(1),
        ..support::config(&url, &schema.name)
    };
    let broker = declared(&config, "dedup").await;
    let queue = Queue::new(broker.clone(), "dedup");
    queue
        .publish_batch(vec![
            Message::new("a").deduplication_id("k"),
            Message::new("b").deduplication_id("k"),
            Message::new("c"),
        ])
        .await
        .expect("publish");
    let got = queue
        .receive(10, Duration::from_secs(5))
        .await
        .expect("receive");
    let payloads: Vec<&[u8]> = got.iter().map(|d| d.payload().as_ref()).collect();
    assert_eq!(payloads, [b"a".as_slice(), b"c".as_slice()]);
    queue.ack_all(got).await.expect("ack");

    tokio::time::sleep(Duration::from_millis(1_300)).await;
    queue
        .publish(Message::new("d").deduplication_id("k"))
        .await
        .expect("publish");
    let after = queue
        .receive(10, Duration::from_secs(5))
        .await
        .expect("receive");
    assert_eq!(after.len(), 1, "an id is accepted again after its window");
    assert_eq!(after[0].payload().as_ref(), b"d");
}

#[tokio::test]
async fn batch_above_the_statement_size_is_stored_whole() {
    let Some(url) = support::url_or_skip("batch_above_the_statement_size_is_stored_whole") else {
        return;
    };
    let schema = TestSchema::fresh();
    let broker = declared(&support::config(&url, &schema.name), "big").await;
    // Five 15 MiB payloads pass the 64 MiB per statement: two statements, one transaction.
    let batch: Vec<Message> = (0..5u8)
        .map(|n| Message::new(vec![n; 15 * 1024 * 1024]))
        .collect();
    broker.publish("big", &batch).await.expect("publish");
    let mut seen = Vec::new();
    while seen.len() < batch.len() {
        let got = broker
            .receive_up_to("big", &Capacity::fixed(2), Duration::from_secs(5))
            .await
            .expect("receive");
        assert!(!got.is_empty(), "only {} arrived", seen.len());
        let tokens: Vec<AckToken> = got.iter().map(|r| r.token.clone()).collect();
        seen.extend(got.iter().map(|r| (r.payload[0], r.payload.len())));
        broker.ack("big", &tokens).await.expect("ack");
    }
    let expected: Vec<(u8, usize)> = (0..5u8).map(|n| (n, 15 * 1024 * 1024)).collect();
    assert_eq!(seen, expected, "every message, whole, in order");
}
