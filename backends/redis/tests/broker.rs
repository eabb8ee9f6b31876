//! The Redis-specific promises beyond the conformance suite: kombu's layout, leases measured
//! from receipt, long countdowns that never duplicate, stale tokens, original places,
//! dead-lettering with a reason, kombu-written messages, wake-ups and the persistence check.
//! Against `BROKER_TEST_REDIS_URL` (skipped with a reason when unset) unless a private server
//! is named.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use broker_core::{
    Broker, Capacity, DEAD_LETTER_REASON_HEADER, ErrorKind, Message, NackAction, Persistence,
    Queue, RetryPolicy,
};
use broker_redis::{RedisBroker, RedisConfig};
use redis::AsyncCommands;
use serde_json::Value;
use support::{PrivateServer, SharedPrefix};

/// Brokers on the shared Redis under a fresh prefix (deleted on drop); `None` when no Redis
/// is configured.
struct Fixture {
    shared: SharedPrefix,
}

impl Fixture {
    fn new(lease: Duration, max_receives: u32) -> Option<Self> {
        let shared = SharedPrefix::new(|config| RedisConfig {
            visibility_timeout: lease,
            max_receives,
            ..config
        })?;
        Some(Self { shared })
    }

    async fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(
            RedisBroker::connect(self.shared.config.clone())
                .await
                .expect("connect"),
        )
    }

    async fn queue(&self, broker: &Arc<dyn Broker>) -> Queue {
        let name = format!("q-{}", uuid::Uuid::new_v4().simple());
        Queue::declare(broker.clone(), name)
            .await
            .expect("declare")
            .with_retry(RetryPolicy::never())
    }

    async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.shared.url.as_str())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection")
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.shared.config.key_prefix)
    }
}

fn text(delivery: &broker_core::Delivery) -> String {
    String::from_utf8_lossy(delivery.payload()).into_owned()
}

#[tokio::test]
async fn published_message_waits_in_kombus_list_and_binding() {
    let Some(fx) = Fixture::new(Duration::from_secs(30), 5) else {
        return;
    };
    let broker = fx.broker().await;
    let queue = fx.queue(&broker).await;
    queue
        .publish(Message::new("hello").header("task", "add"))
        .await
        .expect("publish");

    let mut raw = fx.raw().await;
    let waiting: Vec<String> = raw.lrange(fx.key(queue.name()), 0, -1).await.unwrap();
    assert_eq!(waiting.len(), 1);
    let envelope: Value = serde_json::from_str(&waiting[0]).unwrap();
    assert_eq!(envelope["body"], "aGVsbG8=");
    assert_eq!(envelope["headers"]["task"], "add");
    assert_eq!(envelope["properties"]["body_encoding"], "base64");
    assert_eq!(
        envelope["properties"]["delivery_info"]["routing_key"],
        queue.name()
    );
    assert!(envelope["properties"]["delivery_tag"].is_string());
    let binding: Vec<String> = raw
        .smembers(fx.key(&format!("_kombu.binding.{}", queue.name())))
        .await
        .unwrap();
    assert_eq!(
        binding,
        [format!("{0}\x06\x16\x06\x16{0}", queue.name())],
        "kombu's binding of the exchange named like the queue"
    );
}

#[tokio::test]
async fn leased_delivery_is_in_unacked_and_unacked_index_until_acked() {
    let Some(fx) = Fixture::new(Duration::from_secs(30), 5) else {
        return;
    };
    let broker = fx.broker().await;
    let queue = fx.queue(&broker).await;
    queue.publish(Message::new("work")).await.expect("publish");
    let delivery = queue
        .receive_one(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("delivered");

    let mut raw = fx.raw().await;
    let entry: String = raw.hget(fx.key("unacked"), delivery.id()).await.unwrap();
    let entry: Value =
        serde_json::from_str(&entry).expect("kombu's [message, exchange, routing_key]");
    assert_eq!(entry[1], queue.name());
    assert_eq!(entry[2], queue.name());
    assert_eq!(entry[0]["properties"]["delivery_tag"], delivery.id());
    let score: f64 = raw
        .zscore(fx.key("unacked_index"), delivery.id())
        .await
        .unwrap();
    let (secs, _micros): (u64, u64) = redis::cmd("TIME").query_async(&mut raw).await.unwrap();
    assert!(
        (secs as f64 - score).abs() < 5.0,
        "the index holds the receipt time (kombu's meaning): {score} vs {secs}"
    );

    delivery.ack().await.expect("ack");
    let count: usize = raw.hlen(fx.key("unacked")).await.unwrap();
    assert_eq!(count, 0, "acked deliveries leave the unacked hash");
    let indexed: usize = raw.zcard(fx.key("unacked_index")).await.unwrap();
    assert_eq!(indexed, 0, "and the index");
}

#[tokio::test]
async fn lease_counts_from_receipt_not_from_publish() {
    let lease = Duration::from_secs(1);
    let Some(fx) = Fixture::new(lease, 5) else {
        return;
    };
    let broker = fx.broker().await;
    let queue = fx.queue(&broker).await;
    queue.publish(Message::new("old")).await.expect("publish");
    tokio::time::sleep(lease + Duration::from_millis(500)).await;

    let held = queue
        .receive_one(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("delivered");
    let received_at = Instant::now();
    let other = Queue::new(fx.broker().await, queue.name().to_owned());
    let stolen = other
        .receive(1, Duration::from_millis(600))
        .await
        .expect("receive");
    assert!(
        stolen.is_empty() || received_at.elapsed() >= lease,
        "handed out again {:?} after receipt, before its lease of {lease:?}",
        received_at.elapsed()
    );
    held.ack().await.expect("still ours");
}

#[tokio::test]
async fn countdown_longer_than_the_lease_is_delivered_once() {
    let lease = Duration::from_millis(400);
    let Some(fx) = Fixture::new(lease, 5) else {
        return;
    };
    let broker = fx.broker().await;
    let queue = fx.queue(&broker).await;
    let countdown = Duration::from_millis(1500);
    let published = Instant::now();
    queue
        .publish(Message::new("eta").delay(countdown))
        .await
        .expect("publish");

    let mut deliveries = Vec::new();
    let consumers: Vec<Queue> = vec![
        Queue::new(fx.broker().await, queue.name().to_owned()),
        Queue::new(fx.broker().await, queue.name().to_owned()),
    ];
    while published.elapsed() < countdown + lease * 4 {
        for consumer in &consumers {
            for delivery in consumer
                .receive(10, Duration::from_millis(100))
                .await
                .expect("receive")
            {
                deliveries.push(published.elapsed());
                delivery.ack().await.expect("ack");
            }
        }
    }
    assert_eq!(deliveries.len(), 1, "delivered at {deliveries:?}");
    assert!(deliveries[0] >= countdown, "early: {:?}", deliveries[0]);
}

#[tokio::test]
async fn stale_token_cannot_settle_the_new_holders_delivery() {
    let lease = Duration::from_millis(500);
    let Some(fx) = Fixture::new(lease, 5) else {
        return;
    };
    let broker = fx.broker().await;
    let queue = fx.queue(&broker).await;
    queue.publish(Message::new("contested")).await.unwrap();
    let first = queue
        .receive_one(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("delivered");
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    let second = queue
        .receive_one(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("redelivered");
    assert_eq!(second.id(), first.id());
    assert_eq!(second.receive_count(), 2);

    let err = first.extend_lease(lease).await.expect_err("stale");
    assert_eq!(err.kind(), ErrorKind::LeaseLost);
    let err = first.ack().await.expect_err("stale ack");
    assert_eq!(err.error.kind(), ErrorKind::LeaseLost);
    second.ack().await.expect("the new holder acks");
}

#[tokio::test]
async fn expired_lease_cannot_be_acked_even_before_it_is_restored() {
    let lease = Duration::from_millis(300);
    let Some(fx) = Fixture::new(lease, 5) else {
        return;
    };
    let broker = fx.broker().await;
    let queue = fx.queue(&broker).await;
    queue.publish(Message::new("late")).await.unwrap();
    let held = queue
        .receive_one(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("delivered");
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    let err = held.ack().await.expect_err("lease ended");
    assert_eq!(err.error.kind(), ErrorKind::LeaseLost);
    let back = queue
        .receive_one(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("comes back");
    assert!(back.redelivered());
    back.ack().await.unwrap();
}

#[tokio::test]
async fn nacked_messages_return_to_their_original_places() {
    let Some(fx) = Fixture::new(Duration::from_secs(30), 10) else {
        return;
    };
    let broker = fx.broker().await;
    let queue = fx.queue(&broker).await;
    let messages = (0..5).map(|n| Message::new(format!("m{n}"))).collect();
    queue.publish_batch(messages).await.unwrap();
    let mut taken = queue.receive(3, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        taken.iter().map(text).collect::<Vec<_>>(),
        ["m0", "m1", "m2"]
    );

    // Give them back out of order: m2, then m0, then m1.
    let m2 = taken.pop().unwrap();
    let m1 = taken.pop().unwrap();
    let m0 = taken.pop().unwrap();
    for delivery in [m2, m0, m1] {
        delivery.nack(NackAction::Requeue).await.expect("nack");
    }
    let again = queue.receive(5, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        again.iter().map(text).collect::<Vec<_>>(),
        ["m0", "m1", "m2", "m3", "m4"]
    );
    let counts: Vec<u32> = again
        .iter()
        .map(broker_core::Delivery::receive_count)
        .collect();
    assert_eq!(counts, [2, 2, 2, 1, 1]);
    queue.ack_all(again).await.unwrap();
}

#[tokio::test]
async fn message_unacked_max_receives_times_is_dead_lettered_with_its_reason() {
    let lease = Duration::from_millis(300);
    let Some(fx) = Fixture::new(lease, 2) else {
        return;
    };
    let broker = fx.broker().await;
    let queue = fx.queue(&broker).await;
    queue
        .publish(Message::new("poison").header("client", "eve"))
        .await
        .unwrap();
    for attempt in 1..=2 {
        let delivery = queue
            .receive_one(Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("receive {attempt}"));
        assert_eq!(delivery.receive_count(), attempt);
        drop(delivery); // a consumer that dies: the lease runs out
        tokio::time::sleep(lease + Duration::from_millis(100)).await;
    }
    let beyond = queue.receive(1, Duration::from_millis(500)).await.unwrap();
    assert!(beyond.is_empty(), "handed out a third time");

    let dlq = Queue::new(
        broker.clone(),
        broker.dead_letter_queue(queue.name()).unwrap(),
    );
    let dead = dlq
        .receive_one(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("dead-lettered");
    assert_eq!(text(&dead), "poison");
    assert_eq!(dead.header_str("client"), Some("eve"));
    assert_eq!(
        dead.header_str(DEAD_LETTER_REASON_HEADER),
        Some("received 2 times without an ack")
    );
    assert_eq!(
        dead.receive_count(),
        1,
        "counting starts again in the dead-letter queue"
    );
    dead.ack().await.unwrap();
}

#[tokio::test]
async fn message_written_by_python_kombu_is_received_requeued_and_acked() {
    let Some(fx) = Fixture::new(Duration::from_secs(30), 5) else {
        return;
    };
    let broker = fx.broker().await;
    let queue = fx.queue(&broker).await;
    // What kombu's Redis transport LPUSHes for `app.send_task("add", (2, 2))`, abridged.
    let envelope = serde_json::json!({
        "body": "W1syLCAyXSwge30sIHt9XQ==",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": "add", "id": "5f0e", "retries": 0},
        "properties": {
            "correlation_id": "5f0e", "reply_to": "", "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue.name()},
            "priority": 0, "body_encoding": "base64",
            "delivery_tag": "9b0c2a5e-8d4e-4d59-9d0e-5a8f4b1f7c11"
        }
    });
    let python_text = serde_json::to_string_pretty(&envelope).unwrap();
    let mut raw = fx.raw().await;
    let _: () = raw.lpush(fx.key(queue.name()), python_text).await.unwrap();

    let first = queue
        .receive_one(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("received");
    assert_eq!(first.id(), "9b0c2a5e-8d4e-4d59-9d0e-5a8f4b1f7c11");
    assert_eq!(first.payload().as_ref(), b"[[2, 2], {}, {}]");
    assert_eq!(first.header_str("task"), Some("add"));
    assert_eq!(first.receive_count(), 1);
    first.nack(NackAction::Requeue).await.expect("nack");
    let second = queue
        .receive_one(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("requeued");
    assert_eq!(second.receive_count(), 2);
    assert_eq!(second.properties().correlation_id.as_deref(), Some("5f0e"));
    second.ack().await.expect("ack");
}

#[tokio::test]
async fn a_waiting_receive_takes_as_many_as_its_capacity_allows_when_work_arrives() {
    let Some(fx) = Fixture::new(Duration::from_secs(30), 5) else {
        return;
    };
    let broker = fx.broker().await;
    let queue = fx.queue(&broker).await;
    let room = AtomicUsize::new(1);
    let free = || room.load(Ordering::SeqCst);
    let receive = queue.receive_up_to(Capacity::dynamic(10, &free), Duration::from_secs(5));
    let publish = async {
        // The receive is waiting with room for one; three arrive once it has room for three.
        tokio::time::sleep(Duration::from_millis(200)).await;
        room.store(3, Ordering::SeqCst);
        let batch = (0..3).map(|n| Message::new(format!("m{n}"))).collect();
        queue.publish_batch(batch).await.expect("publish");
    };
    let (got, ()) = tokio::join!(receive, publish);
    let got = got.expect("receive");
    assert_eq!(
        got.len(),
        3,
        "the capacity was read when the messages were taken"
    );
    queue.ack_all(got).await.expect("ack");
}

#[tokio::test]
async fn waiting_consumer_is_woken_by_a_publish_within_milliseconds() {
    let Some(fx) = Fixture::new(Duration::from_secs(30), 5) else {
        return;
    };
    let broker = fx.broker().await;
    let queue = fx.queue(&broker).await;
    let consumer = Queue::new(fx.broker().await, queue.name().to_owned());
    let mut latencies = Vec::new();
    for round in 0..5 {
        let waiting = {
            let consumer = consumer.clone();
            tokio::spawn(async move {
                let got = consumer.receive_one(Duration::from_secs(5)).await.unwrap();
                (got.expect("woken"), Instant::now())
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = Instant::now();
        queue
            .publish(Message::new(format!("r{round}")))
            .await
            .unwrap();
        let (delivery, arrived) = waiting.await.unwrap();
        latencies.push(arrived.duration_since(sent));
        delivery.ack().await.unwrap();
    }
    latencies.sort();
    assert!(
        latencies[2] < Duration::from_millis(100),
        "median wake-up latency {:?} (all: {latencies:?})",
        latencies[2]
    );
}

async fn subscribers(raw: &mut redis::aio::MultiplexedConnection, channel: &str) -> u32 {
    let (_, count): (String, u32) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(raw)
        .await
        .expect("PUBSUB NUMSUB");
    count
}

#[tokio::test]
async fn broker_that_only_publishes_holds_no_wake_up_subscription() {
    let Some(fx) = Fixture::new(Duration::from_secs(30), 5) else {
        return;
    };
    let broker = RedisBroker::connect(fx.shared.config.clone())
        .await
        .expect("connect");
    let channel = broker.keys().wake_channel();
    let broker: Arc<dyn Broker> = Arc::new(broker);
    let queue = fx.queue(&broker).await;
    queue.publish(Message::new("only published")).await.unwrap();
    let mut raw = fx.raw().await;
    assert_eq!(subscribers(&mut raw, &channel).await, 0);

    let delivery = queue.receive_one(Duration::ZERO).await.unwrap().unwrap();
    delivery.ack().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while subscribers(&mut raw, &channel).await == 0 {
        assert!(Instant::now() < deadline, "no subscription after a receive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.close().await.unwrap();
    while subscribers(&mut raw, &channel).await != 0 {
        assert!(Instant::now() < deadline, "subscription outlived close");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn server_without_an_fsynced_append_only_file_is_declared_transient() {
    let Some(fx) = Fixture::new(Duration::from_secs(30), 5) else {
        return;
    };
    let mut raw = fx.raw().await;
    let aof: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync")
        .query_async(&mut raw)
        .await
        .unwrap();
    let on: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(&mut raw)
        .await
        .unwrap();
    let durable = on.get(1).map(String::as_str) == Some("yes")
        && aof.get(1).map(String::as_str) == Some("always");
    let broker = fx.broker().await;
    let expected = if durable {
        Persistence::Durable
    } else {
        Persistence::Transient
    };
    assert_eq!(broker.capabilities().persistence, expected);
}

#[tokio::test]
async fn server_with_an_fsynced_append_only_file_is_declared_durable() {
    let server = PrivateServer::start(true).expect("a private redis-server starts");
    let broker = RedisBroker::connect(RedisConfig::new(server.url()))
        .await
        .expect("connect");
    assert_eq!(broker.capabilities().persistence, Persistence::Durable);
    let plain = PrivateServer::start(false).expect("a private redis-server starts");
    let broker = RedisBroker::connect(RedisConfig::new(plain.url()))
        .await
        .expect("connect");
    assert_eq!(broker.capabilities().persistence, Persistence::Transient);
}

#[tokio::test]
async fn deleted_queue_is_gone_with_its_waiting_and_delayed_messages() {
    let Some(fx) = Fixture::new(Duration::from_secs(30), 5) else {
        return;
    };
    let broker = fx.broker().await;
    let queue = fx.queue(&broker).await;
    queue.publish(Message::new("now")).await.unwrap();
    queue
        .publish(Message::new("later").delay(Duration::from_secs(60)))
        .await
        .unwrap();
    broker.delete_queue(queue.name()).await.unwrap();

    let mut raw = fx.raw().await;
    let keys: Vec<String> = raw
        .keys(format!("{}*{}*", fx.shared.config.key_prefix, queue.name()))
        .await
        .unwrap();
    assert!(keys.is_empty(), "left behind: {keys:?}");
    let err = broker
        .publish(queue.name(), &[Message::new("x")])
        .await
        .expect_err("deleted");
    assert_eq!(err.kind(), ErrorKind::QueueNotFound);
}

#[tokio::test]
async fn errors_never_show_the_password() {
    let err = RedisBroker::connect(RedisConfig::new("redis://user:hunter2@127.0.0.1:1/0"))
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.is_retryable());
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}

#[tokio::test]
async fn expired_lease_written_by_python_kombu_returns_to_its_queue() {
    let Some(fx) = Fixture::new(Duration::from_secs(30), 5) else {
        return;
    };
    let broker = fx.broker().await;
    let queue = fx.queue(&broker).await;
    // kombu's unacked entry as Python's json.dumps writes it (spaces after the commas), its
    // envelope large enough that exchange and routing key sit far from the front.
    let body = "QUJD".repeat(256 * 1024);
    let envelope = serde_json::json!({
        "body": body,
        "headers": {"task": "add", "id": "py-1"},
        "properties": {"body_encoding": "base64", "delivery_tag": "py-1"}
    });
    let entry = format!("[{envelope}, \"\", \"{}\"]", queue.name());
    let mut raw = fx.raw().await;
    let _: () = raw.hset(fx.key("unacked"), "py-1", entry).await.unwrap();
    let leased_long_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 3600.0;
    let _: () = raw
        .zadd(fx.key("unacked_index"), "py-1", leased_long_ago)
        .await
        .unwrap();

    let back = queue
        .receive_one(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("restored to its queue");
    assert_eq!(back.id(), "py-1");
    assert_eq!(back.payload().len(), 3 * 256 * 1024);
    assert!(back.payload().starts_with(b"ABCABC"));
    back.ack().await.expect("ack");
}

#[tokio::test]
async fn an_envelope_nobody_can_decode_goes_to_the_dead_letter_queue() {
    let Some(fx) = Fixture::new(Duration::from_secs(30), 5) else {
        return;
    };
    let broker = fx.broker().await;
    let queue = fx.queue(&broker).await;
    let mut raw = fx.raw().await;
    let _: () = raw
        .lpush(fx.key(queue.name()), "not an envelope")
        .await
        .unwrap();

    let got = queue.receive(10, Duration::from_millis(300)).await.unwrap();
    assert!(got.is_empty(), "nothing decodable was handed out");
    let dlq = broker.dead_letter_queue(queue.name()).unwrap();
    let buried: Vec<String> = raw.lrange(fx.key(&dlq), 0, -1).await.unwrap();
    assert_eq!(buried, ["not an envelope"]);
    let leased: usize = raw.hlen(fx.key("unacked")).await.unwrap();
    assert_eq!(leased, 0, "its lease was ended");
}
