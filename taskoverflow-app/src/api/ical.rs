//! The calendar export: request a job, poll its state, fetch the calendar.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use broker_core::{ErrorKind, TaskState};
use serde::Serialize;

use super::{AppError, AppState, error::ErrorBody};
use crate::store::TodoFilter;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/todos/ical", post(request_calendar))
        .route("/todos/ical/{task_id}/status", get(status))
        .route("/todos/ical/{task_id}/result", get(result))
}

/// The absolute URL of `path` on the host the client called.
fn absolute(headers: &HeaderMap, path: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost:6400");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}{}{path}", super::API_BASE)
}

/// The answer to a calendar request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct JobAccepted {
    /// The job's id.
    pub(super) task_id: String,
    /// Where its state can be polled.
    pub(super) task_url: String,
}

/// A calendar job's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct JobStatus {
    /// The job's id.
    pub(super) task_id: String,
    /// Celery's state name: `PENDING`, `STARTED`, `RETRY`, `SUCCESS`, `FAILURE` or `REVOKED`.
    pub(super) task_status: String,
    /// Where the calendar will be.
    pub(super) result_url: String,
}

/// `POST /todos/ical`: 202 `{"task_id", "task_url"}`.
#[utoipa::path(
    post,
    path = "/api/v1/todos/ical",
    tag = "calendar",
    responses(
        (status = 202, description = "The job is queued", body = JobAccepted),
        (status = "default", description = "An error: 413 too many todos, 503 broker unavailable", body = ErrorBody),
    )
)]
pub(super) async fn request_calendar(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let todos = state
        .todos
        .list(&TodoFilter::default())
        .await
        .map_err(AppError::internal)?;
    let task_id = state
        .jobs
        .request(&todos)
        .await
        .map_err(|error| enqueue_error(&state.jobs.broker_url, error))?;
    let task_url = absolute(&headers, &format!("/todos/ical/{task_id}/status"));
    Ok((
        StatusCode::ACCEPTED,
        Json(JobAccepted { task_id, task_url }),
    )
        .into_response())
}

/// What the client is told when a job cannot be enqueued: 413 for a todo list over the
/// broker's payload limit, 503 while the broker at `broker_url` (redacted) is unreachable,
/// 500 (details logged) otherwise.
fn enqueue_error(broker_url: &str, error: broker_core::Error) -> AppError {
    match error.kind() {
        ErrorKind::PayloadTooLarge => AppError::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the todo list is too large for one calendar job: {}",
                error.detail()
            ),
        ),
        _ => unavailable_or_internal("the job queue", broker_url, error),
    }
}

/// 503 naming `what` at `url` (redacted) and the cause, when `error` is worth retrying; 500
/// (details logged) otherwise.
pub(super) fn unavailable_or_internal(
    what: &str,
    url: &str,
    error: broker_core::Error,
) -> AppError {
    if error.is_retryable() {
        tracing::error!(%error, "{what} is unavailable");
        AppError::client(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{what} at {url} is unavailable ({}); try again later",
                error.kind()
            ),
        )
    } else {
        AppError::internal(error)
    }
}

/// The job's state, or what the client is told when the result store does not answer.
async fn job_state(state: &AppState, task_id: &str) -> Result<broker_core::TaskResult, AppError> {
    state.jobs.state(task_id).await.map_err(|error| {
        unavailable_or_internal("the result store", &state.jobs.results_url, error)
    })
}

/// `GET /todos/ical/{task_id}/status`: 200 `{"task_id", "task_status", "result_url"}`.
#[utoipa::path(
    get,
    path = "/api/v1/todos/ical/{task_id}/status",
    tag = "calendar",
    params(("task_id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job's state (`PENDING` for an unknown id)", body = JobStatus),
        (status = "default", description = "An error: 503 result store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn status(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<JobStatus>, AppError> {
    let record = job_state(&state, &task_id).await?;
    let result_url = absolute(&headers, &format!("/todos/ical/{task_id}/result"));
    Ok(Json(JobStatus {
        task_status: record.status.as_str().to_owned(),
        task_id,
        result_url,
    }))
}

/// `GET /todos/ical/{task_id}/result`: the calendar once the job succeeded.
#[utoipa::path(
    get,
    path = "/api/v1/todos/ical/{task_id}/result",
    tag = "calendar",
    params(("task_id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The calendar", body = String, content_type = "text/calendar"),
        (status = "default", description = "An error: 404 not finished, 422 failed, 410 revoked", body = ErrorBody),
    )
)]
pub(super) async fn result(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
) -> Result<Response, AppError> {
    let record = job_state(&state, &task_id).await?;
    match record.status {
        TaskState::Success => match record.result.as_str() {
            Some(calendar) => Ok((
                [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
                calendar.to_owned(),
            )
                .into_response()),
            None => Err(AppError::internal(
                "the calendar job stored a result that is not text",
            )),
        },
        TaskState::Failure => {
            let why = record
                .error_message()
                .unwrap_or_else(|| "no reason recorded".into());
            Err(AppError::client(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Task failed: {why}"),
            ))
        }
        TaskState::Revoked => Err(AppError::client(
            StatusCode::GONE,
            "Task was revoked before it ran",
        )),
        TaskState::Pending | TaskState::Started | TaskState::Retry => {
            Err(AppError::not_found("Task not finished"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::{body::Body, http::Request};
    use broker_core::{Broker, Error, Operation, Queue};
    use broker_memory::{MemoryBroker, MemoryConfig, MemoryResultStore};
    use tower::ServiceExt;

    use super::*;
    use crate::{
        jobs::CalendarJobs,
        store::{StoreLocation, TodoStore},
    };

    #[test]
    fn enqueue_errors_map_to_what_the_client_can_do_about_them() {
        let error = |kind| {
            Error::new(
                kind,
                "redis",
                Operation::Publish,
                "message 0 is 9000000 bytes",
            )
        };
        let url = "redis://:***@cache:6379";
        assert_eq!(
            enqueue_error(url, error(ErrorKind::PayloadTooLarge)).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            enqueue_error(url, error(ErrorKind::Connection)).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            enqueue_error(url, error(ErrorKind::Timeout)).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            enqueue_error(url, error(ErrorKind::Backend)).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[tokio::test]
    async fn a_broker_gone_under_the_api_is_a_json_error_not_a_crash() {
        let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(MemoryConfig::default()));
        let queue = Queue::declare(broker.clone(), "ical").await.unwrap();
        let results = Arc::new(MemoryResultStore::new(std::time::Duration::from_secs(60)));
        let store = TodoStore::open(&StoreLocation::Memory).await.unwrap();
        let jobs = CalendarJobs {
            queue,
            results,
            broker_url: "memory://".into(),
            results_url: "memory://".into(),
        };
        let app = super::super::router(AppState::new(store, jobs));
        broker.close().await.unwrap();

        let request = Request::post("/api/v1/todos/ical")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
}
