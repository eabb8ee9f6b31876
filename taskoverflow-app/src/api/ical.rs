//! The calendar export: request a job, poll its state, fetch the calendar.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use broker_core::TaskState;
use serde_json::json;

use super::{AppError, AppState};
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

/// `POST /todos/ical`: 202 `{"task_id", "task_url"}`.
async fn request_calendar(
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
        .map_err(AppError::internal)?;
    let task_url = absolute(&headers, &format!("/todos/ical/{task_id}/status"));
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "task_id": task_id, "task_url": task_url })),
    )
        .into_response())
}

/// `GET /todos/ical/{task_id}/status`: 200 `{"task_id", "task_status", "result_url"}`.
async fn status(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    let record = state
        .jobs
        .state(&task_id)
        .await
        .map_err(AppError::internal)?;
    let result_url = absolute(&headers, &format!("/todos/ical/{task_id}/result"));
    Ok(Json(
        json!({ "task_id": task_id, "task_status": record.status.as_str(), "result_url": result_url }),
    ))
}

/// `GET /todos/ical/{task_id}/result`: the calendar once the job succeeded.
async fn result(
    State(state): State<AppState>,
    Path(task_id): Path<String>,
) -> Result<Response, AppError> {
    let record = state
        .jobs
        .state(&task_id)
        .await
        .map_err(AppError::internal)?;
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
