//! Extractors that turn every malformed request into an [`AppError`] with a JSON body.

use axum::{
    Json,
    extract::{FromRequest, FromRequestParts, Path, Request, rejection::JsonRejection},
    http::{StatusCode, request::Parts},
};
use serde_json::Value;

use super::{AppError, BODY_LIMIT_BYTES};

/// A request body that is JSON, not yet validated.
///
/// Refuses, in this order: a `Content-Type` other than `application/json` (or
/// `application/*+json`) with 415, a body over the limit with 413, and text that is not
/// JSON with 400.
#[derive(Debug)]
pub(crate) struct JsonBody(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<Value>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(refusal(&rejection)),
        }
    }
}

fn refusal(rejection: &JsonRejection) -> AppError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => AppError::client(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        ),
        JsonRejection::JsonSyntaxError(_) | JsonRejection::JsonDataError(_) => {
            AppError::bad_request(format!("malformed JSON: {}", json_detail(rejection)))
        }
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {BODY_LIMIT_BYTES} bytes"),
        ),
        _ if rejection.status().is_client_error() => {
            AppError::client(rejection.status(), "could not read the request body")
        }
        _ => AppError::internal(rejection.body_text()),
    }
}

/// The parser's own words ("expected value at line 1 column 1"), without axum's prefix.
fn json_detail(rejection: &JsonRejection) -> String {
    let text = rejection.body_text();
    match text.split_once(": ") {
        Some((_prefix, detail)) => detail.to_owned(),
        None => text,
    }
}

/// The `{id}` of a todo route.
///
/// Anything but a non-negative decimal integer that fits in 64 bits is refused with
/// 404 `Todo not found`, before the body is read, as the reference's integer route does: no
/// such todo can exist.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TodoId(pub(crate) i64);

impl<S: Send + Sync> FromRequestParts<S> for TodoId {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::todo_not_found())?;
        parse_id(&text)
            .map(Self)
            .ok_or_else(AppError::todo_not_found)
    }
}

fn parse_id(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_decimal_digits_only() {
        assert_eq!(parse_id("42"), Some(42));
        assert_eq!(parse_id("007"), Some(7));
        for text in [
            "",
            "-1",
            "+1",
            "1.5",
            "ical",
            "1e3",
            " 1",
            "99999999999999999999",
        ] {
            assert_eq!(parse_id(text), None, "{text:?}");
        }
    }
}
