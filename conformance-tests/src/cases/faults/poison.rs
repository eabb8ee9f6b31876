//! Poison: messages a worker cannot run go to the dead-letter queue with their reason, once
//! each, and the worker goes on with the work behind them.

use std::time::Duration;

use broker_core::{DEAD_LETTER_REASON_HEADER, Delivery, Message, Queue, celery::TaskMessage};
use serde_json::{Map, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Ledger, RECORD_TASK, run_worker, stop_worker};
use crate::cases::{Ctx, Skip, ack_promptly};

/// The header naming which poison a message is, so the dead-letter queue can be checked.
const KIND_HEADER: &str = "x-poison";

/// A message that carries task headers Celery would send, with `body` instead of a task body.
fn with_task_headers(kind: &str, body: impl Into<bytes::Bytes>) -> Message {
    let task = TaskMessage::new(RECORD_TASK, vec![json!(0)], Map::new());
    let mut message = broker_core::tasks::task_to_message(&task, broker_core::Delay::Unsupported)
        .expect("a task encodes");
    message.payload = body.into();
    message.header(KIND_HEADER, kind)
}

/// Every kind of poison, named.
fn poison(max_payload: usize) -> Vec<(&'static str, Message)> {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut invalid_headers = with_task_headers("invalid headers", r#"[[0], {}, {}]"#);
    invalid_headers.headers.insert("task".to_owned(), json!(42));
    invalid_headers.headers.remove("id");
    vec![
        (
            "undecodable body",
            with_task_headers("undecodable body", &b"\x00{not json"[..]),
        ),
        ("invalid headers", invalid_headers),
        (
            "JSON nested 10,000 deep",
            with_task_headers("JSON nested 10,000 deep", deep),
        ),
        (
            "non-UTF-8 text",
            with_task_headers("non-UTF-8 text", &b"[[\"\xff\xfe\xc3\x28\"], {}, {}]"[..]),
        ),
        (
            "payload at the limit plus one byte",
            with_task_headers(
                "payload at the limit plus one byte",
                vec![b' '; max_payload + 1],
            ),
        ),
    ]
}

/// Publishes poison, then one good task, to a worker. The good task runs; each poison that
/// entered the queue is dead-lettered once, with a reason, and never runs. A message over the
/// limit is published through the driver, as another producer would (the queue refuses it
/// first); where the broker itself refuses it, it never was in the queue, and the case says
/// so.
pub(in crate::cases) async fn poison_messages_are_dead_lettered_and_the_worker_goes_on(
    ctx: Ctx,
) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let dead_letter_name = ctx
        .broker
        .dead_letter_queue(queue.name())
        .expect("a backend that dead-letters names the dead-letter queue");
    let mut entered = Vec::new();
    for (kind, message) in poison(ctx.caps().max_payload) {
        // The driver directly: the queue's own limit check would refuse the oversized one.
        match ctx.broker.publish(queue.name(), &[message]).await {
            Ok(()) => entered.push(kind),
            Err(err) => {
                assert_eq!(kind, "payload at the limit plus one byte", "{kind}: {err}");
                println!(
                    "the {} broker refuses {kind} itself: {err}",
                    ctx.caps().backend
                );
            }
        }
    }
    let good = TaskMessage::new(RECORD_TASK, vec![json!(0)], Map::new());
    broker_core::tasks::send_task(&queue, &good)
        .await
        .expect("send the good task");

    let ledger = Ledger::new(1);
    let stop = CancellationToken::new();
    let worker = run_worker(queue.clone(), &ledger, stop.clone());
    assert!(
        ledger.wait_all_ran(Duration::from_secs(60)).await,
        "the good task behind the poison never ran"
    );
    let dead_letters = Queue::new(ctx.broker.clone(), dead_letter_name);
    // One at a time, each acked at once: on a FIFO queue the next of a group waits for it.
    let mut dead = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while dead.len() < entered.len() && Instant::now() < deadline {
        let got = dead_letters
            .receive(1, Duration::from_secs(1))
            .await
            .expect("receive from the dead-letter queue");
        for delivery in &got {
            let reason = delivery.header_str(DEAD_LETTER_REASON_HEADER).unwrap_or("");
            dead.push((kind_of(delivery).to_owned(), reason.to_owned()));
        }
        ack_promptly(&dead_letters, got).await;
    }
    let mut kinds: Vec<&str> = dead.iter().map(|(kind, _)| kind.as_str()).collect();
    kinds.sort_unstable();
    entered.sort_unstable();
    assert_eq!(kinds, entered, "each poison is dead-lettered once");
    for (kind, reason) in &dead {
        assert!(
            !reason.is_empty(),
            "{kind} reached the dead-letter queue without its reason"
        );
        println!("{kind}: {reason}");
    }

    // A poison message that loops would come back to the worker meanwhile.
    tokio::time::sleep(ctx.settings.lease + Duration::from_secs(1)).await;
    let report = stop_worker(stop, worker).await;
    assert_eq!(
        report.dead_lettered,
        entered.len() as u64,
        "the worker dead-lettered each poison once: {report:?}"
    );
    assert_eq!(report.succeeded, 1, "only the good task ran: {report:?}");
    let left = queue
        .receive(1, Duration::from_secs(1))
        .await
        .expect("receive");
    assert!(left.is_empty(), "nothing is left in the queue");
    Ok(())
}

fn kind_of(delivery: &Delivery) -> &str {
    delivery.header_str(KIND_HEADER).unwrap_or("(unmarked)")
}
