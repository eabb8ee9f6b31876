//! What brings unsettled work back: nacks, leases, disconnects, dead-lettering.

use std::time::Duration;

use broker_core::{
    Capabilities, DEAD_LETTER_REASON_HEADER, DeadLetter, Delivery, ErrorKind, Message, NackAction,
    Queue,
};
use tokio::time::Instant;

use super::{Ctx, Skip, receive_at_least, text};

async fn one(queue: &Queue, within: Duration) -> Option<Delivery> {
    receive_at_least(queue, 1, within).await.into_iter().next()
}

/// Receives the message `id` again within `within`, marked redelivered; `what` says why it
/// should be back.
async fn comes_back(queue: &Queue, id: &str, within: Duration, what: &str) -> Delivery {
    let back = one(queue, within).await.expect(what);
    assert_eq!(back.id(), id, "{what}: another message came");
    assert!(back.redelivered(), "{what}: not marked redelivered");
    back
}

fn lease(caps: &Capabilities, ctx: &Ctx) -> Duration {
    match caps.redelivery {
        broker_core::Redelivery::Lease { default_lease, .. } => default_lease,
        broker_core::Redelivery::OnDisconnect => ctx.settings.lease,
    }
}

pub(super) async fn nack_requeues_the_delivery(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    queue.publish(Message::new("again")).await.expect("publish");
    let first = one(&queue, Duration::from_secs(10))
        .await
        .expect("delivered");
    let id = first.id().to_owned();
    first.nack(NackAction::Requeue).await.expect("nack");

    let second = comes_back(&queue, &id, Duration::from_secs(10), "requeued at once").await;
    assert_eq!(text(&second), "again");
    assert_eq!(second.receive_count(), 2);
    second.ack().await.expect("ack");
    Ok(())
}

pub(super) async fn nack_with_delay_is_not_redelivered_before_the_delay(
    ctx: Ctx,
) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let delay = super::DELAY;
    queue.publish(Message::new("later")).await.expect("publish");
    let first = one(&queue, Duration::from_secs(10))
        .await
        .expect("delivered");
    let nacked_at = Instant::now();
    first
        .nack(NackAction::RequeueAfter(delay))
        .await
        .expect("nack with delay");

    let early = queue
        .receive(1, Duration::from_secs(1))
        .await
        .expect("receive");
    assert!(early.is_empty(), "redelivered before its delay");
    let second = one(&queue, Duration::from_secs(10))
        .await
        .expect("redelivered after the delay");
    assert!(
        nacked_at.elapsed() >= delay,
        "redelivered after {:?}",
        nacked_at.elapsed()
    );
    assert!(second.redelivered());
    second.ack().await.expect("ack");
    Ok(())
}

pub(super) async fn unacked_delivery_returns_after_its_lease(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let lease = lease(ctx.caps(), &ctx);
    queue
        .publish(Message::new("forgotten"))
        .await
        .expect("publish");
    let before_receipt = Instant::now();
    let first = one(&queue, Duration::from_secs(10))
        .await
        .expect("delivered");
    let id = first.id().to_owned();
    drop(first); // a consumer that never settles

    let other = Queue::new(ctx.connect().await, queue.name().to_owned());
    let hidden = other.receive(1, lease / 4).await.expect("receive");
    assert!(hidden.is_empty(), "visible to others while leased");
    let back = one(&other, lease + Duration::from_secs(10))
        .await
        .expect("back after its lease");
    assert!(
        before_receipt.elapsed() >= lease,
        "back after {:?}",
        before_receipt.elapsed()
    );
    assert_eq!(back.id(), id);
    assert!(back.redelivered());
    assert_eq!(back.receive_count(), 2);
    back.ack().await.expect("the new holder can ack");
    Ok(())
}

/// Asserts that settling with `delivery`'s token fails with `LeaseLost`, by ack and by nack.
async fn assert_settles_nothing(delivery: Delivery) {
    let refused = delivery.ack().await.expect_err("an old token cannot ack");
    assert_eq!(
        refused.error.kind(),
        ErrorKind::LeaseLost,
        "{}",
        refused.error
    );
    let refused = refused
        .delivery
        .nack(NackAction::Requeue)
        .await
        .expect_err("an old token cannot nack");
    assert_eq!(
        refused.error.kind(),
        ErrorKind::LeaseLost,
        "{}",
        refused.error
    );
}

pub(super) async fn old_token_of_a_redelivered_message_settles_nothing(
    ctx: Ctx,
) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let lease = lease(ctx.caps(), &ctx);
    queue.publish(Message::new("slow")).await.expect("publish");
    let slow = one(&queue, Duration::from_secs(10))
        .await
        .expect("delivered");
    let why = "back after the lease";
    let second = comes_back(&queue, slow.id(), lease + Duration::from_secs(10), why).await;

    assert_settles_nothing(slow).await;
    let still_hidden = queue.receive(1, lease / 4).await.expect("receive");
    assert!(
        still_hidden.is_empty(),
        "the old token's nack handed the message out again"
    );
    second.ack().await.expect("the new holder settles it");
    let gone = queue.receive(1, lease / 4).await.expect("receive");
    assert!(gone.is_empty(), "acked by its new holder, yet back");
    Ok(())
}

pub(super) async fn ack_after_the_lease_ended_is_lease_lost(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let lease = lease(ctx.caps(), &ctx);
    queue.publish(Message::new("late")).await.expect("publish");
    let late = one(&queue, Duration::from_secs(10))
        .await
        .expect("delivered");
    let id = late.id().to_owned();
    tokio::time::sleep(lease + Duration::from_millis(500)).await;

    assert_settles_nothing(late).await;
    let why = "a message whose ack came too late comes back";
    let back = comes_back(&queue, &id, Duration::from_secs(10), why).await;
    back.ack().await.expect("ack");
    Ok(())
}

pub(super) async fn unacked_delivery_returns_when_its_consumer_disconnects(
    ctx: Ctx,
) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    queue
        .publish(Message::new("orphan"))
        .await
        .expect("publish");
    let connection = ctx.connect().await;
    let doomed = Queue::new(connection.clone(), queue.name().to_owned());
    let first = one(&doomed, Duration::from_secs(10))
        .await
        .expect("delivered");
    let id = first.id().to_owned();
    connection.close().await.expect("close");

    let why = "back after the disconnect";
    let back = comes_back(&queue, &id, Duration::from_secs(15), why).await;
    back.ack().await.expect("ack");
    Ok(())
}

pub(super) async fn extended_lease_keeps_the_delivery_hidden(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let lease = lease(ctx.caps(), &ctx);
    queue
        .publish(Message::new("slow work"))
        .await
        .expect("publish");
    let received_at = Instant::now();
    let held = one(&queue, Duration::from_secs(10))
        .await
        .expect("delivered");
    tokio::time::sleep(lease / 2).await;
    held.extend_lease(lease * 3).await.expect("extend");

    let other = Queue::new(ctx.connect().await, queue.name().to_owned());
    let until = received_at + lease * 2;
    let seen = other
        .receive(1, until.saturating_duration_since(Instant::now()))
        .await
        .expect("receive");
    assert!(
        seen.is_empty(),
        "handed out again before the extended lease ended"
    );
    held.ack()
        .await
        .expect("still ours to ack after the original lease");
    let after = other.receive(1, lease * 3).await.expect("receive");
    assert!(after.is_empty(), "acked work never comes back");
    Ok(())
}

pub(super) async fn dead_letter_after_max_receives(ctx: Ctx) -> Result<(), Skip> {
    let DeadLetter::Queue { max_receives } = ctx.caps().dead_letter else {
        panic!("the gate admits only backends that declare a dead-letter queue");
    };
    let queue = ctx.queue().await;
    queue
        .publish(Message::new("poison"))
        .await
        .expect("publish");
    for attempt in 1..=max_receives {
        let delivery = one(&queue, Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("receive {attempt} of {max_receives}"));
        assert_eq!(delivery.receive_count(), attempt);
        delivery.nack(NackAction::Requeue).await.expect("nack");
    }
    let beyond = queue
        .receive(1, Duration::from_secs(2))
        .await
        .expect("receive");
    assert!(
        beyond.is_empty(),
        "handed out more than {max_receives} times"
    );

    let dlq_name = ctx
        .broker
        .dead_letter_queue(queue.name())
        .expect("a dead-letter queue");
    let dlq = Queue::new(ctx.broker.clone(), dlq_name);
    let dead = one(&dlq, Duration::from_secs(15))
        .await
        .expect("in the dead-letter queue");
    assert_eq!(text(&dead), "poison");
    dead.ack().await.expect("ack");
    Ok(())
}

pub(super) async fn nack_to_dead_letter_keeps_the_reason(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    queue
        .publish(Message::new("{not json").header("client", "bob"))
        .await
        .expect("publish");
    let delivery = one(&queue, Duration::from_secs(10))
        .await
        .expect("delivered");
    let reason = "body is not valid JSON".to_owned();
    delivery
        .nack(NackAction::DeadLetter {
            reason: reason.clone(),
        })
        .await
        .expect("nack");

    let gone = queue
        .receive(1, Duration::from_secs(1))
        .await
        .expect("receive");
    assert!(gone.is_empty(), "a dead-lettered message leaves its queue");
    let dlq_name = ctx
        .broker
        .dead_letter_queue(queue.name())
        .expect("a dead-letter queue");
    let dlq = Queue::new(ctx.broker.clone(), dlq_name);
    let dead = one(&dlq, Duration::from_secs(10))
        .await
        .expect("in the dead-letter queue");
    assert_eq!(text(&dead), "{not json");
    assert_eq!(dead.header_str("client"), Some("bob"), "headers are kept");
    assert_eq!(
        dead.header_str(DEAD_LETTER_REASON_HEADER),
        Some(reason.as_str())
    );
    dead.ack().await.expect("ack");
    Ok(())
}
