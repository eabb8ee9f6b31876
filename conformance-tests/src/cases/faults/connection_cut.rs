//! Connections dropped, stalled and cut half-way through a reply, between the clients and
//! their broker, while a producer and a worker go on.

use std::time::Duration;

use super::{Load, scaled};
use crate::{
    FaultProxy,
    cases::{Ctx, Skip},
};
use broker_core::Queue;

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
    let load = Load::start(
        Queue::new(producer, queue.name().to_owned()),
        Queue::new(consumer, queue.name().to_owned()),
        tasks,
    );
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        proxy.drop_connections();
        tokio::time::sleep(Duration::from_millis(700)).await;
        proxy.stall(STALL);
        tokio::time::sleep(STALL + Duration::from_millis(700)).await;
        proxy.cut_next_reply();
    }
    // The last cut may still be armed if the load went quiet: the check's own connection
    // must not be the one it hits.
    tokio::time::sleep(Duration::from_millis(700)).await;
    proxy.heal();
    // Connections the clients opened again while the faults happened.
    let reconnects = proxy.connections_accepted() - connected;
    assert!(
        reconnects > 0,
        "the clients never reconnected: the faults hit nothing"
    );
    let after = ctx.harness.broker_through(ctx.settings, &proxy).await?;
    let after = Queue::new(after, queue.name().to_owned());
    let detail = format!(
        "3 drops, 3 stalls, {} replies cut, {reconnects} reconnections",
        proxy.replies_cut()
    );
    load.finish(&ctx, "connection-cut", &after, &detail).await;
    Ok(())
}
