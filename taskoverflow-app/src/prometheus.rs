//! Prometheus metrics: the process's recorder, the `/metrics` page, and the HTTP API's own
//! request metrics.
//!
//! [`install`] installs one recorder per process, before any queue or worker is built (they
//! register their instruments when made; see [`broker_core::instruments`]). `serve` answers
//! `GET /metrics` on its own port; `worker --metrics-port` serves the same page on a port of
//! its own ([`serve_metrics`]).

use std::{sync::OnceLock, time::Instant};

use axum::{
    Router,
    extract::{MatchedPath, Request},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// HTTP requests answered, by route, method and status.
pub const HTTP_REQUESTS: &str = "taskoverflow_http_requests_total";
/// How long HTTP requests took, by route, method and status.
pub const HTTP_REQUEST: &str = "taskoverflow_http_request_seconds";

/// Histogram buckets, in seconds: from a fast broker call to a slow task.
const BUCKETS: [f64; 14] = [
    0.000_25, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder for this process (once; later calls do nothing) and
/// describes every metric. Call it inside the Tokio runtime, before building queues.
pub fn install() {
    if HANDLE.get().is_some() {
        return;
    }
    let built = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)
        .and_then(PrometheusBuilder::install_recorder);
    let handle = match built {
        Ok(handle) => handle,
        Err(error) => {
            tracing::warn!(%error, "metrics are off: the recorder could not be installed");
            return;
        }
    };
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.run_upkeep();
        }
    });
    let _ = HANDLE.set(handle);
    broker_core::instruments::describe();
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests answered, by route, method and status."
    );
    describe_histogram!(
        HTTP_REQUEST,
        Unit::Seconds,
        "How long HTTP requests took, by route, method and status."
    );
}

/// `GET /metrics`: every metric in Prometheus's text format (empty when none is installed).
pub async fn scrape() -> Response {
    let text = HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Middleware counting and timing each request under its route's pattern, so ids do not
/// multiply the series, or `unmatched` when no route matched. Parameters are written `:id`
/// (`/api/v1/todos/:id`), not axum's `{id}`: braces inside label values trip up common
/// Prometheus text parsers.
pub async fn record_request(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || "unmatched".to_owned(),
        |path| path.as_str().replace('{', ":").replace('}', ""),
    );
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = [
        ("route", route),
        ("method", method),
        ("status", response.status().as_u16().to_string()),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_REQUEST, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// Serves `GET /metrics` on `host:port` until `stop` is cancelled: the worker's page.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve_metrics(
    host: &str,
    port: u16,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind((host, port)).await?;
    tracing::info!(address = %listener.local_addr()?, "metrics at /metrics");
    let app = Router::new().route("/metrics", get(scrape));
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the metrics server stopped");
        }
    }))
}
