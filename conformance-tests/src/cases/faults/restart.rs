//! The broker restarted under a running producer and worker.

use std::time::Duration;

use broker_core::Queue;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Ledger, produce, run_worker, scaled, settle, stop_worker};
use crate::cases::{Ctx, Skip};

/// A producer sends 3,000 tasks one by one while a worker runs them; when a third has run, the
/// broker (a private server of the harness) restarts. Neither process is restarted: both
/// reconnect by themselves, every task runs (the backend declares durability, so nothing
/// accepted is lost), repeats are counted, and nothing is left in the queue or in flight.
pub(in crate::cases) async fn a_restart_mid_run_loses_no_task(ctx: Ctx) -> Result<(), Skip> {
    let tasks = scaled(3_000);
    let queue = ctx.queue().await;
    let producer = ctx.connect().await;
    let consumer = ctx.connect().await;

    let ledger = Ledger::new(tasks);
    let started = Instant::now();
    let stop = CancellationToken::new();
    let worker = run_worker(
        Queue::new(consumer, queue.name().to_owned()),
        &ledger,
        stop.clone(),
    );
    let sending = produce(Queue::new(producer, queue.name().to_owned()), tasks);
    let third = Instant::now() + Duration::from_secs(60);
    while ledger.ran() < tasks / 3 {
        assert!(Instant::now() < third, "a third of the tasks never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ran_before = ledger.ran();
    if let Err(reason) = ctx.harness.restart().await {
        panic!("restart failed: {reason}");
    }
    let repeated_sends = tokio::time::timeout(Duration::from_secs(180), sending)
        .await
        .expect("the producer sends every task within 180 s of the restart")
        .expect("the producer");
    assert!(
        ledger.wait_all_ran(Duration::from_secs(120)).await,
        "{} of {tasks} tasks ran within 120 s after the last send",
        ledger.ran()
    );
    let report = stop_worker(stop, worker).await;
    let after = Queue::new(ctx.connect().await, queue.name().to_owned());
    let came_back = settle(
        &after,
        &ledger,
        ctx.settings.lease + Duration::from_secs(10),
    )
    .await;
    ledger.finish(
        &ctx,
        "broker-restart",
        &format!(
            "restarted after {ran_before} ran, {repeated_sends} sends repeated, \
             {came_back} settled after the run, {:.0} s",
            started.elapsed().as_secs_f64()
        ),
    );
    assert_eq!(
        report.dead_lettered, 0,
        "no task was dead-lettered: {report:?}"
    );
    Ok(())
}
