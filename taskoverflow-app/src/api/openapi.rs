//! The API's OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations and
//! the types they take and answer with; served at `GET /api/v1/openapi.json`.
//!
//! Every operation documents its success and a `default` response of [`ErrorBody`], so a
//! tester checks that every error, of any status, is JSON with a message.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "TaskOverflow",
        description = "A todo API whose calendar export runs on a worker queue."
    ),
    paths(
        super::health,
        super::ready,
        super::todos::list,
        super::todos::create,
        super::todos::show,
        super::todos::update,
        super::todos::remove,
        super::ical::request_calendar,
        super::ical::status,
        super::ical::result,
    )
)]
struct ApiDoc;

/// `GET /openapi.json`: the document.
pub(super) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
