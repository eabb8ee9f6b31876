//! The HTTP application: the JSON API under `/api/v1` and the web UI at `/`.
//!
//! [`router`] builds the whole application from an [`AppState`]. Every error response, from a
//! handler or from axum itself (unknown route, wrong method, unreadable body), is
//! `{"error": "<message>"}` with `Content-Type: application/json`; internal failures are
//! logged and answered without details (see [`AppError`]).
//!
//! # Adding endpoints
//! Add API routes in `api_routes` (merge a module's `routes()` there, as `todos` does):
//! they then get the body limit, the JSON error bodies and request logging. A static path
//! such as `/todos/ical` takes precedence over `/todos/{id}` whatever the order of
//! registration.

mod error;
mod extract;
mod ical;
mod openapi;
mod state;
mod todos;

use std::time::Instant;

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Request, State},
    http::HeaderValue,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use broker_core::trace_context::{TRACEPARENT_HEADER, TraceContext, enter_trace};
use serde_json::json;
use tracing::Instrument as _;

use self::error::ErrorBody;
pub use self::{
    error::{AppError, TODO_NOT_FOUND},
    state::AppState,
};

/// The path under which the API lives.
pub const API_BASE: &str = "/api/v1";

/// The largest request body accepted; larger ones get 413.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// The whole application: the API under [`API_BASE`], the web UI at `/` and the Prometheus
/// page at `/metrics`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .nest(API_BASE, api_routes())
        .merge(crate::ui::routes())
        .route("/metrics", get(crate::prometheus::scrape))
        .fallback(not_found)
        .layer(middleware::map_response(error::json_error_bodies))
        .layer(middleware::from_fn(crate::prometheus::record_request))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// The API's routes, relative to [`API_BASE`].
fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/openapi.json", get(openapi::document))
        .merge(todos::routes())
        .merge(ical::routes())
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
}

/// `GET /health`: 200 `{"status":"ok"}` while the server runs.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "service",
    responses((status = 200, description = "`{\"status\":\"ok\"}`", body = Object))
)]
async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: 200 `{"status":"ready"}` when the broker and the result store answer
/// within [`REQUEST_BUDGET`](crate::jobs::REQUEST_BUDGET), 503 with an error naming the one
/// that does not otherwise. `/health` stays a liveness answer that needs neither.
#[utoipa::path(
    get,
    path = "/api/v1/ready",
    tag = "service",
    responses(
        (status = 200, description = "`{\"status\":\"ready\"}`", body = Object),
        (status = "default", description = "An error: 503 broker or result store unavailable", body = ErrorBody),
    )
)]
async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, AppError> {
    state.jobs.ready().await.map_err(|error| {
        let (what, url) = match error.operation() {
            broker_core::Operation::FetchResult => ("the result store", &state.jobs.results_url),
            _ => ("the broker", &state.jobs.broker_url),
        };
        ical::unavailable_or_internal(what, url, error)
    })?;
    Ok(Json(json!({ "status": "ready" })))
}

/// Any path no route matches: 404 `{"error":"Not found"}`.
async fn not_found() -> Response {
    error::error_response(axum::http::StatusCode::NOT_FOUND, "Not found")
}

/// Runs each request in a `request` span and a trace context, and logs one line for it:
/// method, path (without the query), status and duration.
///
/// The context continues the request's `traceparent` header (a new trace without a valid
/// one), so a calendar job enqueued by the request, and its run on a worker, join the
/// caller's trace; the response's `traceparent` names the request's span.
async fn log_request(request: Request, next: Next) -> impl IntoResponse {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let caller = request
        .headers()
        .get(TRACEPARENT_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(TraceContext::parse);
    let span = tracing::info_span!(
        "request",
        %method,
        %path,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    );
    let context = enter_trace(&span, caller);
    let started = Instant::now();
    let mut response = context
        .scope(next.run(request))
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency = ?started.elapsed(),
            "request"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&context.to_traceparent()) {
        response.headers_mut().insert(TRACEPARENT_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::{
        body::{Body, to_bytes},
        http::{Method, Request, StatusCode, header},
    };
    use tower::ServiceExt;

    use super::*;
    use crate::store::{StoreLocation, TodoStore};

    async fn app() -> Router {
        let store = TodoStore::open(&StoreLocation::Memory)
            .await
            .expect("the memory store opens");
        router(AppState::new(
            store,
            crate::jobs::CalendarJobs::in_process("ical")
                .await
                .expect("in-process jobs"),
        ))
    }

    async fn send(request: Request<Body>) -> (StatusCode, String, serde_json::Value) {
        let response = app().await.oneshot(request).await.expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = to_bytes(response.into_body(), BODY_LIMIT_BYTES)
            .await
            .expect("readable body");
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, content_type, body)
    }

    fn request(method: Method, uri: &str) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("valid request")
    }

    #[tokio::test]
    async fn health_answers_ok() {
        let (status, _, body) = send(request(Method::GET, "/api/v1/health")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"status": "ok"}));
    }

    #[tokio::test]
    async fn unknown_routes_and_wrong_methods_answer_json_errors() {
        for (method, uri, expected) in [
            (Method::GET, "/api/v1/unknown", StatusCode::NOT_FOUND),
            (Method::GET, "/elsewhere", StatusCode::NOT_FOUND),
            (
                Method::DELETE,
                "/api/v1/todos",
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (Method::POST, "/", StatusCode::METHOD_NOT_ALLOWED),
        ] {
            let (status, content_type, body) = send(request(method.clone(), uri)).await;
            assert_eq!(status, expected, "{method} {uri}");
            assert_eq!(content_type, "application/json", "{method} {uri}");
            assert!(body["error"].is_string(), "{method} {uri}: {body}");
        }
    }

    #[tokio::test]
    async fn a_body_without_json_content_type_is_415() {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/todos")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(r#"{"title":"t"}"#))
            .expect("valid request");
        let (status, _, body) = send(request).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            body,
            json!({"error": "Content-Type must be application/json"})
        );
    }

    #[tokio::test]
    async fn malformed_json_is_400_with_the_parser_position() {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/todos")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"title\": "))
            .expect("valid request");
        let (status, _, body) = send(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let message = body["error"].as_str().expect("a message");
        assert!(message.starts_with("malformed JSON: "), "{message}");
        assert!(message.contains("line 1"), "{message}");
    }

    #[tokio::test]
    async fn a_static_todo_path_takes_precedence_over_the_id_route() {
        let app = app().await;
        let post = app
            .clone()
            .oneshot(request(Method::POST, "/api/v1/todos/ical"))
            .await
            .expect("infallible");
        assert_eq!(post.status(), StatusCode::ACCEPTED);
        let get = app
            .oneshot(request(Method::GET, "/api/v1/todos/ical"))
            .await
            .expect("infallible");
        assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
