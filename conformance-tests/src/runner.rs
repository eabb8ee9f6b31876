//! Runs one case: opens the broker, applies the case's gate, reports skips.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use broker_core::{Broker, Queue};

use crate::{
    FAULTS, Harness, Settings,
    cases::{Case, Ctx, find, worker_process},
};

/// The variable that makes the test binary act as a child consumer; it names the queue.
pub const CHILD_ENV: &str = "CONFORMANCE_CHILD_QUEUE";
/// The variable that makes the test binary act as a worker process of the fault suite; it
/// names the queue.
pub const WORKER_CHILD_ENV: &str = "CONFORMANCE_CHILD_WORKER_QUEUE";
/// The variable that carries the parent harness's [`Harness::child_locator`] to the child.
pub const CHILD_LOCATOR_ENV: &str = "CONFORMANCE_CHILD_LOCATOR";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// Checks that `tests` (the tests [`suite!`](crate::suite) or [`faults!`](crate::faults)
/// made) are exactly the cases of `table` ([`CASES`](crate::CASES) or [`FAULTS`]).
///
/// # Panics
/// Naming the cases without a test and the tests without a case.
pub fn assert_covers(table: &[Case], tests: &[&str]) {
    let untested: Vec<&str> = table
        .iter()
        .map(|c| c.name)
        .filter(|name| !tests.contains(name))
        .collect();
    let unknown: Vec<&&str> = tests
        .iter()
        .filter(|name| !table.iter().any(|c| c.name == **name))
        .collect();
    assert!(
        untested.is_empty() && unknown.is_empty(),
        "cases without a test: {untested:?}; tests without a case: {unknown:?}"
    );
}

/// Runs the case called `name` against the harness `make` builds; `module` is the test module
/// the [`suite!`](crate::suite) macro made (the crash case re-runs it as a child process).
///
/// # Panics
/// When the case fails, or when `name` is not a case.
pub fn run_case<H: Harness>(module: &'static str, name: &str, make: impl FnOnce() -> H) {
    let case = find(name).unwrap_or_else(|| panic!("no conformance or fault case named {name}"));
    let settings = if FAULTS.iter().any(|c| c.name == name) {
        Settings::FAULTS
    } else {
        Settings::default()
    };
    runtime().block_on(async {
        let harness: Arc<dyn Harness> = Arc::new(make());
        let broker = match harness.broker(settings).await {
            Ok(broker) => broker,
            Err(unavailable) => return unavailable.skip(name),
        };
        let gate = case.gate.check(broker.capabilities(), &harness.features());
        if let Err(skip) = gate {
            return skip.report(name);
        }
        let ctx = Ctx::new(harness, broker, settings, name, module);
        let cleanup = ctx.clone();
        match (case.run)(ctx).await {
            Ok(()) => cleanup.cleanup().await,
            Err(skip) => skip.report(name),
        }
    });
}

/// The child side of the crash case: when [`CHILD_ENV`] names a queue, receives one delivery
/// from it, prints `RECEIVED <id>` and then hangs until it is killed. Does nothing otherwise.
///
/// # Panics
/// When the broker cannot be opened or nothing arrives within 30 s.
pub fn run_child<H: Harness>(make: impl FnOnce() -> H) {
    let Ok(queue) = std::env::var(CHILD_ENV) else {
        return;
    };
    runtime().block_on(async {
        let harness = make();
        let broker: Arc<dyn Broker> = harness
            .broker(Settings::default())
            .await
            .unwrap_or_else(|unavailable| panic!("child cannot open the broker: {unavailable}"));
        let queue = Queue::new(broker, queue);
        let delivery = queue
            .receive_one(Duration::from_secs(30))
            .await
            .expect("child receive works")
            .expect("the parent published a message");
        // libtest has printed `test <name> ... ` without a line break: start a fresh line.
        println!("\nRECEIVED {}", delivery.id());
        let _ = std::io::stdout().flush();
        // Hold the delivery (never ack) until the parent kills this process.
        let held = Mutex::new(Some(delivery));
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(held);
    });
}

/// The worker process of the fault suite: when [`WORKER_CHILD_ENV`] names a queue, runs the
/// real worker runtime on it with the fault runs' task, which prints `RAN <n>` for each task
/// it runs (before its ack), until SIGTERM (a graceful stop) or SIGKILL. Does nothing
/// otherwise.
///
/// # Panics
/// When the broker cannot be opened or the worker ends with an error.
pub fn run_worker_child<H: Harness>(make: impl FnOnce() -> H) {
    let Ok(queue) = std::env::var(WORKER_CHILD_ENV) else {
        return;
    };
    runtime().block_on(async {
        let harness = make();
        let broker: Arc<dyn Broker> = harness
            .broker(Settings::FAULTS)
            .await
            .unwrap_or_else(|unavailable| panic!("worker cannot open the broker: {unavailable}"));
        // libtest has printed `test <name> ... ` without a line break: start a fresh line.
        println!();
        worker_process(Queue::new(broker, queue))
            .run_until_signal()
            .await
            .expect("the worker ends cleanly");
    });
}
