//! What every handler can reach.

use std::sync::Arc;

use crate::{jobs::CalendarJobs, store::TodoStore};

/// The shared state of the application: one value per process, cloned into each request.
///
/// Cloning is cheap (every field is an `Arc`). To give handlers a new dependency (a broker, a
/// result store), add a public `Arc<...>` field here, take it in [`AppState::new`], and build
/// it where the state is built (`cli::serve` and the test fixture).
#[derive(Debug, Clone)]
pub struct AppState {
    /// The todos.
    pub todos: Arc<TodoStore>,
    /// The calendar jobs: their queue and result store.
    pub jobs: CalendarJobs,
}

impl AppState {
    /// The state of an application keeping its todos in `todos` and sending calendar jobs
    /// through `jobs`.
    pub fn new(todos: TodoStore, jobs: CalendarJobs) -> Self {
        Self {
            todos: Arc::new(todos),
            jobs,
        }
    }
}
