//! OpenTelemetry export (feature `otel`): an HTTP request, the enqueue it makes and the task's
//! run are one exported trace with parent links, caught by an in-process exporter; and the
//! binary sends its spans to the OTLP/HTTP collector `OTEL_EXPORTER_OTLP_ENDPOINT` names.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Request, StatusCode},
};
use broker_core::{
    trace_context::{TraceContext, enter_trace, set_propagation},
    worker::Worker,
};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::Value;
use taskoverflow::{
    api::{AppState, router},
    jobs::{CalendarJobs, tasks},
    otel::{OtelPropagation, layer},
    store::{StoreLocation, TodoStore},
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt as _};

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn call(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("traceparent", CALLER)
        .body(Body::from(body.to_owned()))
        .expect("a request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_its_enqueue_and_the_run_are_one_exported_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(EnvFilter::new("info"))
        .with(layer(&provider));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    assert!(set_propagation(OtelPropagation));

    // A span the filter drops has no exported ids: the framework's own carry the trace on.
    let caller = TraceContext::parse(CALLER).expect("valid");
    let filtered = tracing::debug_span!(
        "filtered",
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    );
    let carried = enter_trace(&filtered, Some(caller));
    assert_eq!(carried.trace_id(), caller.trace_id());
    assert_eq!(carried.parent_span_id(), Some(caller.span_id()));

    let jobs = CalendarJobs::in_process("ical").await.expect("jobs");
    let store = TodoStore::open(&StoreLocation::Memory)
        .await
        .expect("store");
    let app = router(AppState::new(store, jobs.clone()));
    let stop = CancellationToken::new();
    let worker = Worker::new(jobs.queue.clone(), jobs.results.clone(), tasks());
    let worker = tokio::spawn(worker.run(stop.clone()));

    let todo = r#"{"title": "Export me", "deadline_at": "2030-01-02T03:04:05"}"#;
    let (status, _) = call(&app, "POST", "/api/v1/todos", todo).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, accepted) = call(&app, "POST", "/api/v1/todos/ical", "").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let task_id = accepted["task_id"].as_str().expect("task_id").to_owned();
    let status_uri = format!("/api/v1/todos/ical/{task_id}/status");
    for _ in 0..200 {
        let (_, state) = call(&app, "GET", &status_uri, "").await;
        if state["task_status"] == "SUCCESS" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    worker.await.expect("the worker ends").expect("cleanly");
    provider.force_flush().expect("flush");

    let spans = exporter.get_finished_spans().expect("spans");
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    assert!(
        spans
            .iter()
            .all(|s| s.span_context.trace_id().to_string() == caller_trace),
        "every exported span is in the caller's trace"
    );
    let [enqueue] = named(&spans, "enqueue")[..] else {
        panic!("one enqueue span: {spans:?}");
    };
    let [task] = named(&spans, "task")[..] else {
        panic!("one task span: {spans:?}");
    };
    let request = named(&spans, "request")
        .into_iter()
        .find(|r| r.span_context.span_id() == enqueue.parent_span_id)
        .unwrap_or_else(|| panic!("the enqueue's parent is a request span: {spans:?}"));
    assert_eq!(request.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(
        request.parent_span_is_remote,
        "the request continues the caller"
    );
    assert_eq!(task.parent_span_id, enqueue.span_context.span_id());
    assert!(
        task.parent_span_is_remote,
        "the run continues the message's traceparent"
    );
}

/// The caller's trace id as the 16 bytes OTLP's protobuf carries.
fn caller_trace_bytes() -> Vec<u8> {
    (0..16)
        .map(|i| u8::from_str_radix(&CALLER[3 + 2 * i..5 + 2 * i], 16).expect("hex"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_exports_its_spans_to_the_collector_the_environment_names() {
    use axum::{body::Bytes, extract::State, routing::post};

    let received: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let collector = Router::new()
        .route(
            "/v1/traces",
            post(
                |State(received): State<Arc<Mutex<Vec<Bytes>>>>, body: Bytes| async move {
                    received.lock().expect("bodies").push(body);
                    StatusCode::OK
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let server = support::Server::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    let client = reqwest::Client::new();
    let todos = format!("{}/todos", server.base);
    let todo = serde_json::json!({"title": "Export me", "deadline_at": "2030-01-02T03:04:05"});
    client.post(&todos).json(&todo).send().await.expect("POST");
    let accepted: Value = client
        .post(format!("{todos}/ical"))
        .header("traceparent", CALLER)
        .send()
        .await
        .expect("POST ical")
        .json()
        .await
        .expect("JSON");
    support::poll_until_done(&client, accepted["task_url"].as_str().expect("task_url")).await;
    let (clean, logged) = server.terminate();
    assert!(clean, "{logged}");

    let bodies = received.lock().expect("bodies").clone();
    let trace = caller_trace_bytes();
    let carrying = bodies
        .iter()
        .filter(|body| body.windows(trace.len()).any(|w| w == trace.as_slice()))
        .count();
    assert!(
        carrying > 0,
        "{} export(s) reached the collector, none with the caller's trace",
        bodies.len()
    );
}
