//! Tasks registered by name, and what a handler receives and returns.

use std::{collections::HashMap, fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use serde_json::{Map, Value};

/// What a handler is asked to do: one task invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRequest {
    /// The task id (also the result-store key).
    pub id: String,
    /// The registered name.
    pub name: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// How many times this task was retried before this run.
    pub retries: u32,
}

/// How a task run failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// A transient failure: run it again later, with backoff, while retries remain.
    #[error("{message}")]
    Retry {
        /// Why it failed.
        message: String,
        /// Wait this long instead of the policy's backoff.
        countdown: Option<Duration>,
    },
    /// A permanent failure (bad input, a bug): recorded as `FAILURE`, never retried.
    #[error("{exc_type}: {message}")]
    Fail {
        /// The error's kind, shown as Celery shows the exception class.
        exc_type: String,
        /// Why it failed.
        message: String,
    },
}

impl TaskError {
    /// A transient failure retried with the policy's backoff.
    pub fn retry(message: impl Into<String>) -> Self {
        Self::Retry {
            message: message.into(),
            countdown: None,
        }
    }

    /// A permanent failure of kind `exc_type`.
    pub fn fail(exc_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Fail {
            exc_type: exc_type.into(),
            message: message.into(),
        }
    }

    /// Permanent failure caused by the task's input (`ValueError`, as Celery would say).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::fail("ValueError", message)
    }
}

/// The future a handler returns.
pub type TaskFuture = Pin<Box<dyn Future<Output = Result<Value, TaskError>> + Send>>;

/// A task implementation. Implemented for every `Fn(TaskRequest) -> impl Future` closure.
///
/// The worker acknowledges the message only after the future completes, so a handler may run
/// more than once for one task (after a crash or a lost lease): it must be idempotent. The
/// future may be dropped at an `.await` during shutdown, after the grace period.
pub trait Task: Send + Sync + 'static {
    /// Runs one invocation.
    fn run(&self, request: TaskRequest) -> TaskFuture;
}

impl<F, Fut> Task for F
where
    F: Fn(TaskRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, TaskError>> + Send + 'static,
{
    fn run(&self, request: TaskRequest) -> TaskFuture {
        Box::pin(self(request))
    }
}

/// How the worker treats one registered task, besides running it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskOptions {
    /// Write no state for this task, whatever its messages ask (Celery's `ignore_result` task
    /// option). Default false: states are written unless the message's own `ignore_result`
    /// header asks otherwise.
    pub ignore_result: bool,
}

#[derive(Clone)]
struct Registered {
    task: Arc<dyn Task>,
    options: TaskOptions,
}

/// Tasks by name.
#[derive(Clone, Default)]
pub struct TaskRegistry {
    tasks: HashMap<String, Registered>,
}

impl fmt::Debug for TaskRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.tasks.iter().map(|(name, r)| (name, r.options)))
            .finish()
    }
}

impl TaskRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `task` under `name` with the default options, replacing any earlier one.
    #[must_use]
    pub fn register(self, name: impl Into<String>, task: impl Task) -> Self {
        self.register_with(name, task, TaskOptions::default())
    }

    /// Registers `task` under `name` with `options`, replacing any earlier one.
    #[must_use]
    pub fn register_with(
        mut self,
        name: impl Into<String>,
        task: impl Task,
        options: TaskOptions,
    ) -> Self {
        let task = Arc::new(task);
        self.tasks.insert(name.into(), Registered { task, options });
        self
    }

    /// The task registered under `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Arc<dyn Task>> {
        self.tasks.get(name).map(|r| r.task.clone())
    }

    /// The options of the task registered under `name`.
    #[must_use]
    pub fn options(&self, name: &str) -> Option<TaskOptions> {
        self.tasks.get(name).map(|r| r.options)
    }

    /// The registered names, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tasks.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
