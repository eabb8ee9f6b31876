//! OpenTelemetry export (feature `otel`): the `request`, `enqueue` and `task` spans go to an
//! OTLP/HTTP collector, one trace from an HTTP request to the task's run on a worker.
//!
//! [`OtelPropagation`] makes the exported spans the source of trace ids: a producer writes
//! its `enqueue` span's own ids into `traceparent`, and a worker's `task` span takes the
//! remote parent from it, so the collector sees parent links across processes and brokers.
//! When a span is filtered out (say `RUST_LOG=warn`), the framework's own ids carry the trace
//! on instead.

use broker_core::trace_context::{Propagation, TaskLocal, TraceContext};
use opentelemetry::{
    Context,
    trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
        TracerProvider as _,
    },
};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::registry::LookupSpan;

/// The variable naming the collector, as OpenTelemetry's SDKs read it.
pub const ENDPOINT_VARIABLE: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Trace contexts read from and continued on OpenTelemetry's spans.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtelPropagation;

impl Propagation for OtelPropagation {
    fn current(&self) -> Option<TraceContext> {
        exported(&Span::current()).or_else(TraceContext::current)
    }

    fn continue_in(&self, span: &Span, parent: Option<TraceContext>) -> TraceContext {
        if let Some(parent) = parent.and_then(|p| remote(&p)) {
            // Refused only when no OpenTelemetry layer records the span: the fallback below.
            let _ = span.set_parent(Context::new().with_remote_span_context(parent));
        }
        exported(span).unwrap_or_else(|| TaskLocal.continue_in(span, parent))
    }
}

/// The ids OpenTelemetry gave `span`, when a layer records it.
fn exported(span: &Span) -> Option<TraceContext> {
    let context = span.context();
    let recorded = context.span();
    let ids = recorded.span_context();
    ids.is_valid().then_some(())?;
    TraceContext::from_ids(
        &ids.trace_id().to_string(),
        &ids.span_id().to_string(),
        ids.is_sampled(),
    )
}

/// `context` as OpenTelemetry's remote parent.
fn remote(context: &TraceContext) -> Option<SpanContext> {
    let flags = if context.sampled() {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    Some(SpanContext::new(
        TraceId::from_hex(&context.trace_id()).ok()?,
        SpanId::from_hex(&context.span_id()).ok()?,
        flags,
        true,
        TraceState::default(),
    ))
}

/// The tracing layer that hands spans to `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("taskoverflow"))
}

/// A provider batching spans to the OTLP/HTTP collector [`ENDPOINT_VARIABLE`] names, or
/// `None` when it is unset. Shut it down before the process ends, so the last spans leave.
///
/// # Errors
/// The exporter cannot be built (a malformed endpoint).
pub fn provider_from_env()
-> Option<Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError>> {
    let endpoint = std::env::var(ENDPOINT_VARIABLE)
        .ok()
        .filter(|e| !e.trim().is_empty())?;
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces)
        .build();
    Some(exporter.map(|exporter| {
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .build()
    }))
}
