//! Workers killed with SIGKILL, again and again, in the middle of their work.

use std::{process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Child,
    time::Instant,
};

use super::{Ledger, publish_all, scaled, settle};
use crate::{
    CHILD_LOCATOR_ENV, WORKER_CHILD_ENV,
    cases::{Ctx, Skip},
    child_command,
};

/// Tasks between two kills.
const KILL_EVERY: usize = 1_000;
/// The longest a worker may run nothing: a fresh worker on Kafka first waits for the group to
/// take back the partitions of the one killed before it.
const SILENCE: Duration = Duration::from_secs(60);

/// 10,000 tasks wait in a queue; a worker process (the real runtime, eight at a time) runs
/// them and is SIGKILLed after every 1,000 it ran, then started again. Every task runs; the
/// ones whose ack died with a worker run again (counted as duplicates); at the end nothing is
/// left in the queue or in flight.
pub(in crate::cases) async fn killed_workers_lose_no_task(ctx: Ctx) -> Result<(), Skip> {
    let tasks = scaled(10_000);
    let queue = ctx.queue().await;
    publish_all(&queue, tasks).await;
    let ledger = Ledger::new(tasks);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120) + Duration::from_millis(tasks as u64 * 30);
    let mut kills = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "{} of {tasks} tasks ran before the deadline, with {kills} kills",
            ledger.ran()
        );
        let mut child = spawn_worker(&ctx, queue.name());
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut ran_here = 0;
        loop {
            let line = tokio::time::timeout(SILENCE, lines.next_line()).await;
            let line = line
                .unwrap_or_else(|_| {
                    panic!("a worker ran nothing for {SILENCE:?} after {ran_here} tasks")
                })
                .expect("read the worker's output")
                .unwrap_or_else(|| {
                    panic!("a worker process ended by itself after {ran_here} tasks")
                });
            let Some(n) = ran(&line) else { continue };
            ledger.record(n);
            ran_here += 1;
            if ledger.all_ran() || ran_here >= KILL_EVERY {
                break;
            }
        }
        if ledger.all_ran() {
            // Stopped as an operator would (SIGTERM): it acks what it ran, then exits. What it
            // runs meanwhile is recorded too.
            signal_terminate(&child);
            while let Some(line) = lines.next_line().await.expect("read the worker's output") {
                if let Some(n) = ran(&line) {
                    ledger.record(n);
                }
            }
            let exited = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
            assert!(
                matches!(exited, Ok(Ok(status)) if status.success()),
                "the worker exits cleanly on SIGTERM: {exited:?}"
            );
            break;
        }
        child.start_kill().expect("SIGKILL the worker");
        child.wait().await.expect("reap the worker");
        kills += 1;
        // What it ran before it died and this process had not read yet.
        while let Some(line) = lines.next_line().await.expect("read the worker's output") {
            if let Some(n) = ran(&line) {
                ledger.record(n);
            }
        }
    }
    let came_back = settle(
        &queue,
        &ledger,
        ctx.settings.lease + Duration::from_secs(10),
    )
    .await;
    ledger.finish(
        &ctx,
        "worker-kill",
        &format!(
            "{kills} SIGKILLs, {came_back} settled after the run, {:.0} s",
            started.elapsed().as_secs_f64()
        ),
    );
    assert!(
        kills >= tasks / KILL_EVERY / 2,
        "the workers were killed only {kills} times"
    );
    Ok(())
}

/// A worker process on `queue`: this test binary again, as [`run_worker_child`]
/// (crate::run_worker_child).
fn spawn_worker(ctx: &Ctx, queue: &str) -> Child {
    let entry = format!("{}::worker_child_entry", ctx.module);
    let mut command = tokio::process::Command::from(child_command(&entry));
    command
        .env(WORKER_CHILD_ENV, queue)
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if let Some(locator) = ctx.harness.child_locator() {
        command.env(CHILD_LOCATOR_ENV, locator);
    }
    command.spawn().expect("spawn a worker process")
}

/// The task number of a worker's `RAN <n>` line.
fn ran(line: &str) -> Option<usize> {
    line.strip_prefix("RAN ")?.trim().parse().ok()
}

fn signal_terminate(child: &Child) {
    let pid = child.id().expect("a running worker has a pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "SIGTERM the worker");
}
