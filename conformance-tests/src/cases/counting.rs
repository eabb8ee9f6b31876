//! Counting a queue's messages by state, exactly or approximately as declared.

use std::time::Duration;

use broker_core::{Counting, Message, NackAction, Queue, QueueCounts, Requirement};

use super::{Ctx, Skip, receive_at_least};

/// What a count should show: `None` where the broker may not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expected {
    ready: u64,
    in_flight: u64,
    delayed: u64,
}

impl Expected {
    /// Whether `counts` agrees: the ready count always, the others where the broker tells.
    fn agrees_with(self, counts: QueueCounts) -> bool {
        counts.ready == self.ready
            && counts.in_flight.is_none_or(|n| n == self.in_flight)
            && counts.delayed.is_none_or(|n| n == self.delayed)
    }
}

/// Counts `queue` until it agrees with `expected`: at once where counts are exact, within ten
/// seconds where they are approximate.
async fn assert_counts(queue: &Queue, expected: Expected, what: &str) {
    let settle = match queue.capabilities().counting {
        Counting::Exact => Duration::ZERO,
        Counting::Approximate | Counting::Unsupported => Duration::from_secs(10),
    };
    let deadline = tokio::time::Instant::now() + settle;
    loop {
        let counts = queue.counts().await.expect("count works");
        if expected.agrees_with(counts) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: counted {counts:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(super) async fn counts_follow_messages_through_their_states(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let caps = queue.capabilities().clone();
    let empty = Expected {
        ready: 0,
        in_flight: 0,
        delayed: 0,
    };
    assert_counts(&queue, empty, "a new queue").await;

    let messages = (0..3).map(|n| Message::new(format!("count {n}"))).collect();
    queue.publish_batch(messages).await.expect("publish");
    let delays = caps.satisfies(Requirement::Delay(Duration::from_secs(60)));
    if delays {
        let later = Message::new("later").delay(Duration::from_secs(60));
        queue.publish(later).await.expect("publish delayed");
    }
    let delayed = u64::from(delays);
    let ready = Expected {
        ready: 3,
        delayed,
        ..empty
    };
    assert_counts(&queue, ready, "three published").await;

    // A consumer of its own, closed once it settled: a backend that pushes messages to a
    // connection (AMQP's prefetch) counts those pushed as in flight until it closes.
    let consumer = ctx.connect().await;
    let consuming = Queue::new(consumer.clone(), queue.name());
    let held = receive_at_least(&consuming, 1, Duration::from_secs(10))
        .await
        .pop()
        .expect("a delivery");
    let one_held = Expected {
        ready: 2,
        in_flight: 1,
        delayed,
    };
    assert_counts(&queue, one_held, "one received").await;

    if caps.satisfies(Requirement::DeadLetter) {
        let reason = "counted".to_owned();
        held.nack(NackAction::DeadLetter { reason })
            .await
            .expect("dead-letter");
        let dlq_name = ctx
            .broker
            .dead_letter_queue(queue.name())
            .expect("a dead-letter queue");
        let dlq = Queue::new(ctx.broker.clone(), dlq_name);
        assert_counts(&dlq, Expected { ready: 1, ..empty }, "one dead letter").await;
    } else {
        held.ack().await.expect("ack");
    }
    consumer.close().await.expect("close the consumer");
    let settled = Expected {
        ready: 2,
        delayed,
        ..empty
    };
    assert_counts(&queue, settled, "the received one settled").await;
    Ok(())
}
