//! Publishing and receiving: payloads, limits, concurrency, errors.

use std::{collections::HashSet, sync::Arc, time::Duration};

use broker_core::{Capacity, ErrorKind, Message, Ordering, Queue};
use serde_json::json;

use super::{Ctx, Skip, ack_promptly, receive_at_least, tally, text};

pub(super) async fn payload_and_headers_round_trip(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let caps = ctx.caps().clone();
    let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let large_len = (256 * 1024).min(caps.max_payload - 1024);
    let large: Vec<u8> = (0..large_len).map(|i| (i * 7 % 251) as u8).collect();
    let headers = json!({
        "client": "alice",
        "retries": 3,
        "timelimit": [null, 30.5],
        "nested": {"a": [1, "b", true]},
        "unicode": "ünïcode ✓",
    });
    let originals = [binary, Vec::new(), large];
    let mut batch = Vec::new();
    for (index, payload) in originals.iter().enumerate() {
        let mut message = Message::new(payload.clone())
            .header("case-index", index)
            .content_type("application/octet-stream")
            .ordering_key("k1");
        for (name, value) in headers.as_object().expect("object") {
            message = message.header(name.clone(), value.clone());
        }
        message.properties.correlation_id = Some(format!("corr-{index}"));
        batch.push(message);
    }
    queue.publish_batch(batch).await.expect("publish");

    let got = receive_at_least(&queue, originals.len(), Duration::from_secs(15)).await;
    assert_eq!(got.len(), originals.len(), "every message arrives");
    for delivery in &got {
        let index = delivery.headers()["case-index"]
            .as_u64()
            .expect("index header") as usize;
        assert_eq!(
            delivery.payload().as_ref(),
            originals[index].as_slice(),
            "payload {index}"
        );
        for (name, value) in headers.as_object().expect("object") {
            assert_eq!(delivery.headers().get(name), Some(value), "header {name}");
        }
        let props = delivery.properties();
        assert_eq!(
            props.content_type.as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(props.correlation_id, Some(format!("corr-{index}")));
        if caps.ordering >= Ordering::PerKey {
            assert_eq!(delivery.ordering_key(), Some("k1"));
        }
        assert_eq!(delivery.receive_count(), 1);
        assert!(!delivery.redelivered());
    }
    queue.ack_all(got).await.expect("ack");

    if caps.max_payload <= 16 * 1024 * 1024 {
        // The largest payload gets a lease that fits it: the suite's lease plus the time its
        // bytes take at 1 MiB/s, far below any backend's speed, even loaded and unoptimised.
        // That takes a connection of its own where deliveries are leased; where they are held
        // by their connection (no lease to outrun), the case's own connection takes it, since
        // another one need not be handed this queue's messages at once (a Kafka group member
        // that joins late gets partitions only after a rebalance).
        let transfer = Duration::from_secs_f64(caps.max_payload as f64 / (1024.0 * 1024.0));
        let broker = if matches!(caps.redelivery, broker_core::Redelivery::Lease { .. }) {
            let settings = crate::Settings {
                lease: ctx.settings.lease + transfer,
                ..ctx.settings
            };
            ctx.harness
                .broker(settings)
                .await
                .expect("a connection with a longer lease opens")
        } else {
            ctx.broker.clone()
        };
        let large = Queue::new(broker.clone(), queue.name());
        let exact = Message::new(vec![b'x'; caps.max_payload]);
        assert_eq!(exact.encoded_size(), caps.max_payload);
        large
            .publish(exact)
            .await
            .expect("a payload of exactly the declared maximum is accepted");
        let got = receive_at_least(&large, 1, Duration::from_secs(15) + transfer).await;
        assert_eq!(got.len(), 1, "the largest payload arrives");
        assert_eq!(
            got[0].payload().len(),
            caps.max_payload,
            "and arrives whole"
        );
        large
            .ack_all(got)
            .await
            .expect("the largest payload is acked within a lease that fits it");
        if !Arc::ptr_eq(&broker, &ctx.broker) {
            broker.close().await.expect("close");
        }
    }
    Ok(())
}

pub(super) async fn oversized_payload_is_rejected_before_anything_is_sent(
    ctx: Ctx,
) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let limit = ctx.caps().max_payload;
    let fits = Message::new("fits");
    let too_big = Message::new(vec![0u8; limit + 1]);
    let err = queue
        .publish_batch(vec![fits, too_big])
        .await
        .expect_err("rejected");
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);
    assert!(!err.is_retryable());
    let leaked = queue
        .receive(10, Duration::from_millis(500))
        .await
        .expect("receive");
    assert!(leaked.is_empty(), "nothing of a rejected batch is sent");
    Ok(())
}

pub(super) async fn concurrent_publishers_and_consumers_lose_and_invent_nothing(
    ctx: Ctx,
) -> Result<(), Skip> {
    const PUBLISHERS: usize = 4;
    const CONSUMERS: usize = 4;
    const EACH: usize = 2_000;
    let queue = ctx.queue().await;
    let expected: HashSet<String> = (0..PUBLISHERS)
        .flat_map(|p| (0..EACH).map(move |n| format!("p{p}-{n}")))
        .collect();

    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let queue = queue.clone();
        publishers.push(tokio::spawn(async move {
            let messages: Vec<Message> = (0..EACH)
                .map(|n| Message::new(format!("p{p}-{n}")))
                .collect();
            for chunk in messages.chunks(100) {
                queue.publish_batch(chunk.to_vec()).await.expect("publish");
            }
        }));
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::<(String, bool)>::new()));
    let total = expected.len();
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let queue = Queue::declare(ctx.connect().await, queue.name().to_owned())
            .await
            .expect("q");
        let seen = seen.clone();
        consumers.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
            loop {
                let unique = {
                    let seen = seen.lock().expect("seen");
                    seen.iter().map(|(p, _)| p).collect::<HashSet<_>>().len()
                };
                if unique >= total || tokio::time::Instant::now() > deadline {
                    break;
                }
                let got = queue
                    .receive(10, Duration::from_millis(200))
                    .await
                    .expect("receive");
                let mut records = Vec::new();
                for d in &got {
                    records.push((text(d), d.redelivered()));
                }
                ack_promptly(&queue, got).await;
                seen.lock().expect("seen").extend(records);
            }
        }));
    }
    for task in publishers.into_iter().chain(consumers) {
        task.await.expect("task");
    }

    let seen = seen.lock().expect("seen").clone();
    let counts = tally(seen.iter().map(|(p, _)| p.clone()));
    let invented: Vec<_> = counts.keys().filter(|p| !expected.contains(*p)).collect();
    let lost: Vec<_> = expected
        .iter()
        .filter(|p| !counts.contains_key(*p))
        .take(5)
        .collect();
    assert!(
        invented.is_empty(),
        "messages nobody published arrived: {invented:?}"
    );
    assert!(
        lost.is_empty(),
        "{} messages lost, e.g. {lost:?}",
        total - counts.len()
    );
    // At-least-once allows a repeat, but only as a redelivery, never as a fresh copy.
    let mut first = HashSet::new();
    for (payload, redelivered) in &seen {
        if !first.insert(payload) {
            assert!(
                redelivered,
                "{payload} arrived twice without being marked redelivered"
            );
        }
    }
    Ok(())
}

pub(super) async fn missing_queue_is_a_typed_error(ctx: Ctx) -> Result<(), Skip> {
    let name = ctx
        .harness
        .queue_name(&format!("ct-missing-{}", uuid::Uuid::new_v4().simple()));
    let err = ctx
        .broker
        .publish(&name, &[Message::new("x")])
        .await
        .expect_err("publish fails");
    assert_eq!(err.kind(), ErrorKind::QueueNotFound, "{err}");
    let err = ctx
        .broker
        .receive_up_to(&name, &Capacity::fixed(1), Duration::from_millis(100))
        .await
        .expect_err("fails");
    assert_eq!(err.kind(), ErrorKind::QueueNotFound, "{err}");
    assert!(
        err.to_string().contains(ctx.caps().backend),
        "the error names the backend: {err}"
    );
    Ok(())
}

pub(super) async fn closed_broker_gives_closed_errors(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let connection = ctx.connect().await;
    connection.close().await.expect("close");
    let err = connection
        .publish(queue.name(), &[Message::new("x")])
        .await
        .expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    let err = connection
        .receive_up_to(queue.name(), &Capacity::fixed(1), Duration::ZERO)
        .await
        .expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    assert!(!err.is_retryable());
    queue
        .publish(Message::new("still works"))
        .await
        .expect("other connections are unaffected");
    Ok(())
}
