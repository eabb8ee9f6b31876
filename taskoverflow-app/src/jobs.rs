//! The calendar job: the API enqueues it, a worker builds the calendar.
//!
//! The job is Celery task [`ICAL_TASK`] with one positional argument, the list of todos as the
//! API returns them. Its state and result live in the result store under the task id; the
//! result of a successful job is the calendar text.

use std::{future::Future, sync::Arc, time::Duration};

use broker_core::{
    ErrorKind, Operation, Queue, ResultStore, ResultStoreExt, TaskResult,
    celery::TaskMessage,
    tasks::send_task,
    worker::{TaskError, TaskRegistry, TaskRequest},
};
use serde_json::Value;

use crate::{calendar::build_calendar, todo::Todo};

/// The Celery task name of the calendar job.
pub const ICAL_TASK: &str = "ical";

/// The queue calendar jobs go to unless `CELERY_DEFAULT_QUEUE` says otherwise.
pub const DEFAULT_QUEUE: &str = "ical";

/// How long an HTTP request may wait for the broker or the result store: a request fails
/// fast (503) rather than waiting out the retries a background path would make.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(2);

/// Where the API sends calendar jobs and reads their states.
#[derive(Debug, Clone)]
pub struct CalendarJobs {
    /// The queue the jobs go to.
    pub queue: Queue,
    /// Where workers write job states and results.
    pub results: Arc<dyn ResultStore>,
    /// The broker's URL, redacted, for messages.
    pub broker_url: String,
    /// The result store's URL, redacted, for messages.
    pub results_url: String,
}

impl CalendarJobs {
    /// Jobs on a private in-process broker and result store, declared and ready: for tests
    /// and for a worker running inside the API process.
    ///
    /// # Errors
    /// Declaring the queue (does not fail on the in-process broker).
    pub async fn in_process(queue: &str) -> broker_core::Result<Self> {
        let broker: Arc<dyn broker_core::Broker> = Arc::new(broker_memory::MemoryBroker::new(
            broker_memory::MemoryConfig::default(),
        ));
        let results = Arc::new(broker_memory::MemoryResultStore::new(
            std::time::Duration::from_secs(86_400),
        ));
        Ok(Self {
            queue: Queue::declare(broker, queue.to_owned()).await?,
            results,
            broker_url: "memory://".to_owned(),
            results_url: "memory://".to_owned(),
        })
    }

    /// Enqueues a calendar job for `todos`; returns its task id. The job is `PENDING` until a
    /// worker takes it.
    ///
    /// # Errors
    /// The broker's publish error (after the retries that fit in [`REQUEST_BUDGET`]), or a
    /// retryable `Timeout` when the budget ran out.
    pub async fn request(&self, todos: &[Todo]) -> broker_core::Result<String> {
        let list = serde_json::to_value(todos).map_err(|e| {
            broker_core::Error::codec(broker_core::Operation::Encode, e.to_string())
        })?;
        let task = TaskMessage::new(ICAL_TASK, vec![list], serde_json::Map::new());
        let backend = self.queue.capabilities().backend;
        within_budget(backend, Operation::Publish, send_task(&self.queue, &task)).await
    }

    /// The job's state; `PENDING` for unknown ids, including ids the store forgot.
    ///
    /// # Errors
    /// The result store's read error, or a retryable `Timeout` when [`REQUEST_BUDGET`] ran
    /// out.
    pub async fn state(&self, task_id: &str) -> broker_core::Result<TaskResult> {
        let backend = self.results.backend();
        within_budget(backend, Operation::FetchResult, self.results.state(task_id)).await
    }

    /// Whether the broker and the result store answer within [`REQUEST_BUDGET`]: the queue's
    /// declaration is repeated (idempotent) and a result is read.
    ///
    /// # Errors
    /// The first that does not answer.
    pub async fn ready(&self) -> broker_core::Result<()> {
        let broker = self.queue.broker();
        within_budget(
            self.queue.capabilities().backend,
            Operation::DeclareQueue,
            broker.declare_queue(self.queue.name()),
        )
        .await?;
        self.state("readiness-probe").await.map(drop)
    }
}

/// `call`, or a retryable [`ErrorKind::Timeout`] when it takes longer than [`REQUEST_BUDGET`].
async fn within_budget<T>(
    backend: &'static str,
    operation: Operation,
    call: impl Future<Output = broker_core::Result<T>>,
) -> broker_core::Result<T> {
    tokio::time::timeout(REQUEST_BUDGET, call)
        .await
        .unwrap_or_else(|_| {
            Err(broker_core::Error::new(
                ErrorKind::Timeout,
                backend,
                operation,
                format!("no answer within {}s", REQUEST_BUDGET.as_secs()),
            ))
        })
}

/// The tasks a TaskOverflow worker runs.
#[must_use]
pub fn tasks() -> TaskRegistry {
    TaskRegistry::new().register(
        ICAL_TASK,
        |request: TaskRequest| async move { ical(&request) },
    )
}

/// Builds the calendar of the todo list in the first argument.
///
/// Bad input (no argument, not a list of todos) is a permanent `ValueError` failure with the
/// reason: retrying cannot fix it.
fn ical(request: &TaskRequest) -> Result<Value, TaskError> {
    let [list] = request.args.as_slice() else {
        return Err(TaskError::invalid_input(format!(
            "the ical task takes one argument, the list of todos; it got {}",
            request.args.len()
        )));
    };
    let todos: Vec<Todo> = serde_json::from_value(list.clone())
        .map_err(|e| TaskError::invalid_input(format!("the todo list is malformed: {e}")))?;
    Ok(Value::String(build_calendar(&todos)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(args: Vec<Value>) -> TaskRequest {
        TaskRequest {
            id: "t".into(),
            name: ICAL_TASK.into(),
            args,
            kwargs: serde_json::Map::new(),
            retries: 0,
        }
    }

    #[test]
    fn ical_builds_the_calendar_of_the_todo_list() {
        let todo = json!({"id": 3, "title": "Hand in", "description": null, "completed": false,
            "deadline_at": "2023-02-27T00:00:00", "created_at": "2023-02-20T00:00:00",
            "updated_at": "2023-02-20T00:00:00"});
        let Value::String(calendar) = ical(&request(vec![json!([todo])])).expect("built") else {
            panic!("the result is the calendar text");
        };
        assert!(calendar.contains("SUMMARY:Hand in"));
        assert!(calendar.contains("DTSTART:20230227T000000"));
    }

    #[test]
    fn malformed_todo_list_is_a_permanent_failure_with_its_reason() {
        let err = ical(&request(vec![json!([{"id": "not a number"}])])).expect_err("rejected");
        let TaskError::Fail { exc_type, message } = err else {
            panic!("not retried")
        };
        assert_eq!(exc_type, "ValueError");
        assert!(
            message.starts_with("the todo list is malformed"),
            "{message}"
        );
        assert!(
            ical(&request(vec![])).is_err(),
            "a missing argument fails too"
        );
    }
}
