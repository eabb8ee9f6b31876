//! The broker restarted under a running producer and worker.

use std::time::Duration;

use broker_core::Queue;
use tokio::time::Instant;

use super::{Load, scaled};
use crate::cases::{Ctx, Skip};

/// A producer sends 3,000 tasks one by one while a worker runs them; when a third has run, the
/// broker (a private server of the harness) restarts. Neither process is restarted: both
/// reconnect by themselves, every task runs (the backend declares durability, so nothing
/// accepted is lost), repeats are counted, and nothing is left in the queue or in flight.
pub(in crate::cases) async fn a_restart_mid_run_loses_no_task(ctx: Ctx) -> Result<(), Skip> {
    let tasks = scaled(3_000);
    let queue = ctx.queue().await;
    let producer = Queue::new(ctx.connect().await, queue.name().to_owned());
    let consumer = Queue::new(ctx.connect().await, queue.name().to_owned());
    let load = Load::start(producer, consumer, tasks);
    let third = Instant::now() + Duration::from_secs(60);
    while load.ledger.ran() < tasks / 3 {
        assert!(Instant::now() < third, "a third of the tasks never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ran_before = load.ledger.ran();
    if let Err(reason) = ctx.harness.restart().await {
        panic!("restart failed: {reason}");
    }
    let after = Queue::new(ctx.connect().await, queue.name().to_owned());
    let detail = format!("restarted after {ran_before} ran");
    load.finish(&ctx, "broker-restart", &after, &detail).await;
    Ok(())
}
