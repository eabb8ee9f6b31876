//! The fetch loop and the life of one job.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chrono::Utc;
use futures::FutureExt as _;
use serde_json::Value;
use tokio::{sync::Semaphore, task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    lease::LeaseRenewal,
    settler::{Settlements, Settler},
    task_registry::{TaskError, TaskRegistry, TaskRequest},
};
use crate::{
    Capacity, DEAD_LETTER_REASON_HEADER, DeadLetter, Delay, Delivery, ErrorKind, Message,
    NackAction, Queue, Result, ResultStore, RetryPolicy, TaskResult, TaskState,
    celery::TaskMessage,
    instruments::{QueueInstruments, SENT_AT_HEADER, TaskEvent, TaskInstruments},
    tasks::{send_task, task_from_delivery},
    trace_context::{TRACEPARENT_HEADER, TraceContext, enter_trace},
};

/// The task label of a message that is not a task the worker could decode.
const UNDECODABLE: &str = "(undecodable)";

/// The task label of a task this worker has no handler for: its name comes from the message,
/// and one series per name a sender invents would grow without bound.
const UNREGISTERED: &str = "(unregistered)";

/// How often a worker samples its queue's depth, where the backend can count.
const DEPTH_SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// How a [`Worker`] runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Tasks run at the same time, at most. Default 4.
    pub concurrency: usize,
    /// Messages taken in one receive, at most (never more than the slots free when the backend
    /// takes them, so no message waits leased in a buffer). Default 4.
    pub prefetch: usize,
    /// How long one receive waits for work (the long-poll). Default 1 s.
    pub poll_wait: Duration,
    /// After a shutdown request, how long running tasks may take to finish before they are
    /// stopped and their messages released for another worker. Default 30 s.
    pub shutdown_grace: Duration,
    /// Task retries: attempts in all and the backoff between them. Default: 4 attempts,
    /// 1 s doubling up to 60 s, with jitter.
    pub retry: RetryPolicy,
    /// On shutdown, keep taking work until the queue is empty (within the grace period)
    /// instead of stopping at once. For a broker that lives in this process, whose queued work
    /// no other worker can take. Default false.
    pub drain_on_shutdown: bool,
    /// Write `STARTED` as each task starts (Celery's `task_track_started`), for status pages
    /// that show running tasks. Default false, as in Celery: one write fewer per task.
    pub track_started: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            prefetch: 4,
            poll_wait: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
            retry: RetryPolicy {
                max_attempts: 4,
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(60),
                ..RetryPolicy::default()
            },
            drain_on_shutdown: false,
            track_started: false,
        }
    }
}

/// What a worker did, counted by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Tasks that returned a value.
    pub succeeded: u64,
    /// Tasks recorded as `FAILURE` (including exhausted retries).
    pub failed: u64,
    /// Runs that failed transiently and were scheduled again.
    pub retried: u64,
    /// Messages moved to the dead-letter place (undecodable, unknown task, retries exhausted).
    pub dead_lettered: u64,
    /// Running tasks stopped at shutdown and handed back to the queue.
    pub released: u64,
    /// Tasks skipped because they expired before they could run.
    pub revoked: u64,
    /// Messages taken after shutdown was requested, while draining the queue.
    pub drained: u64,
}

/// Runs registered tasks from one queue.
///
/// What a caller may rely on:
/// - a message is acknowledged only after its task's outcome was written to the result store
///   (a crash before that means the task runs again: handlers must be idempotent);
/// - no state at all is written for a task registered with
///   [`TaskOptions::ignore_result`](super::TaskOptions::ignore_result), or whose message's
///   `ignore_result` header is true, or by a worker built [without a result
///   store](Worker::without_results);
/// - with [`WorkerOptions::track_started`], `STARTED` is written as the handler starts
///   (concurrently with it), and always before the outcome;
/// - the outcomes of tasks that finish close together are written in one call
///   ([`ResultStore::store_all`](crate::ResultStore::store_all)), then their messages are
///   acked in one call (nothing waits to fill a batch); every ack is sent before
///   [`Worker::run`] returns;
/// - while a task runs, its lease is renewed, so a slow task is not handed to another worker;
/// - a message that cannot be decoded, is over the backend's payload limit (sent by another
///   producer), names an unknown task, or exhausts its retries goes to
///   the queue's dead-letter queue ([`Broker::dead_letter_queue`](crate::Broker::dead_letter_queue))
///   with the reason logged, and the worker goes on: the backend moves it there, or, when the
///   backend cannot dead-letter, the worker publishes it there and acks it. A worker on a
///   dead-letter queue has none, and a message the worker cannot publish (over the payload
///   limit) cannot be moved: such a message stays where it is and comes back after its
///   lease;
/// - a handler that panics is recorded as `FAILURE`; the worker goes on;
/// - on shutdown it stops fetching (or, with `drain_on_shutdown`, takes work until the queue
///   is empty), lets running tasks finish within the grace period, then releases the rest to
///   the queue so another worker takes them.
#[derive(Debug)]
pub struct Worker {
    queue: Queue,
    results: Option<Arc<dyn ResultStore>>,
    tasks: TaskRegistry,
    options: WorkerOptions,
}

struct Job {
    queue: Queue,
    results: Option<Arc<dyn ResultStore>>,
    tasks: TaskRegistry,
    track_started: bool,
    retry: RetryPolicy,
    renewal: Option<LeaseRenewal>,
    fallback_dead_letter: Option<Queue>,
    hard_stop: CancellationToken,
    report: Mutex<WorkerReport>,
    settlements: Settlements,
    instruments: QueueInstruments,
    /// Each task name's instruments, registered on its first message.
    task_instruments: Mutex<HashMap<String, Arc<TaskInstruments>>>,
}

impl Worker {
    /// A worker for `queue` writing states to `results`.
    #[must_use]
    pub fn new(queue: Queue, results: Arc<dyn ResultStore>, tasks: TaskRegistry) -> Self {
        Self {
            queue,
            results: Some(results),
            tasks,
            options: WorkerOptions::default(),
        }
    }

    /// A worker for `queue` that writes no states, for tasks that all ignore their results.
    ///
    /// # Errors
    /// [`ErrorKind::Configuration`](crate::ErrorKind) naming the registered tasks that store
    /// results (registered without [`TaskOptions::ignore_result`](super::TaskOptions)): their
    /// results would be lost.
    pub fn without_results(queue: Queue, tasks: TaskRegistry) -> Result<Self> {
        let storing: Vec<&str> = tasks
            .names()
            .into_iter()
            .filter(|name| tasks.options(name).is_some_and(|o| !o.ignore_result))
            .collect();
        if !storing.is_empty() {
            return Err(crate::Error::configuration(
                crate::Operation::StoreResult,
                format!(
                    "a worker without a result store cannot run tasks that store results: {}",
                    storing.join(", ")
                ),
            ));
        }
        Ok(Self {
            queue,
            results: None,
            tasks,
            options: WorkerOptions::default(),
        })
    }

    /// Replaces the options.
    #[must_use]
    pub fn with_options(mut self, options: WorkerOptions) -> Self {
        self.options = options;
        self
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully.
    ///
    /// # Errors
    /// See [`Worker::run`].
    pub async fn run_until_signal(self) -> Result<WorkerReport> {
        let token = CancellationToken::new();
        let trigger = token.clone();
        tokio::spawn(async move {
            super::shutdown_signal().await;
            tracing::info!("shutdown requested; finishing running tasks");
            trigger.cancel();
        });
        self.run(token).await
    }

    /// Runs until `shutdown` is cancelled, then shuts down gracefully and reports.
    ///
    /// Transient broker errors (a broker that went away) are retried with backoff for as long
    /// as the worker runs; only a closed broker ends it early.
    ///
    /// # Errors
    /// [`ErrorKind::Closed`] when the broker was closed under the worker; errors declaring the
    /// fallback dead-letter queue.
    pub async fn run(self, shutdown: CancellationToken) -> Result<WorkerReport> {
        let caps = self.queue.capabilities().clone();
        let broker = self.queue.broker();
        let fallback_dead_letter = match broker.dead_letter_queue(self.queue.name()) {
            Some(name) if caps.dead_letter == DeadLetter::Unsupported => {
                Some(Queue::declare(broker.clone(), name).await?)
            }
            _ => None,
        };
        let (settlements, settler) = Settler::start(self.queue.clone(), self.results.clone());
        let job = Arc::new(Job {
            queue: self.queue.clone(),
            results: self.results,
            tasks: self.tasks,
            track_started: self.options.track_started,
            retry: self.options.retry.clone(),
            renewal: LeaseRenewal::for_backend(&caps),
            fallback_dead_letter,
            hard_stop: CancellationToken::new(),
            report: Mutex::default(),
            settlements,
            instruments: QueueInstruments::new(caps.backend, self.queue.name()),
            task_instruments: Mutex::default(),
        });
        let depth_sampler = (caps.counting != crate::Counting::Unsupported)
            .then(|| tokio::spawn(sample_depth(self.queue.clone(), job.instruments.clone())));
        let slots = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        let mut running = JoinSet::new();
        let mut failures = 0u32;
        tracing::info!(
            queue = self.queue.name(),
            backend = caps.backend,
            "worker started"
        );

        let grace = self.options.shutdown_grace;
        let mut drain_until: Option<Instant> = None;
        loop {
            while running.try_join_next().is_some() {}
            let draining = shutdown.is_cancelled();
            if draining {
                if !self.options.drain_on_shutdown {
                    break;
                }
                let until = *drain_until.get_or_insert_with(|| Instant::now() + grace);
                if Instant::now() >= until {
                    break;
                }
            }
            let until = drain_until.unwrap_or_else(|| Instant::now() + grace);
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                () = shutdown.cancelled(), if !draining => continue,
                () = tokio::time::sleep_until(until), if draining => break,
            };
            let wait = if draining {
                self.options.poll_wait.min(Duration::from_millis(100))
            } else {
                self.options.poll_wait
            };
            // Room for the slot held and every slot free when the backend takes messages:
            // tasks that finish while the receive waits make room for more. Only this loop
            // takes slots, so each delivery finds its slot free below.
            let free = || 1 + slots.available_permits();
            let capacity = Capacity::dynamic(self.options.prefetch.max(1), &free);
            // A receive is never cancelled: messages it took must reach a job, not vanish
            // until their lease ends. It waits at most `poll_wait`.
            let received = self.queue.receive_up_to(capacity, wait).await;
            let mut first = Some(first);
            match received {
                Ok(deliveries) if draining && deliveries.is_empty() && running.is_empty() => break,
                Ok(deliveries) => {
                    failures = 0;
                    if draining {
                        let taken = deliveries.len() as u64;
                        job.report.lock().expect("report").drained += taken;
                    }
                    for delivery in deliveries {
                        let permit = match first.take() {
                            Some(permit) => permit,
                            None => slots
                                .clone()
                                .acquire_owned()
                                .await
                                .expect("the semaphore is never closed"),
                        };
                        let job = job.clone();
                        // Boxed: the job's state machine is large, and a boxed one is
                        // moved as a pointer (into the task, and when it completes).
                        running.spawn(Box::pin(async move {
                            job.process(delivery).await;
                            drop(permit);
                        }));
                    }
                }
                Err(err) if err.kind() == ErrorKind::Closed => {
                    if let Some(sampler) = &depth_sampler {
                        sampler.abort();
                    }
                    job.hard_stop.cancel();
                    while running.join_next().await.is_some() {}
                    drop(job);
                    settler.finish().await;
                    return Err(err);
                }
                Err(err) if draining => {
                    tracing::error!(error = %err, "receive failed while draining; stopping");
                    break;
                }
                Err(err) => {
                    let wait = self.options.retry.backoff(failures.min(10));
                    failures += 1;
                    tracing::error!(error = %err, ?wait, "receive failed; the worker keeps trying");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
            }
        }

        let left = drain_until.map_or(grace, |until| {
            until.saturating_duration_since(Instant::now())
        });
        let finished =
            tokio::time::timeout(left, async { while running.join_next().await.is_some() {} })
                .await;
        if finished.is_err() {
            tracing::warn!(
                ?grace,
                "grace period over; releasing unfinished tasks to the queue"
            );
            job.hard_stop.cancel();
            while running.join_next().await.is_some() {}
        }
        if let Some(sampler) = depth_sampler {
            sampler.abort();
        }
        let report = job.report.lock().expect("report").clone();
        // The last sender goes with the job; the settler then settles what is left and ends.
        drop(job);
        settler.finish().await;
        tracing::info!(?report, "worker stopped");
        Ok(report)
    }
}

/// How a run ended, before its message is settled.
enum Outcome {
    Done(Result<Value, TaskError>),
    Released,
}

/// Records the queue's ready count every [`DEPTH_SAMPLE_EVERY`] until aborted.
async fn sample_depth(queue: Queue, instruments: QueueInstruments) {
    loop {
        match queue.counts().await {
            Ok(counts) => instruments.depth(counts.ready),
            Err(err) => tracing::debug!(error = %err, "could not count the queue"),
        }
        tokio::time::sleep(DEPTH_SAMPLE_EVERY).await;
    }
}

/// Seconds from the send time stamped in `task` to now, when the producer stamped one.
fn queue_wait(task: &TaskMessage) -> Option<f64> {
    let sent = task.headers.extra.get(SENT_AT_HEADER)?.as_f64()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    Some((now - sent).max(0.0))
}

impl Job {
    /// The instruments of `task` on this worker's queue.
    fn instruments_of(&self, task: &str) -> Arc<TaskInstruments> {
        let mut known = self.task_instruments.lock().expect("instruments");
        if let Some(found) = known.get(task) {
            return found.clone();
        }
        let made = Arc::new(TaskInstruments::new(
            self.queue.capabilities().backend,
            self.queue.name(),
            task,
        ));
        known.insert(task.to_owned(), made.clone());
        made
    }

    /// The label the metrics give the task named `name`.
    fn label<'a>(&self, name: &'a str) -> &'a str {
        if self.tasks.get(name).is_some() {
            name
        } else {
            UNREGISTERED
        }
    }

    /// The label of a task that could not be decoded, read from its raw `task` header.
    fn undecoded_label<'a>(&self, delivery: &'a Delivery) -> &'a str {
        delivery
            .header_str("task")
            .map_or(UNDECODABLE, |name| self.label(name))
    }

    /// Counts `event` for the task labelled `task`, in the report and in the metrics.
    fn count(&self, event: TaskEvent, task: &str) {
        self.instruments_of(task).count(event);
        let mut report = self.report.lock().expect("report");
        match event {
            TaskEvent::Received => {}
            TaskEvent::Succeeded => report.succeeded += 1,
            TaskEvent::Failed => report.failed += 1,
            TaskEvent::Retried => report.retried += 1,
            TaskEvent::DeadLettered => report.dead_lettered += 1,
            TaskEvent::Revoked => report.revoked += 1,
        }
    }

    async fn record(&self, result: TaskResult) {
        let Some(results) = &self.results else {
            return;
        };
        if let Err(err) = results.store(&result).await {
            tracing::error!(task_id = %result.task_id, status = %result.status, error = %err, "could not write the task state");
        }
    }

    async fn process(&self, delivery: Delivery) {
        let _in_flight = self.instruments.enter();
        let decoded = match self.over_the_limit(&delivery) {
            Some(reason) => Err(reason),
            None => task_from_delivery(&delivery)
                .map_err(|err| format!("cannot decode task: {}", err.detail())),
        };
        let task = match decoded {
            Ok(task) => Box::new(task),
            Err(reason) => {
                if let Some(id) = delivery.header_str("id").map(str::to_owned) {
                    self.record(TaskResult::error(
                        id,
                        TaskState::Failure,
                        "DecodeError",
                        &reason,
                    ))
                    .await;
                }
                let label = self.undecoded_label(&delivery).to_owned();
                return Box::pin(self.dead_letter(delivery, &label, reason)).await;
            }
        };
        self.count(TaskEvent::Received, self.label(&task.headers.task));
        let producer = task
            .headers
            .extra
            .get(TRACEPARENT_HEADER)
            .and_then(Value::as_str)
            .and_then(TraceContext::parse);
        let span = tracing::info_span!(
            "task",
            name = %task.headers.task,
            id = %task.headers.id,
            retries = task.headers.retries,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            parent_span_id = tracing::field::Empty,
        );
        let context = enter_trace(&span, producer);
        context
            .scope(self.run_task(delivery, task).instrument(span))
            .await;
    }

    /// Why `delivery` is refused unread: its payload is over the backend's declared limit.
    /// Only another producer can send one (publishing here checks the limit), and it could not
    /// be retried or moved by publishing again, so it goes to the dead-letter place at once.
    fn over_the_limit(&self, delivery: &Delivery) -> Option<String> {
        let caps = self.queue.capabilities();
        let size = delivery.payload().len();
        (size > caps.max_payload).then(|| {
            format!(
                "payload of {size} bytes is over the {} backend's limit of {} bytes",
                caps.backend, caps.max_payload
            )
        })
    }

    /// Whether `task`'s states are written: not without a result store, and not when its
    /// registration or its message says to ignore them.
    fn keeps_results(&self, task: &TaskMessage) -> bool {
        let registered = self.tasks.options(&task.headers.task).unwrap_or_default();
        self.results.is_some()
            && !registered.ignore_result
            && task.headers.ignore_result != Some(true)
    }

    async fn run_task(&self, delivery: Delivery, task: Box<TaskMessage>) {
        let id = task.headers.id.clone();
        let keeps_results = self.keeps_results(&task);
        // The state to write, or none when this task's states are not kept.
        let state = |result: TaskResult| keeps_results.then_some(result);
        let Some(handler) = self.tasks.get(&task.headers.task) else {
            let reason = format!(
                "unknown task `{}`; registered: {}",
                task.headers.task,
                self.tasks.names().join(", ")
            );
            let failure = TaskResult::error(&id, TaskState::Failure, "NotRegistered", &reason);
            if keeps_results {
                self.record(failure).await;
            }
            return Box::pin(self.dead_letter(delivery, UNREGISTERED, reason)).await;
        };
        let label = task.headers.task.as_str();
        let now = Utc::now();
        if task.headers.expires.is_some_and(|expires| expires <= now) {
            tracing::info!("task expired before it could run; revoking");
            self.count(TaskEvent::Revoked, label);
            let revoked = state(TaskResult::new(&id, TaskState::Revoked));
            return self.finish(delivery, revoked).await;
        }
        if let Some(wait) = task.headers.eta.and_then(|eta| (eta - now).to_std().ok()) {
            match self.queue.capabilities().delay {
                // The backend holds it until it is due; this worker keeps nothing meanwhile.
                Delay::UpTo { max } if wait <= max => {
                    return self.settle(delivery.nack(NackAction::RequeueAfter(wait)).await);
                }
                _ if !Box::pin(self.hold_until_eta(&delivery, wait)).await => {
                    return self.release(delivery).await;
                }
                _ => {}
            }
        }

        let request = TaskRequest {
            id: id.clone(),
            name: task.headers.task.clone(),
            args: task.args.clone(),
            kwargs: task.kwargs.clone(),
            retries: task.headers.retries,
        };
        let hard_limit = task
            .headers
            .timelimit
            .0
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64);
        // STARTED (when tracked) is written while the handler runs, not before it: one round
        // trip fewer on every task's path. Both finish before the outcome is written, so
        // STARTED never lands after it.
        let instruments = self.instruments_of(&task.headers.task);
        if let Some(waited) = queue_wait(&task) {
            instruments.queue_wait(waited);
        }
        let started = async {
            if self.track_started && keeps_results {
                self.record(TaskResult::new(&id, TaskState::Started)).await;
            }
        };
        let run_started = Instant::now();
        let run = self.run_handler(&delivery, handler.run(request), hard_limit);
        let ((), outcome) = tokio::join!(started, run);
        let ran = run_started.elapsed();
        instruments.run_time(ran.as_secs_f64());
        match outcome {
            Outcome::Released => self.release(delivery).await,
            Outcome::Done(Ok(value)) => {
                tracing::info!(?ran, "task succeeded");
                self.count(TaskEvent::Succeeded, label);
                let success = state(TaskResult::success(&id, value));
                self.finish(delivery, success).await;
            }
            Outcome::Done(Err(TaskError::Fail { exc_type, message })) => {
                tracing::warn!(%exc_type, %message, "task failed");
                self.count(TaskEvent::Failed, label);
                let failure = TaskResult::error(&id, TaskState::Failure, &exc_type, &message);
                self.finish(delivery, state(failure)).await;
            }
            Outcome::Done(Err(TaskError::Retry { message, countdown })) => {
                let retry =
                    Box::pin(self.retry(delivery, *task, keeps_results, &message, countdown));
                retry.await;
            }
        }
    }

    /// Holds a task whose backend cannot delay it until its ETA, renewing its lease; false
    /// when shutdown stopped the wait.
    async fn hold_until_eta(&self, delivery: &Delivery, wait: Duration) -> bool {
        tracing::info!(?wait, "holding a task until its ETA");
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = self.keep_alive(delivery) => unreachable!("keep_alive never completes"),
            () = self.hard_stop.cancelled() => false,
        }
    }

    /// Renews the delivery's lease for as long as it is polled; never completes.
    async fn keep_alive(&self, delivery: &Delivery) {
        if let Some(renewal) = self.renewal {
            renewal.keep_alive(delivery).await;
        }
        std::future::pending::<()>().await;
    }

    async fn run_handler(
        &self,
        delivery: &Delivery,
        run: super::task_registry::TaskFuture,
        hard_limit: Option<Duration>,
    ) -> Outcome {
        // Polled in this job's own task (no task of its own to spawn and join); a panic is
        // caught here, and losing the race below drops the handler, which stops it.
        let handler = AssertUnwindSafe(run).catch_unwind();
        let limit = async {
            match hard_limit {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            finished = handler => Outcome::Done(finished.unwrap_or_else(|_| {
                Err(TaskError::fail("Panic", "the task handler panicked"))
            })),
            () = self.keep_alive(delivery) => unreachable!("keep_alive never completes"),
            () = limit => {
                let seconds = hard_limit.unwrap_or_default().as_secs_f64();
                Outcome::Done(Err(TaskError::fail("TimeLimitExceeded", format!("hard time limit ({seconds}s) exceeded"))))
            }
            () = self.hard_stop.cancelled() => Outcome::Released,
        }
    }

    async fn retry(
        &self,
        delivery: Delivery,
        task: TaskMessage,
        keeps_results: bool,
        message: &str,
        countdown: Option<Duration>,
    ) {
        let id = task.headers.id.clone();
        let retries = task.headers.retries;
        if !self.retry.allows_retry(retries) {
            let attempts = retries + 1;
            let reason = format!("retries exhausted after {attempts} attempts: {message}");
            let failure =
                TaskResult::error(&id, TaskState::Failure, "MaxRetriesExceededError", &reason);
            if keeps_results {
                self.record(failure).await;
            }
            self.count(TaskEvent::Failed, &task.headers.task);
            return Box::pin(self.dead_letter(delivery, &task.headers.task, reason)).await;
        }
        let wait = countdown.unwrap_or_else(|| self.retry.backoff(retries));
        let next = task.for_retry(Some(
            Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
        ));
        tracing::info!(?wait, %message, "task failed; retrying");
        // Publish the next attempt before acking this one: a crash in between duplicates the
        // task, never loses it.
        match send_task(&self.queue, &next).await {
            Ok(_) => {
                let retry = TaskResult::error(&id, TaskState::Retry, "Retry", message);
                self.count(TaskEvent::Retried, &task.headers.task);
                self.finish(delivery, keeps_results.then_some(retry)).await;
            }
            Err(err) => {
                tracing::error!(error = %err, "could not schedule the retry; returning the message");
                self.settle(delivery.nack(NackAction::Requeue).await);
            }
        }
    }

    /// Moves `delivery`, the task labelled `label`, to the dead-letter place.
    async fn dead_letter(&self, delivery: Delivery, label: &str, reason: String) {
        tracing::error!(id = delivery.id(), %reason, "moving message to the dead-letter place");
        self.count(TaskEvent::DeadLettered, label);
        let Some(fallback) = &self.fallback_dead_letter else {
            return self.settle(delivery.nack(NackAction::DeadLetter { reason }).await);
        };
        let mut copy = Message::new(delivery.payload().clone());
        copy.headers = delivery.headers().clone();
        copy.headers
            .insert(DEAD_LETTER_REASON_HEADER.to_owned(), reason.into());
        copy.properties = delivery.properties().clone();
        match fallback.publish(copy).await {
            Ok(()) => self.finish(delivery, None).await,
            Err(err) if err.is_retryable() => {
                tracing::error!(error = %err, "dead-letter queue unreachable; returning the message");
                self.settle(delivery.nack(NackAction::Requeue).await);
            }
            Err(err) => {
                // It can never be published (over the payload limit, say): returned at once
                // it would come straight back, round and round. Left unsettled, it comes
                // back once per lease, and it is kept.
                tracing::error!(error = %err, "the message cannot be copied to the dead-letter queue; it stays in its queue and comes back after its lease");
                drop(delivery);
            }
        }
    }

    async fn release(&self, delivery: Delivery) {
        self.report.lock().expect("report").released += 1;
        self.settle(delivery.nack(NackAction::Requeue).await);
    }

    /// Settles a finished task: `state` (when its states are kept) is written and then
    /// `delivery` acked, each together with the other tasks that finish meanwhile. Returns
    /// once the state is written; the ack follows.
    async fn finish(&self, delivery: Delivery, state: Option<TaskResult>) {
        if let Err((delivery, state)) = self.settlements.settle(delivery, state).await {
            // Only if the settler stopped abnormally: settle this one alone.
            if let Some(state) = state {
                self.record(state).await;
            }
            self.settle(delivery.ack().await);
        }
    }

    fn settle(&self, outcome: std::result::Result<(), crate::SettleError>) {
        if let Err(err) = outcome {
            // The message stays with the broker and comes back: at-least-once holds.
            tracing::warn!(id = err.delivery.id(), error = %err.error, "could not settle a message; it will be redelivered");
        }
    }
}
