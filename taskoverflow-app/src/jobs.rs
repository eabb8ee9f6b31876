//! The calendar job: the API enqueues it, a worker builds the calendar.
//!
//! The job is Celery task [`ICAL_TASK`] with one positional argument, the list of todos as the
//! API returns them. Its state and result live in the result store under the task id; the
//! result of a successful job is the calendar text.

use std::sync::Arc;

use broker_core::{
    Queue, ResultStore, ResultStoreExt, TaskResult,
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

/// Where the API sends calendar jobs and reads their states.
#[derive(Debug, Clone)]
pub struct CalendarJobs {
    /// The queue the jobs go to.
    pub queue: Queue,
    /// Where workers write job states and results.
    pub results: Arc<dyn ResultStore>,
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
        })
    }

    /// Enqueues a calendar job for `todos`; returns its task id. The job is `PENDING` until a
    /// worker takes it.
    ///
    /// # Errors
    /// The broker's publish error (after its retries).
    pub async fn request(&self, todos: &[Todo]) -> broker_core::Result<String> {
        let list = serde_json::to_value(todos).map_err(|e| {
            broker_core::Error::codec(broker_core::Operation::Encode, e.to_string())
        })?;
        let task = TaskMessage::new(ICAL_TASK, vec![list], serde_json::Map::new());
        send_task(&self.queue, &task).await
    }

    /// The job's state; `PENDING` for unknown ids.
    ///
    /// # Errors
    /// The result store's read error.
    pub async fn state(&self, task_id: &str) -> broker_core::Result<TaskResult> {
        self.results.state(task_id).await
    }
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
