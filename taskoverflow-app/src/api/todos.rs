//! `/todos` and `/todos/{id}`: list, create, read, update and delete todos.

use axum::{
    Json, Router,
    extract::{RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use super::{
    AppError, AppState,
    error::ErrorBody,
    extract::{JsonBody, TodoId},
};
use crate::{
    store::TodoFilter,
    todo::{NewTodo, Todo, TodoPatch},
};

/// The todo routes, relative to the API base.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/todos", get(list).post(create))
        .route("/todos/{id}", get(show).put(update).delete(remove))
}

/// `GET /todos[?completed=true|false][&window=N]`: 200 with the matching todos in id order.
#[utoipa::path(
    get,
    path = "/api/v1/todos",
    tag = "todos",
    params(
        ("completed" = Option<bool>, Query, description = "Only completed todos (true) or open ones (false)"),
        ("window" = Option<u64>, Query, description = "Only todos due within this many days"),
    ),
    responses(
        (status = 200, description = "The matching todos, in id order", body = [Todo]),
        (status = "default", description = "An error", body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<Todo>>, AppError> {
    let filter = parse_filter(query.as_deref().unwrap_or_default())?;
    Ok(Json(state.todos.list(&filter).await?))
}

/// `POST /todos`: 201 with the created todo.
#[utoipa::path(
    post,
    path = "/api/v1/todos",
    tag = "todos",
    request_body = NewTodo,
    responses(
        (status = 201, description = "The created todo", body = Todo),
        (status = "default", description = "An error: 400 invalid body, 413, 415", body = ErrorBody),
    )
)]
pub(super) async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Todo>), AppError> {
    let todo = NewTodo::from_json(&body)?;
    let created = state.todos.create(&todo).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /todos/{id}`: 200 with the todo, or 404.
#[utoipa::path(
    get,
    path = "/api/v1/todos/{id}",
    tag = "todos",
    params(("id" = u64, Path, description = "The todo's id")),
    responses(
        (status = 200, description = "The todo", body = Todo),
        (status = "default", description = "An error: 404 no such todo", body = ErrorBody),
    )
)]
pub(super) async fn show(
    State(state): State<AppState>,
    TodoId(id): TodoId,
) -> Result<Json<Todo>, AppError> {
    state
        .todos
        .get(id)
        .await?
        .map(Json)
        .ok_or_else(AppError::todo_not_found)
}

/// `PUT /todos/{id}`: 200 with the updated todo. The body is validated before the lookup, so
/// a bad body is 400 even when the todo does not exist; then 404 when it does not.
#[utoipa::path(
    put,
    path = "/api/v1/todos/{id}",
    tag = "todos",
    params(("id" = u64, Path, description = "The todo's id")),
    request_body = TodoPatch,
    responses(
        (status = 200, description = "The updated todo", body = Todo),
        (status = "default", description = "An error: 400 invalid body, 404 no such todo", body = ErrorBody),
    )
)]
pub(super) async fn update(
    State(state): State<AppState>,
    TodoId(id): TodoId,
    JsonBody(body): JsonBody,
) -> Result<Json<Todo>, AppError> {
    let patch = TodoPatch::from_json(&body)?;
    state
        .todos
        .update(id, &patch)
        .await?
        .map(Json)
        .ok_or_else(AppError::todo_not_found)
}

/// `DELETE /todos/{id}`: 200 with the deleted todo, or 200 `{}` when there was none.
#[utoipa::path(
    delete,
    path = "/api/v1/todos/{id}",
    tag = "todos",
    params(("id" = u64, Path, description = "The todo's id")),
    responses(
        (status = 200, description = "The deleted todo, or `{}` when there was none", body = Object),
        (status = "default", description = "An error", body = ErrorBody),
    )
)]
pub(super) async fn remove(
    State(state): State<AppState>,
    TodoId(id): TodoId,
) -> Result<Response, AppError> {
    let response = match state.todos.delete(id).await? {
        Some(todo) => Json(todo).into_response(),
        None => Json(json!({})).into_response(),
    };
    Ok(response)
}

/// Reads the list filters from a query string. Unknown parameters are ignored, as the
/// reference does; a known one given twice or with a bad value is a 400.
fn parse_filter(query: &str) -> Result<TodoFilter, AppError> {
    let mut filter = TodoFilter::default();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "completed" => {
                if filter.completed.is_some() {
                    return Err(AppError::bad_request("completed may be given only once"));
                }
                filter.completed = Some(match value.as_ref() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(AppError::bad_request("completed must be true or false")),
                });
            }
            "window" => {
                if filter.window_days.is_some() {
                    return Err(AppError::bad_request("window may be given only once"));
                }
                filter.window_days = Some(parse_window(&value)?);
            }
            _ => {}
        }
    }
    Ok(filter)
}

/// A non-negative decimal integer of days; one too large for 64 bits means "any deadline".
fn parse_window(value: &str) -> Result<u64, AppError> {
    if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(AppError::bad_request(
            "window must be a non-negative integer (days)",
        ));
    }
    Ok(value.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(query: &str) -> TodoFilter {
        parse_filter(query).expect("valid query")
    }

    fn refusal(query: &str) -> String {
        match parse_filter(query) {
            Err(AppError::Client { status, message }) => {
                assert_eq!(status, StatusCode::BAD_REQUEST);
                message.into_owned()
            }
            other => panic!("{query:?} gave {other:?}"),
        }
    }

    #[test]
    fn filters_are_read_and_combined() {
        assert_eq!(filter(""), TodoFilter::default());
        assert_eq!(
            filter("completed=false&window=7"),
            TodoFilter {
                completed: Some(false),
                window_days: Some(7),
            }
        );
    }

    #[test]
    fn unknown_parameters_are_ignored() {
        assert_eq!(filter("page=2&completed=true").completed, Some(true));
    }

    #[test]
    fn completed_accepts_only_true_or_false() {
        for query in [
            "completed=TRUE",
            "completed=1",
            "completed=",
            "completed=yes",
        ] {
            assert_eq!(refusal(query), "completed must be true or false", "{query}");
        }
    }

    #[test]
    fn window_accepts_only_non_negative_integers() {
        assert_eq!(filter("window=0").window_days, Some(0));
        assert_eq!(
            filter("window=99999999999999999999999").window_days,
            Some(u64::MAX)
        );
        for query in [
            "window=-1",
            "window=1.5",
            "window=",
            "window=+3",
            "window=%201",
            "window=a",
        ] {
            assert_eq!(
                refusal(query),
                "window must be a non-negative integer (days)",
                "{query}"
            );
        }
    }

    #[test]
    fn repeated_filters_are_refused() {
        assert_eq!(
            refusal("completed=true&completed=false"),
            "completed may be given only once"
        );
        assert_eq!(
            refusal("window=1&window=2"),
            "window may be given only once"
        );
    }
}
