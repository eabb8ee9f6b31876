//! The declared limits: every backend splits, clamps or refuses the same input the same way,
//! because `Queue` and `Delivery` check them once above the drivers.

use std::time::Duration;

use broker_core::{Delay, ErrorKind, Message, NackAction, Queue, Requirement};

use super::{Ctx, DELAY, Skip, receive_at_least, text};

/// A second past `max`: the smallest excess the limits must catch.
fn just_over(max: Duration) -> Duration {
    max.saturating_add(Duration::from_secs(1))
}

fn max_delay(ctx: &Ctx) -> Result<Duration, Skip> {
    match ctx.caps().delay {
        Delay::UpTo { max } => Ok(max),
        Delay::Unsupported => Err(Skip::NotDeclared {
            backend: ctx.caps().backend,
            missing: vec![Requirement::Delay(DELAY)],
        }),
    }
}

pub(super) async fn publish_batch_over_the_limit_is_split_and_every_message_arrives(
    ctx: Ctx,
) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let limit = ctx.caps().max_batch.min(500);
    let count = limit * 2 + 1;
    let messages: Vec<Message> = (0..count).map(|n| Message::new(format!("m{n}"))).collect();
    queue
        .publish_batch(messages)
        .await
        .expect("a batch over the limit is split, not refused");
    let got = receive_at_least(&queue, count, Duration::from_secs(30)).await;
    assert_eq!(got.len(), count, "every message of the split batch arrives");
    queue.ack_all(got).await.expect("acks are split too");
    Ok(())
}

pub(super) async fn receive_asking_for_more_than_the_limit_gets_at_most_the_limit(
    ctx: Ctx,
) -> Result<(), Skip> {
    let max_batch = ctx.caps().max_batch;
    let queue = ctx.queue().await;
    let messages: Vec<Message> = (0..=max_batch)
        .map(|n| Message::new(format!("m{n}")))
        .collect();
    queue.publish_batch(messages).await.expect("publish");
    let got = queue
        .receive(max_batch + 1, Duration::from_secs(5))
        .await
        .expect("asking for more than the limit is not an error");
    assert!(!got.is_empty(), "the waiting messages are received");
    assert!(
        got.len() <= max_batch,
        "{} deliveries at once; the limit is {max_batch}",
        got.len()
    );
    queue.ack_all(got).await.expect("ack");
    Ok(())
}

pub(super) async fn publish_delay_over_the_maximum_is_refused_before_anything_is_sent(
    ctx: Ctx,
) -> Result<(), Skip> {
    let max = max_delay(&ctx)?;
    let queue = ctx.queue().await;
    let batch = vec![
        Message::new("in time"),
        Message::new("too late").delay(just_over(max)),
    ];
    let err = queue
        .publish_batch(batch)
        .await
        .expect_err("a delay over the maximum is refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.backend(), Some(ctx.caps().backend));
    assert!(
        err.detail().starts_with("message 1 asks for a delay"),
        "{err}"
    );
    let leaked = queue
        .receive(10, Duration::from_millis(500))
        .await
        .expect("receive");
    assert!(leaked.is_empty(), "nothing of a refused batch is sent");
    Ok(())
}

pub(super) async fn nack_delay_over_the_maximum_is_refused_and_the_delivery_kept(
    ctx: Ctx,
) -> Result<(), Skip> {
    let max = max_delay(&ctx)?;
    let queue = ctx.queue().await;
    queue.publish(Message::new("work")).await.expect("publish");
    let delivery = queue
        .receive_one(Duration::from_secs(5))
        .await
        .expect("receive")
        .expect("delivered");
    let refused = delivery
        .nack(NackAction::RequeueAfter(just_over(max)))
        .await
        .expect_err("a nack delay over the maximum is refused");
    assert_eq!(
        refused.error.kind(),
        ErrorKind::InvalidInput,
        "{}",
        refused.error
    );
    assert_eq!(refused.error.backend(), Some(ctx.caps().backend));
    refused
        .delivery
        .nack(NackAction::Requeue)
        .await
        .expect("the delivery is still held and can be nacked within the limits");
    let again = queue
        .receive_one(Duration::from_secs(5))
        .await
        .expect("receive")
        .expect("requeued");
    assert_eq!(text(&again), "work");
    again.ack().await.expect("ack");
    Ok(())
}

pub(super) async fn lease_extension_over_the_maximum_is_refused_and_the_lease_kept(
    ctx: Ctx,
) -> Result<(), Skip> {
    let max = ctx
        .caps()
        .max_lease()
        .expect("the gate requires lease extension");
    let queue = ctx.queue().await;
    queue.publish(Message::new("slow")).await.expect("publish");
    let delivery = queue
        .receive_one(Duration::from_secs(5))
        .await
        .expect("receive")
        .expect("delivered");
    let err = delivery
        .extend_lease(just_over(max))
        .await
        .expect_err("an extension over the maximum is refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.backend(), Some(ctx.caps().backend));
    let err = delivery
        .extend_lease(Duration::MAX)
        .await
        .expect_err("an extension past any clock is refused, not a panic");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    delivery
        .extend_lease(max)
        .await
        .expect("the maximum itself is accepted");
    delivery.ack().await.expect("the lease is still held");
    Ok(())
}

pub(super) async fn dead_letter_queue_has_none_of_its_own(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let dlq_name = ctx
        .broker
        .dead_letter_queue(queue.name())
        .expect("a queue has a dead-letter queue");
    assert_eq!(
        ctx.broker.dead_letter_queue(&dlq_name),
        None,
        "dead letters end in `{dlq_name}`"
    );
    queue
        .publish(Message::new("poison"))
        .await
        .expect("publish");
    let delivery = queue
        .receive_one(Duration::from_secs(5))
        .await
        .expect("receive")
        .expect("delivered");
    delivery
        .nack(NackAction::DeadLetter {
            reason: "poison".into(),
        })
        .await
        .expect("dead-lettered");

    let dlq = Queue::new(ctx.broker.clone(), dlq_name);
    let dead = dlq
        .receive_one(Duration::from_secs(10))
        .await
        .expect("receive")
        .expect("in the dead-letter queue");
    let refused = dead
        .nack(NackAction::DeadLetter {
            reason: "still poison".into(),
        })
        .await
        .expect_err("nowhere further to go");
    assert_eq!(
        refused.error.kind(),
        ErrorKind::Unsupported,
        "{}",
        refused.error
    );
    assert_eq!(text(&refused.delivery), "poison");
    refused
        .delivery
        .ack()
        .await
        .expect("the refused delivery is still held");
    Ok(())
}
