//! Ordering, deduplication and delay.

use std::{collections::HashMap, sync::Arc, time::Duration};

use broker_core::{Message, Queue};
use tokio::time::Instant;

use super::{Ctx, Skip, receive_at_least, text};

/// Runs `consumers` consumers on separate connections until `total` messages were received,
/// acking each batch; returns what each consumer saw, in the order it saw it.
async fn consume_concurrently(
    ctx: &Ctx,
    queue: &Queue,
    consumers: usize,
    total: usize,
) -> Vec<Vec<String>> {
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let queue = Queue::new(ctx.connect().await, queue.name().to_owned());
        let received = received.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while received.load(std::sync::atomic::Ordering::SeqCst) < total
                && Instant::now() < deadline
            {
                let got = queue
                    .receive(10, Duration::from_millis(200))
                    .await
                    .expect("receive");
                received.fetch_add(got.len(), std::sync::atomic::Ordering::SeqCst);
                seen.extend(got.iter().map(text));
                queue.ack_all(got).await.expect("ack");
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.push(task.await.expect("consumer"));
    }
    all
}

fn number(payload: &str) -> u32 {
    payload
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("numbered payload")
}

pub(super) async fn order_is_kept_per_queue_under_concurrent_consumers(
    ctx: Ctx,
) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let total = 400;
    let messages: Vec<Message> = (0..total).map(|n| Message::new(format!("m-{n}"))).collect();
    queue.publish_batch(messages).await.expect("publish");

    let seen = consume_concurrently(&ctx, &queue, 4, total).await;
    assert_eq!(
        seen.iter().map(Vec::len).sum::<usize>(),
        total,
        "every message arrives once"
    );
    for (consumer, payloads) in seen.iter().enumerate() {
        let numbers: Vec<u32> = payloads.iter().map(|p| number(p)).collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "consumer {consumer} saw the queue out of order: {numbers:?}"
        );
    }
    Ok(())
}

pub(super) async fn order_is_kept_per_key_under_concurrent_consumers(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let (keys, each) = (4, 60);
    let messages: Vec<Message> = (0..each)
        .flat_map(|n| {
            (0..keys).map(move |k| Message::new(format!("k{k}-{n}")).ordering_key(format!("k{k}")))
        })
        .collect();
    queue.publish_batch(messages).await.expect("publish");

    let seen = consume_concurrently(&ctx, &queue, 4, keys * each).await;
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for (consumer, payloads) in seen.iter().enumerate() {
        let mut last: HashMap<&str, u32> = HashMap::new();
        for payload in payloads {
            let key = payload.split('-').next().expect("key");
            let n = number(payload);
            if let Some(previous) = last.insert(key, n) {
                assert!(
                    previous < n,
                    "consumer {consumer} saw {key} out of order: {previous} then {n}"
                );
            }
            *per_key.entry(key.to_owned()).or_default() += 1;
        }
    }
    assert!(
        per_key.values().all(|&count| count >= each),
        "every message arrives: {per_key:?}"
    );
    Ok(())
}

pub(super) async fn duplicate_within_the_window_is_delivered_once(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    queue
        .publish(Message::new("first").deduplication_id("order-17"))
        .await
        .expect("publish");
    queue
        .publish(Message::new("repeat").deduplication_id("order-17"))
        .await
        .expect("publish");
    queue
        .publish(Message::new("other").deduplication_id("order-18"))
        .await
        .expect("publish");

    let got = receive_at_least(&queue, 2, Duration::from_secs(10)).await;
    let mut payloads: Vec<String> = got.iter().map(text).collect();
    payloads.sort();
    assert_eq!(payloads, ["first", "other"]);
    queue.ack_all(got).await.expect("ack");
    let extra = queue
        .receive(10, Duration::from_secs(1))
        .await
        .expect("receive");
    assert!(
        extra.is_empty(),
        "the duplicate was delivered: {:?}",
        extra.iter().map(text).collect::<Vec<_>>()
    );
    Ok(())
}

pub(super) async fn delayed_message_is_never_delivered_early(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let delay = super::DELAY;
    let published_at = Instant::now();
    queue
        .publish(Message::new("delayed").delay(delay))
        .await
        .expect("publish");
    queue.publish(Message::new("now")).await.expect("publish");

    let first = receive_at_least(&queue, 1, Duration::from_secs(5)).await;
    assert_eq!(first.iter().map(text).collect::<Vec<_>>(), ["now"]);
    queue.ack_all(first).await.expect("ack");
    let delayed = receive_at_least(&queue, 1, delay + Duration::from_secs(10)).await;
    assert_eq!(delayed.iter().map(text).collect::<Vec<_>>(), ["delayed"]);
    assert!(
        published_at.elapsed() >= delay,
        "delivered after {:?}",
        published_at.elapsed()
    );
    queue.ack_all(delayed).await.expect("ack");
    Ok(())
}
