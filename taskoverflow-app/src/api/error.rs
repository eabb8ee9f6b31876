//! Errors as the API answers them: `{"error": "<message>"}` with a 4xx or 5xx status.

use std::{borrow::Cow, error::Error};

use axum::{
    Json,
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{report::Report, store::StoreError, todo::ValidationError};

/// The message of every 404 about a todo id.
pub const TODO_NOT_FOUND: &str = "Todo not found";

/// A failed request.
///
/// A [`Client`](Self::Client) error is answered with its status and message as given. An
/// [`Internal`](Self::Internal) error is logged with its whole cause chain and answered with a
/// generic message, so database errors, paths and URLs never reach a client.
#[derive(Debug)]
pub enum AppError {
    /// The client's fault: a 4xx status and a message meant for the client.
    Client {
        /// A 4xx status.
        status: StatusCode,
        /// Shown to the client as is.
        message: Cow<'static, str>,
    },
    /// Ours: logged, and answered as 500 (or 503 when worth retrying) without details.
    Internal {
        /// Whether the client may retry later (answered as 503 instead of 500).
        retryable: bool,
        /// The cause, for the log only.
        source: Box<dyn Error + Send + Sync + 'static>,
    },
}

impl AppError {
    /// A client error with this status and message.
    pub fn client(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Client {
            status,
            message: message.into(),
        }
    }

    /// 400 with this message.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, message)
    }

    /// 404 with this message.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::client(StatusCode::NOT_FOUND, message)
    }

    /// 404 `Todo not found`.
    pub fn todo_not_found() -> Self {
        Self::not_found(TODO_NOT_FOUND)
    }

    /// A server-side failure; logged, never shown.
    pub fn internal(source: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        Self::Internal {
            retryable: false,
            source: source.into(),
        }
    }

    /// The status the response will carry.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Client { status, .. } => *status,
            Self::Internal {
                retryable: true, ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<ValidationError> for AppError {
    fn from(error: ValidationError) -> Self {
        Self::bad_request(error.to_string())
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        Self::Internal {
            retryable: error.is_retryable(),
            source: Box::new(error),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            Self::Client { message, .. } => error_response(status, &message),
            Self::Internal { source, retryable } => {
                tracing::error!(error = %Report(&*source), retryable, "request failed");
                let message = if retryable {
                    "service temporarily unavailable, try again later"
                } else {
                    "internal server error"
                };
                error_response(status, message)
            }
        }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong, for the client.
    #[schema(example = "Todo not found")]
    pub(crate) error: String,
}

/// `{"error": message}` with `status`.
pub(crate) fn error_response(status: StatusCode, message: &str) -> Response {
    let body = ErrorBody {
        error: message.to_owned(),
    };
    (status, Json(body)).into_response()
}

/// Gives every error response a JSON body.
///
/// Handlers answer errors through [`AppError`]; this catches the rest (axum's own 404 and
/// 405, rejections of extractors we do not wrap), keeping their status and headers (such as
/// `Allow`) and replacing a non-JSON body by `{"error": "<status reason>"}`.
pub(crate) async fn json_error_bodies(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (mut parts, _body) = response.into_parts();
    let message = sentence_case(status.canonical_reason().unwrap_or("Error"));
    let body = serde_json::to_string(&ErrorBody { error: message })
        .unwrap_or_else(|_| String::from(r#"{"error":"Error"}"#));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// `"Method Not Allowed"` → `"Method not allowed"`.
fn sentence_case(reason: &str) -> String {
    let mut words = reason.split(' ');
    let first = words.next().unwrap_or_default().to_owned();
    words.fold(first, |mut sentence, word| {
        sentence.push(' ');
        sentence.push_str(&word.to_lowercase());
        sentence
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use axum::body::to_bytes;

    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("readable body");
        serde_json::from_slice(&bytes).expect("JSON body")
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let error = AppError::internal(std::io::Error::other(
            "connection to postgres://u:secret@db failed",
        ));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(response).await;
        assert_eq!(body, json!({"error": "internal server error"}));
    }

    #[tokio::test]
    async fn client_errors_show_their_message() {
        let response = AppError::todo_not_found().into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(body_of(response).await, json!({"error": "Todo not found"}));
    }

    #[tokio::test]
    async fn plain_error_responses_get_a_json_body_and_keep_their_headers() {
        let response = Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET,HEAD")
            .body(Body::empty())
            .expect("valid response");
        let response = json_error_bodies(response).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET,HEAD");
        assert_eq!(
            body_of(response).await,
            json!({"error": "Method not allowed"})
        );
    }

    #[tokio::test]
    async fn successful_responses_pass_unchanged() {
        let response = Response::new(Body::from("<html></html>"));
        let response = json_error_bodies(response).await;
        let bytes = to_bytes(response.into_body(), 1 << 16).await.expect("body");
        assert_eq!(&bytes[..], b"<html></html>");
    }
}
