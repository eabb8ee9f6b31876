//! TaskOverflow: the todo application of the course practical, in Rust.
//!
//! A JSON API under `/api/v1` (health, todo CRUD with filters) and a small web UI at `/`,
//! keeping its todos in PostgreSQL or an embedded SQLite database, plus the calendar export
//! that a worker builds. The contract it keeps is `TASKOVERFLOW.md` in the project's shared
//! documents.
//!
//! - [`todo`](mod@todo): the todo model, its validation and the contract's datetime format.
//! - [`store`]: [`TodoStore`](store::TodoStore), todos in PostgreSQL or SQLite.
//! - [`api`]: [`router`](api::router), the axum application, and its [`AppState`](api::AppState).
//! - [`calendar`]: [`build_calendar`](calendar::build_calendar), todos as iCalendar.
//! - [`jobs`]: the calendar job, sent by the API and run by the worker.
//! - [`ui`]: the embedded web UI.
//! - [`prometheus`]: the metrics recorder and the `/metrics` page.
//! - `otel` (feature `otel`): OpenTelemetry export of the spans that cross the broker.
//! - [`cli`]: the `taskoverflow` command line.

pub mod api;
pub mod backends;
pub mod calendar;
pub mod cli;
pub mod config;
pub mod jobs;
#[cfg(feature = "otel")]
pub mod otel;
pub mod prometheus;
pub mod report;
pub mod store;
pub mod todo;
pub mod ui;
