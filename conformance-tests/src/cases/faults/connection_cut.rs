//! Connections dropped, stalled and cut half-way through a reply, between the clients and
//! their broker, while a producer and a worker go on.

use std::time::Duration;

use broker_core::Queue;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Ledger, produce, run_worker, scaled, settle, stop_worker};
use crate::{
    FaultProxy,
    cases::{Ctx, Skip},
};

/// How long a stall holds every byte: longer than a lease, so leases end under it.
const STALL: Duration = Duration::from_secs(3);

/// A producer sends 3,000 tasks one by one while a worker runs them, both through a fault
/// proxy that, three times over, drops every connection, stalls them all for three seconds,
/// and cuts one half-way through a reply. Both reconnect by themselves: every task runs,
/// repeats are counted, and nothing is left in the queue or in flight.
pub(in crate::cases) async fn cut_connections_lose_no_task(ctx: Ctx) -> Result<(), Skip> {
    let tasks = scaled(3_000);
    // Every connection of the case passes through the proxy (on Kafka the broker advertises
    // the proxy's address, so even connections opened from metadata do).
    let proxy = FaultProxy::start().await;
    let producer = ctx.harness.broker_through(ctx.settings, &proxy).await?;
    let consumer = ctx.harness.broker_through(ctx.settings, &proxy).await?;
    let queue = Queue::declare(producer.clone(), ctx.queue_name())
        .await
        .expect("declare a fresh queue");
    let connected = proxy.connections_accepted();

    let ledger = Ledger::new(tasks);
    let started = Instant::now();
    let stop = CancellationToken::new();
    let worker = run_worker(
        Queue::new(consumer, queue.name().to_owned()),
        &ledger,
        stop.clone(),
    );
    let sending = produce(Queue::new(producer, queue.name().to_owned()), tasks);
    let mut faults = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        proxy.drop_connections();
        tokio::time::sleep(Duration::from_millis(700)).await;
        proxy.stall(STALL);
        tokio::time::sleep(STALL + Duration::from_millis(700)).await;
        proxy.cut_next_reply();
        faults += 3;
    }
    let repeated_sends = tokio::time::timeout(Duration::from_secs(120), sending)
        .await
        .expect("the producer sends every task within 120 s after the faults")
        .expect("the producer");
    assert!(
        ledger.wait_all_ran(Duration::from_secs(120)).await,
        "{} of {tasks} tasks ran within 120 s after the last send",
        ledger.ran()
    );
    let report = stop_worker(stop, worker).await;
    let reconnects = proxy.connections_accepted() - connected;
    let after = ctx.harness.broker_through(ctx.settings, &proxy).await?;
    let after = Queue::new(after, queue.name().to_owned());
    let came_back = settle(
        &after,
        &ledger,
        ctx.settings.lease + Duration::from_secs(10),
    )
    .await;
    ledger.finish(
        &ctx,
        "connection-cut",
        &format!(
            "{faults} faults, {reconnects} reconnections, {repeated_sends} sends repeated, \
             {came_back} settled after the run, {:.0} s",
            started.elapsed().as_secs_f64()
        ),
    );
    assert!(
        reconnects > 0,
        "the clients never reconnected: the faults hit nothing"
    );
    assert_eq!(
        report.dead_lettered, 0,
        "no task was dead-lettered: {report:?}"
    );
    Ok(())
}
