//! What an operator does to a queue: purge it, look at its dead letters, send them home.

use std::{collections::BTreeSet, time::Duration};

use broker_core::{DEAD_LETTER_REASON_HEADER, DeadLetters, Message, NackAction};

use super::{Ctx, Skip, receive_at_least, text};

/// How long a purge or a dead-letter walk waits for the next message before it calls the queue
/// empty: long enough for a Kafka consumer to join its group.
const SETTLE: Duration = Duration::from_secs(8);

pub(super) async fn purge_removes_ready_messages_and_keeps_leased_ones(
    ctx: Ctx,
) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    // One key each: a backend that holds a key's next message while one is in flight (SQS
    // FIFO) would otherwise hold all four behind the leased one, where no receive reaches them.
    let messages = (0..5)
        .map(|n| Message::new(format!("purge {n}")).ordering_key(format!("k{n}")))
        .collect();
    queue.publish_batch(messages).await.expect("publish");
    let held = receive_at_least(&queue, 1, Duration::from_secs(10))
        .await
        .pop()
        .expect("a delivery");
    // The purge's last receive waits longer than a test lease: keep the held one leased (a
    // backend whose leases cannot be extended would hand it back, and this case would say so).
    if let Some(max) = queue.capabilities().max_lease() {
        let lease = max.min(Duration::from_secs(120));
        held.extend_lease(lease).await.expect("extend the lease");
    }

    let removed = queue.purge(SETTLE).await.expect("purge");
    assert_eq!(
        removed, 4,
        "every ready message is removed, the leased one kept"
    );
    held.ack()
        .await
        .expect("the leased message is still ours to ack");
    let left = queue
        .receive(10, Duration::from_secs(1))
        .await
        .expect("receive");
    assert!(left.is_empty(), "nothing is left: {:?}", left.len());
    Ok(())
}

pub(super) async fn dead_letters_are_listed_in_place_and_redriven_home(
    ctx: Ctx,
) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let messages = (0..3)
        .map(|n| {
            Message::new(format!("poison {n}"))
                .header("task", "calendar.export")
                .header("client", "carol")
        })
        .collect();
    queue.publish_batch(messages).await.expect("publish");
    for delivery in receive_at_least(&queue, 3, Duration::from_secs(10)).await {
        let reason = format!("rejected {}", text(&delivery));
        delivery
            .nack(NackAction::DeadLetter { reason })
            .await
            .expect("dead-letter");
    }
    let dead = DeadLetters::of(queue.clone()).expect("the queue has a dead-letter queue");

    for look in ["first", "second"] {
        let listed = dead.peek(3, SETTLE).await.expect("peek");
        let reasons: BTreeSet<_> = listed.iter().filter_map(|d| d.reason.clone()).collect();
        let expected: BTreeSet<_> = (0..3).map(|n| format!("rejected poison {n}")).collect();
        assert_eq!(
            reasons, expected,
            "{look} look: each listed with its reason"
        );
        assert!(
            listed
                .iter()
                .all(|d| d.task.as_deref() == Some("calendar.export")),
            "{look} look: {listed:?}"
        );
    }

    assert_eq!(dead.redrive(2, SETTLE).await.expect("redrive"), 2);
    assert_eq!(
        dead.redrive(10, SETTLE).await.expect("redrive the rest"),
        1,
        "a redrive stops when the dead-letter queue is empty"
    );
    let home = receive_at_least(&queue, 3, Duration::from_secs(10)).await;
    let payloads: BTreeSet<_> = home.iter().map(text).collect();
    let expected: BTreeSet<_> = (0..3).map(|n| format!("poison {n}")).collect();
    assert_eq!(payloads, expected, "every dead letter is home once");
    for delivery in &home {
        assert_eq!(delivery.header_str("client"), Some("carol"), "headers kept");
        assert_eq!(
            delivery.header_str(DEAD_LETTER_REASON_HEADER),
            None,
            "the reason stays behind"
        );
    }
    queue.ack_all(home).await.expect("ack");
    let empty = dead.peek(10, Duration::from_secs(1)).await.expect("peek");
    assert!(
        empty.is_empty(),
        "the dead-letter queue is empty: {empty:?}"
    );
    Ok(())
}
