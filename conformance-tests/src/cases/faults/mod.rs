//! The fault suite: tasks run through the real worker runtime while workers are killed,
//! connections cut and brokers restarted, and poison arrives. Every run ends with a ledger of
//! how often each task ran: a task that never ran is lost (the run fails), one that ran more
//! than once is a duplicate (counted and reported, which at-least-once allows).

pub(super) mod connection_cut;
pub(super) mod poison;
pub(super) mod restart;
pub(super) mod worker_kill;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use broker_core::{
    ErrorKind, Queue, ResultStore,
    celery::TaskMessage,
    tasks::{send_task, task_to_message},
    worker::{TaskRegistry, TaskRequest, Worker, WorkerOptions, WorkerReport},
};
use serde_json::{Map, json};
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{Ctx, worker::States};

/// The producer's pace in the runs with a producer: 3,000 tasks take 15 s.
const SEND_EVERY: Duration = Duration::from_millis(5);

/// The task every fault run sends: it records its one argument, the task's number.
const RECORD_TASK: &str = "fault.record";

/// The variable that multiplies the number of tasks of each fault run (default 1): CI runs
/// the bounded runs, `BROKER_TEST_SOAK=10` a long soak.
pub const SOAK_ENV: &str = "BROKER_TEST_SOAK";

/// `base` tasks, times [`SOAK_ENV`].
fn scaled(base: usize) -> usize {
    scale(base, std::env::var(SOAK_ENV).ok().as_deref())
}

/// `base` times `factor`, a whole number of at least 1 (anything else counts as 1).
fn scale(base: usize, factor: Option<&str>) -> usize {
    let factor = factor
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(1);
    base * factor.max(1)
}

/// The number task `n` carries, if the request is a fault run's task.
fn task_number(request: &TaskRequest) -> Option<usize> {
    request
        .args
        .first()?
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
}

/// The worker options of every fault run: eight tasks at a time, as a production worker.
fn worker_options() -> WorkerOptions {
    WorkerOptions {
        concurrency: 8,
        prefetch: 8,
        poll_wait: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(10),
        ..WorkerOptions::default()
    }
}

/// The worker of a fault suite's worker process (see
/// [`run_worker_child`](crate::run_worker_child)): it prints `RAN <n>` as each task runs.
pub(crate) fn worker_process(queue: Queue) -> Worker {
    let tasks = TaskRegistry::new().register(RECORD_TASK, |request: TaskRequest| async move {
        if let Some(n) = task_number(&request) {
            // One line per call, flushed by the line: a kill loses no whole line.
            println!("RAN {n}");
        }
        Ok(json!(null))
    });
    Worker::new(queue, Arc::new(States::default()), tasks).with_options(worker_options())
}

/// How many times each numbered task ran.
#[derive(Debug)]
struct Ledger {
    runs: Mutex<Vec<u32>>,
}

impl Ledger {
    fn new(tasks: usize) -> Arc<Self> {
        Arc::new(Self {
            runs: Mutex::new(vec![0; tasks]),
        })
    }

    fn record(&self, n: usize) {
        let mut runs = self.runs.lock().expect("ledger");
        if let Some(count) = runs.get_mut(n) {
            *count += 1;
        }
    }

    /// Tasks that ran at least once.
    fn ran(&self) -> usize {
        self.runs
            .lock()
            .expect("ledger")
            .iter()
            .filter(|c| **c > 0)
            .count()
    }

    fn all_ran(&self) -> bool {
        self.runs.lock().expect("ledger").iter().all(|c| *c > 0)
    }

    /// A worker's tasks, recording into this ledger.
    fn tasks(self: &Arc<Self>) -> TaskRegistry {
        let ledger = self.clone();
        TaskRegistry::new().register(RECORD_TASK, move |request: TaskRequest| {
            let ledger = ledger.clone();
            async move {
                if let Some(n) = task_number(&request) {
                    ledger.record(n);
                }
                Ok(json!(null))
            }
        })
    }

    /// Waits until every task ran, or `within` passed.
    async fn wait_all_ran(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while !self.all_ran() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// The run's figures; fails the case when a task never ran.
    fn finish(&self, ctx: &Ctx, fault: &str, detail: &str) -> Tally {
        let runs = self.runs.lock().expect("ledger");
        let lost: Vec<usize> = (0..runs.len()).filter(|n| runs[*n] == 0).collect();
        let duplicated: u64 = runs.iter().map(|c| u64::from(c.saturating_sub(1))).sum();
        let tally = Tally {
            tasks: runs.len(),
            lost: lost.len(),
            duplicated,
        };
        // The README's reliability table is made from these lines.
        println!(
            "\nFAULT RUN {} {}/{fault}: {} tasks, {} lost, {} duplicated; {detail}",
            ctx.caps().backend,
            ctx.module,
            tally.tasks,
            tally.lost,
            tally.duplicated,
        );
        assert!(
            lost.is_empty(),
            "{} of {} tasks never ran (the first: {:?})",
            lost.len(),
            runs.len(),
            &lost[..lost.len().min(10)]
        );
        tally
    }
}

/// What a fault run did.
#[derive(Debug, Clone, Copy)]
struct Tally {
    tasks: usize,
    lost: usize,
    duplicated: u64,
}

/// The numbered task messages `range`.
fn numbered(range: std::ops::Range<usize>) -> impl Iterator<Item = TaskMessage> {
    range.map(|n| TaskMessage::new(RECORD_TASK, vec![json!(n)], Map::new()))
}

/// Publishes tasks `0..tasks` in batches, before any worker runs.
async fn publish_all(queue: &Queue, tasks: usize) {
    let delay = queue.capabilities().delay;
    let messages: Vec<_> = numbered(0..tasks)
        .map(|task| task_to_message(&task, delay).expect("a task encodes"))
        .collect();
    for chunk in messages.chunks(500) {
        queue
            .publish_batch(chunk.to_vec())
            .await
            .expect("publish the tasks");
    }
}

/// Sends tasks `0..tasks` one by one, one every [`SEND_EVERY`] (so sends go on while the
/// faults happen). A send that fails after the queue's own retries is sent again until it
/// succeeds: the producer never gives up on a task, and a send that failed after the broker
/// took it becomes a duplicate. Returns how many sends were repeated.
fn produce(queue: Queue, tasks: usize) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let mut repeated = 0;
        let mut pace = tokio::time::interval(SEND_EVERY);
        for task in numbered(0..tasks) {
            pace.tick().await;
            while let Err(err) = send_task(&queue, &task).await {
                assert!(
                    err.is_retryable(),
                    "only retryable errors are expected while faults happen: {err}"
                );
                repeated += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        repeated
    })
}

/// A producer sending tasks one by one and a worker running them, while a fault happens.
struct Load {
    ledger: Arc<Ledger>,
    tasks: usize,
    stop: CancellationToken,
    worker: JoinHandle<broker_core::Result<WorkerReport>>,
    sending: JoinHandle<u64>,
    started: Instant,
}

impl Load {
    /// Starts sending `tasks` tasks through `producer` and running them from `consumer`.
    fn start(producer: Queue, consumer: Queue, tasks: usize) -> Self {
        let ledger = Ledger::new(tasks);
        let stop = CancellationToken::new();
        Self {
            worker: run_worker(consumer, &ledger, stop.clone()),
            sending: produce(producer, tasks),
            ledger,
            tasks,
            stop,
            started: Instant::now(),
        }
    }

    /// After the fault: waits for every send and every task, stops the worker, and settles
    /// `queue` (see [`settle`]). Fails the case when a task never ran or was dead-lettered;
    /// prints the run's figures with `detail`.
    async fn finish(self, ctx: &Ctx, fault: &str, queue: &Queue, detail: &str) {
        let repeated_sends = tokio::time::timeout(Duration::from_secs(180), self.sending)
            .await
            .expect("the producer sends every task within 180 s of the fault")
            .expect("the producer");
        assert!(
            self.ledger.wait_all_ran(Duration::from_secs(120)).await,
            "{} of {} tasks ran within 120 s after the last send",
            self.ledger.ran(),
            self.tasks
        );
        let report = stop_worker(self.stop, self.worker).await;
        let came_back = settle(
            queue,
            &self.ledger,
            ctx.settings.lease + Duration::from_secs(10),
        )
        .await;
        self.ledger.finish(
            ctx,
            fault,
            &format!(
                "{detail}, {repeated_sends} sends repeated, {came_back} settled after the run, \
                 {:.0} s",
                self.started.elapsed().as_secs_f64()
            ),
        );
        assert_eq!(
            report.dead_lettered, 0,
            "no task was dead-lettered: {report:?}"
        );
    }
}

/// A worker of the fault runs on `queue`, recording into `ledger`, until `stop`.
fn run_worker(
    queue: Queue,
    ledger: &Arc<Ledger>,
    stop: CancellationToken,
) -> JoinHandle<broker_core::Result<WorkerReport>> {
    let results: Arc<dyn ResultStore> = Arc::new(States::default());
    let worker = Worker::new(queue, results, ledger.tasks()).with_options(worker_options());
    tokio::spawn(worker.run(stop))
}

/// Stops a worker and returns its report.
async fn stop_worker(
    stop: CancellationToken,
    worker: JoinHandle<broker_core::Result<WorkerReport>>,
) -> WorkerReport {
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(60), worker)
        .await
        .expect("the worker stops within 60 s")
        .expect("the worker task")
        .expect("the worker ends without an error")
}

/// After a run: takes back what comes back to `queue` (deliveries whose ack died with a worker
/// or a connection) until it stays empty for `quiet`, and runs them as a worker would. Each
/// such task ran before, so it counts as a duplicate; nothing may be left in flight. Returns
/// how many came back.
async fn settle(queue: &Queue, ledger: &Ledger, quiet: Duration) -> usize {
    let mut came_back = 0;
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < quiet {
        let got = match queue.receive(10, Duration::from_secs(1)).await {
            Ok(got) => got,
            Err(err) if err.kind() == ErrorKind::Closed => panic!("settling: {err}"),
            Err(_) => continue,
        };
        if got.is_empty() {
            continue;
        }
        quiet_since = Instant::now();
        came_back += got.len();
        for delivery in &got {
            if let Ok(task) = broker_core::tasks::task_from_delivery(delivery)
                && let Some(n) = task.args.first().and_then(serde_json::Value::as_u64)
            {
                ledger.record(usize::try_from(n).expect("a task number"));
            }
        }
        queue.ack_all(got).await.expect("settling acks");
    }
    if queue.capabilities().counting != broker_core::Counting::Unsupported {
        let counts = queue.counts().await.expect("counts");
        assert_eq!(counts.ready, 0, "nothing is left ready after the run");
        assert!(
            counts.in_flight.unwrap_or(0) == 0,
            "nothing is left in flight after the run: {counts:?}"
        );
    }
    came_back
}

#[cfg(test)]
mod tests {
    use super::scale;

    #[test]
    fn the_soak_factor_multiplies_the_tasks_and_never_lowers_them() {
        assert_eq!(scale(3_000, None), 3_000);
        assert_eq!(scale(3_000, Some("10")), 30_000);
        assert_eq!(scale(3_000, Some(" 2 ")), 6_000);
        assert_eq!(scale(3_000, Some("0")), 3_000);
        assert_eq!(scale(3_000, Some("lots")), 3_000);
    }
}
