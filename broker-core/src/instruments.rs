//! The metrics the framework records, through the [`metrics`] facade.
//!
//! Nothing is exported from here: an application installs a recorder (the TaskOverflow app
//! installs a Prometheus one) and these values flow into it; without a recorder they cost a
//! relaxed load each. Every metric carries the `backend` and `queue` labels, and the task
//! metrics the `task` name too. [`describe`] gives each its help text and unit.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `switchyard_tasks_received_total` | counter | backend, queue, task |
//! | `switchyard_tasks_succeeded_total` | counter | backend, queue, task |
//! | `switchyard_tasks_failed_total` | counter | backend, queue, task |
//! | `switchyard_tasks_retried_total` | counter | backend, queue, task |
//! | `switchyard_tasks_dead_lettered_total` | counter | backend, queue, task |
//! | `switchyard_tasks_revoked_total` | counter | backend, queue, task |
//! | `switchyard_task_run_seconds` | histogram | backend, queue, task |
//! | `switchyard_task_queue_wait_seconds` | histogram | backend, queue, task |
//! | `switchyard_tasks_in_flight` | gauge | backend, queue |
//! | `switchyard_queue_depth` | gauge | backend, queue |
//! | `switchyard_broker_call_seconds` | histogram | backend, queue, operation |
//! | `switchyard_broker_call_errors_total` | counter | backend, queue, operation, kind |

use std::{future::Future, time::Instant};

use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};

use crate::error::{Operation, Result};

/// Tasks the worker decoded and began to handle.
pub const TASKS_RECEIVED: &str = "switchyard_tasks_received_total";
/// Tasks whose handler returned a value.
pub const TASKS_SUCCEEDED: &str = "switchyard_tasks_succeeded_total";
/// Tasks recorded as failed, retries exhausted included.
pub const TASKS_FAILED: &str = "switchyard_tasks_failed_total";
/// Tasks scheduled to run again after a transient failure.
pub const TASKS_RETRIED: &str = "switchyard_tasks_retried_total";
/// Messages moved to the dead-letter place.
pub const TASKS_DEAD_LETTERED: &str = "switchyard_tasks_dead_lettered_total";
/// Tasks skipped because they expired.
pub const TASKS_REVOKED: &str = "switchyard_tasks_revoked_total";
/// How long handlers ran.
pub const TASK_RUN: &str = "switchyard_task_run_seconds";
/// From publish to the start of the run, for tasks whose producer stamped the send time.
pub const TASK_QUEUE_WAIT: &str = "switchyard_task_queue_wait_seconds";
/// Tasks a worker is handling now.
pub const TASKS_IN_FLIGHT: &str = "switchyard_tasks_in_flight";
/// Ready messages in the queue, sampled by the worker where the backend can count.
pub const QUEUE_DEPTH: &str = "switchyard_queue_depth";
/// How long each driver call took, retries counted one by one.
pub const BROKER_CALL: &str = "switchyard_broker_call_seconds";
/// Driver calls that failed, by error kind.
pub const BROKER_CALL_ERRORS: &str = "switchyard_broker_call_errors_total";

/// Header in which [`send_task`](crate::tasks::send_task) stamps the send time (seconds since
/// the Unix epoch, as a number) for the queue-wait histogram. Celery ignores it.
pub const SENT_AT_HEADER: &str = "x-sent-at";

/// Gives every metric above its help text and unit. Call once, after installing a recorder.
pub fn describe() {
    let tasks = [
        (
            TASKS_RECEIVED,
            "Tasks the worker decoded and began to handle.",
        ),
        (TASKS_SUCCEEDED, "Tasks whose handler returned a value."),
        (
            TASKS_FAILED,
            "Tasks recorded as failed, retries exhausted included.",
        ),
        (
            TASKS_RETRIED,
            "Tasks scheduled to run again after a transient failure.",
        ),
        (
            TASKS_DEAD_LETTERED,
            "Messages moved to the dead-letter place.",
        ),
        (
            TASKS_REVOKED,
            "Tasks skipped because they expired before they ran.",
        ),
        (
            BROKER_CALL_ERRORS,
            "Broker driver calls that failed, by error kind.",
        ),
    ];
    for (name, help) in tasks {
        describe_counter!(name, Unit::Count, help);
    }
    describe_histogram!(TASK_RUN, Unit::Seconds, "How long task handlers ran.");
    describe_histogram!(
        TASK_QUEUE_WAIT,
        Unit::Seconds,
        "From publish to the start of the run (tasks stamped with x-sent-at)."
    );
    describe_histogram!(
        BROKER_CALL,
        Unit::Seconds,
        "How long each broker driver call took."
    );
    describe_gauge!(
        TASKS_IN_FLIGHT,
        Unit::Count,
        "Tasks a worker is handling now."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Ready messages in the queue, where the backend can count."
    );
}

/// Something that happened to a task, counted under its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskEvent {
    Received,
    Succeeded,
    Failed,
    Retried,
    DeadLettered,
    Revoked,
}

impl TaskEvent {
    const ALL: [Self; 6] = [
        Self::Received,
        Self::Succeeded,
        Self::Failed,
        Self::Retried,
        Self::DeadLettered,
        Self::Revoked,
    ];

    fn metric(self) -> &'static str {
        match self {
            Self::Received => TASKS_RECEIVED,
            Self::Succeeded => TASKS_SUCCEEDED,
            Self::Failed => TASKS_FAILED,
            Self::Retried => TASKS_RETRIED,
            Self::DeadLettered => TASKS_DEAD_LETTERED,
            Self::Revoked => TASKS_REVOKED,
        }
    }
}

/// The instruments of one task name on one queue, registered once: recording is then an
/// atomic operation, with no label built per task. Registered with the recorder installed at
/// the time, so install it before building workers and queues.
pub(crate) struct TaskInstruments {
    counters: [Counter; 6],
    run: Histogram,
    queue_wait: Histogram,
}

impl TaskInstruments {
    pub(crate) fn new(backend: &'static str, queue: &str, task: &str) -> Self {
        let labels = [
            ("backend", backend.to_owned()),
            ("queue", queue.to_owned()),
            ("task", task.to_owned()),
        ];
        Self {
            counters: TaskEvent::ALL.map(|event| counter!(event.metric(), &labels)),
            run: histogram!(TASK_RUN, &labels),
            queue_wait: histogram!(TASK_QUEUE_WAIT, &labels),
        }
    }

    pub(crate) fn count(&self, event: TaskEvent) {
        self.counters[event as usize].increment(1);
    }

    pub(crate) fn run_time(&self, seconds: f64) {
        self.run.record(seconds);
    }

    pub(crate) fn queue_wait(&self, seconds: f64) {
        self.queue_wait.record(seconds);
    }
}

/// The queue-wide instruments of a worker: tasks in flight and the queue's depth.
#[derive(Clone)]
pub(crate) struct QueueInstruments {
    in_flight: Gauge,
    depth: Gauge,
}

impl QueueInstruments {
    pub(crate) fn new(backend: &'static str, queue: &str) -> Self {
        let labels = [("backend", backend.to_owned()), ("queue", queue.to_owned())];
        Self {
            in_flight: gauge!(TASKS_IN_FLIGHT, &labels),
            depth: gauge!(QUEUE_DEPTH, &labels),
        }
    }

    /// Counts a task in flight until the guard drops, so a cancelled run is counted out too.
    pub(crate) fn enter(&self) -> InFlight {
        self.in_flight.increment(1.0);
        InFlight(self.in_flight.clone())
    }

    /// Records the queue's ready count.
    pub(crate) fn depth(&self, ready: u64) {
        #[allow(clippy::cast_precision_loss)] // a depth beyond 2^52 is beyond any queue
        self.depth.set(ready as f64);
    }
}

/// One task in flight; see [`QueueInstruments::enter`].
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The operations a queue's driver calls are timed under, each registered once.
const TIMED: [Operation; 7] = [
    Operation::DeclareQueue,
    Operation::Publish,
    Operation::Receive,
    Operation::Ack,
    Operation::Nack,
    Operation::ExtendLease,
    Operation::Count,
];

/// The driver-call instruments of one queue.
pub(crate) struct BrokerCalls {
    backend: &'static str,
    queue: String,
    latency: [Histogram; 7],
}

impl BrokerCalls {
    pub(crate) fn new(backend: &'static str, queue: &str) -> Self {
        Self {
            backend,
            queue: queue.to_owned(),
            latency: TIMED.map(|operation| {
                histogram!(
                    BROKER_CALL,
                    "backend" => backend,
                    "queue" => queue.to_owned(),
                    "operation" => operation.to_string()
                )
            }),
        }
    }

    /// Runs one driver call, recording its latency and, when it fails, its error kind.
    pub(crate) async fn observe<T>(
        &self,
        operation: Operation,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let outcome = call.await;
        let elapsed = started.elapsed().as_secs_f64();
        match TIMED.iter().position(|timed| *timed == operation) {
            Some(index) => self.latency[index].record(elapsed),
            None => histogram!(
                BROKER_CALL,
                "backend" => self.backend,
                "queue" => self.queue.clone(),
                "operation" => operation.to_string()
            )
            .record(elapsed),
        }
        if let Err(error) = &outcome {
            counter!(
                BROKER_CALL_ERRORS,
                "backend" => self.backend,
                "queue" => self.queue.clone(),
                "operation" => operation.to_string(),
                "kind" => format!("{:?}", error.kind())
            )
            .increment(1);
        }
        outcome
    }
}
