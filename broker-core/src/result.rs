//! Task states and results, kept apart from the broker that carried the task.

use std::{fmt, str::FromStr, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::Result;

/// A task's state, with Celery's names (`PENDING`, `STARTED`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskState {
    /// Unknown to the store: not started yet, never sent, or expired.
    Pending,
    /// A worker is running it.
    Started,
    /// It failed and was scheduled to run again.
    Retry,
    /// It finished; the record holds its result.
    Success,
    /// It failed for good; the record holds the error.
    Failure,
    /// It was cancelled or expired before it ran.
    Revoked,
}

impl TaskState {
    /// Whether the task will not change state again.
    #[must_use]
    pub fn is_ready(self) -> bool {
        matches!(self, Self::Success | Self::Failure | Self::Revoked)
    }

    /// Celery's name of the state.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Started => "STARTED",
            Self::Retry => "RETRY",
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
            Self::Revoked => "REVOKED",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "PENDING" => Self::Pending,
            "STARTED" => Self::Started,
            "RETRY" => Self::Retry,
            "SUCCESS" => Self::Success,
            "FAILURE" => Self::Failure,
            "REVOKED" => Self::Revoked,
            other => return Err(format!("unknown task state `{other}`")),
        })
    }
}

/// What the result store holds for one task, in the shape of Celery's result meta.
///
/// For `SUCCESS`, `result` is the task's return value. For `FAILURE` and `RETRY`, `result` is
/// Celery's exception object `{"exc_type", "exc_message", "exc_module"}` and `traceback` the
/// error's text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The task id.
    pub task_id: String,
    /// Its state.
    pub status: TaskState,
    /// The return value or the exception object.
    pub result: Value,
    /// The error's text, for failures and retries.
    pub traceback: Option<String>,
    /// When it reached this state.
    pub date_done: Option<DateTime<Utc>>,
}

impl TaskResult {
    /// The record of a task in `status` with no result.
    pub fn new(task_id: impl Into<String>, status: TaskState) -> Self {
        Self {
            task_id: task_id.into(),
            status,
            result: Value::Null,
            traceback: None,
            date_done: Some(Utc::now()),
        }
    }

    /// The record of a finished task.
    pub fn success(task_id: impl Into<String>, result: Value) -> Self {
        Self {
            result,
            ..Self::new(task_id, TaskState::Success)
        }
    }

    /// The record of a failed (`FAILURE`) or retried (`RETRY`) task. `exc_type` names the
    /// error's kind (Celery shows it as the exception class).
    pub fn error(
        task_id: impl Into<String>,
        status: TaskState,
        exc_type: &str,
        message: &str,
    ) -> Self {
        Self {
            result: json!({"exc_type": exc_type, "exc_message": [message], "exc_module": "builtins"}),
            traceback: Some(format!("{exc_type}: {message}")),
            ..Self::new(task_id, status)
        }
    }

    /// The record the store reports for a task it does not know.
    pub fn pending(task_id: impl Into<String>) -> Self {
        Self {
            date_done: None,
            ..Self::new(task_id, TaskState::Pending)
        }
    }

    /// For failures, the error message Celery would show; `None` otherwise.
    #[must_use]
    pub fn error_message(&self) -> Option<String> {
        if !matches!(self.status, TaskState::Failure | TaskState::Retry) {
            return None;
        }
        let message = match self.result.get("exc_message") {
            Some(Value::Array(parts)) => parts
                .iter()
                .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", "),
            Some(Value::String(s)) => s.clone(),
            _ => self.traceback.clone().unwrap_or_default(),
        };
        Some(message)
    }
}

/// Where task states and results are kept.
///
/// A record expires after the store's configured time; an expired or unknown task reads as
/// `None` (shown as `PENDING`). Writes of one task id replace the previous record.
#[async_trait]
pub trait ResultStore: Send + Sync + fmt::Debug + 'static {
    /// The backend's short name.
    fn backend(&self) -> &'static str;

    /// Writes (replaces) the record of `result.task_id`.
    async fn store(&self, result: &TaskResult) -> Result<()>;

    /// Writes the records of several tasks, as [`store`](Self::store) would one after another
    /// in their order. On `Ok` every record is written; on `Err` some may be. The worker calls
    /// it with the outcomes of the tasks that finish close together.
    ///
    /// The default calls `store` for each and stops at the first error. A backend that can
    /// write many records in one round trip (one pipeline, one transaction) overrides it.
    async fn store_all(&self, results: &[TaskResult]) -> Result<()> {
        for result in results {
            self.store(result).await?;
        }
        Ok(())
    }

    /// Reads the record of `task_id`, `None` if unknown or expired.
    async fn fetch(&self, task_id: &str) -> Result<Option<TaskResult>>;

    /// Deletes the record of `task_id`; deleting an unknown task succeeds.
    async fn forget(&self, task_id: &str) -> Result<()>;
}

/// Helpers every result store gets.
#[async_trait]
pub trait ResultStoreExt: ResultStore {
    /// The record of `task_id`, `PENDING` when unknown.
    async fn state(&self, task_id: &str) -> Result<TaskResult> {
        Ok(self
            .fetch(task_id)
            .await?
            .unwrap_or_else(|| TaskResult::pending(task_id)))
    }
}

impl<T: ResultStore + ?Sized> ResultStoreExt for T {}

#[async_trait]
impl<T: ResultStore + ?Sized> ResultStore for Arc<T> {
    fn backend(&self) -> &'static str {
        (**self).backend()
    }
    async fn store(&self, result: &TaskResult) -> Result<()> {
        (**self).store(result).await
    }
    async fn store_all(&self, results: &[TaskResult]) -> Result<()> {
        (**self).store_all(results).await
    }
    async fn fetch(&self, task_id: &str) -> Result<Option<TaskResult>> {
        (**self).fetch(task_id).await
    }
    async fn forget(&self, task_id: &str) -> Result<()> {
        (**self).forget(task_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_use_celery_names_on_the_wire() {
        assert_eq!(
            serde_json::to_value(TaskState::Success).unwrap(),
            json!("SUCCESS")
        );
        assert_eq!("RETRY".parse::<TaskState>().unwrap(), TaskState::Retry);
        assert!("success".parse::<TaskState>().is_err());
    }

    #[test]
    fn failure_keeps_celery_exception_shape_and_message() {
        let r = TaskResult::error("t1", TaskState::Failure, "ValueError", "bad deadline");
        assert_eq!(r.result["exc_type"], "ValueError");
        assert_eq!(r.error_message().as_deref(), Some("bad deadline"));
        assert!(
            TaskResult::success("t1", json!(1))
                .error_message()
                .is_none()
        );
    }
}
