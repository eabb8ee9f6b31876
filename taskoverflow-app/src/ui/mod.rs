//! The web UI: one page and its script and stylesheet, compiled into the binary.
//!
//! Plain HTML, CSS and JavaScript with no build step and nothing fetched from elsewhere.
//! The page talks to the API under `/api/v1` on the same origin. Elements a browser test
//! drives carry stable ids and `data-testid`s: `#new-title`, `#new-description`,
//! `#new-deadline`, `#add-todo`, `#todo-list`, `.todo-item` (with `data-id`), `.todo-toggle`,
//! `.todo-delete`, `#export-ical`, `#ical-status`, `#ical-download`, `#message`.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::IntoResponse,
    routing::get,
};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");

/// The UI routes: `/` and `/static/app.css`, `/static/app.js`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/static/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route(
            "/static/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
}

/// An embedded file. `no-cache` lets browsers keep it but check with the server each time,
/// so a new binary's UI is seen at once.
async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
}
