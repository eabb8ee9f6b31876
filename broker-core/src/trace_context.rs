//! W3C trace context across the broker: one trace from an HTTP request, through the enqueue,
//! to the task's run on a worker, on every backend.
//!
//! [`send_task`](crate::tasks::send_task) writes a `traceparent` header
//! (`00-<trace id>-<span id>-<flags>`, as W3C Trace Context defines it) into each task: a
//! child of the [current](TraceContext::current) context, or a new trace when there is none.
//! The [worker](crate::worker) reads it back and runs the task in a child context, recorded on
//! its `task` span as `trace_id`, `span_id` and `parent_span_id`, and current while the
//! handler runs, so tasks the handler sends continue the same trace. Celery carries the header
//! like any other; a message without one (or with a malformed one) starts a new trace.
//!
//! By default the ids are the framework's own, carried in a task-local ([`scope`](TraceContext::scope)),
//! so traces cross the broker with no exporter at all. An application that exports spans
//! installs its own [`Propagation`] (the TaskOverflow app's `otel` feature does, for
//! OpenTelemetry): contexts are then read from, and continued on, the exporter's spans, and
//! the ids in headers and span fields are the exported ones.

use std::{fmt, future::Future, sync::OnceLock};

use tracing::field::display;

/// The header that carries the trace context, as W3C names it.
pub const TRACEPARENT_HEADER: &str = "traceparent";

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// A position in a trace: the trace's id, this span's id, and whether it is sampled.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    parent_span_id: Option<u64>,
    sampled: bool,
}

impl TraceContext {
    /// The first span of a new, sampled trace.
    #[must_use]
    pub fn new_root() -> Self {
        Self {
            trace_id: nonzero_u128(),
            span_id: nonzero_u64(),
            parent_span_id: None,
            sampled: true,
        }
    }

    /// The context of a span an exporter made: its trace and span ids, as W3C writes them
    /// (`None` when either is malformed or all zero).
    #[must_use]
    pub fn from_ids(trace_id: &str, span_id: &str, sampled: bool) -> Option<Self> {
        let flags = if sampled { "01" } else { "00" };
        Self::parse(&format!("00-{trace_id}-{span_id}-{flags}"))
    }

    /// A new span of the same trace, whose parent is this one.
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            span_id: nonzero_u64(),
            parent_span_id: Some(self.span_id),
            ..*self
        }
    }

    /// Reads a `traceparent` value. `None` for anything W3C calls invalid: another length or
    /// separator, non-hex or upper-case digits, version `ff`, or an all-zero id. Versions
    /// after `00` are read by their first four fields, as the specification asks.
    #[must_use]
    pub fn parse(traceparent: &str) -> Option<Self> {
        let mut fields = traceparent.trim().split('-');
        let version = fields.next()?;
        let trace = fields.next()?;
        let span = fields.next()?;
        let flags = fields.next()?;
        let rest = fields.next();
        let lower_hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !lower_hex(version, 2) || version == "ff" || (version == "00" && rest.is_some()) {
            return None;
        }
        if !lower_hex(trace, 32) || !lower_hex(span, 16) || !lower_hex(flags, 2) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            parent_span_id: None,
            sampled: flags & 1 == 1,
        })
    }

    /// This context as a `traceparent` value (version `00`).
    #[must_use]
    pub fn to_traceparent(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }

    /// The trace's id, 32 lower-case hex digits.
    #[must_use]
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// This span's id, 16 lower-case hex digits.
    #[must_use]
    pub fn span_id(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// The parent span's id, when this context was made by [`child`](Self::child).
    #[must_use]
    pub fn parent_span_id(&self) -> Option<String> {
        self.parent_span_id.map(|id| format!("{id:016x}"))
    }

    /// Whether the trace is sampled (W3C's `sampled` flag).
    #[must_use]
    pub fn sampled(&self) -> bool {
        self.sampled
    }

    /// The context current in this task, set by [`scope`](Self::scope).
    #[must_use]
    pub fn current() -> Option<Self> {
        CURRENT.try_with(|current| *current).ok()
    }

    /// Runs `work` with this context current (see [`current`](Self::current)). Work spawned
    /// onto other tasks from inside does not inherit it.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }
}

/// Where trace contexts live: how a producer finds the context to descend from, and how a new
/// span (a request, an enqueue, a task's run) takes its place in a trace.
pub trait Propagation: Send + Sync + 'static {
    /// The context a new span should descend from, if any.
    fn current(&self) -> Option<TraceContext>;

    /// Makes `span` continue `parent` (or start a trace without one) and returns `span`'s
    /// context: the ids its `traceparent` and its fields carry.
    fn continue_in(&self, span: &tracing::Span, parent: Option<TraceContext>) -> TraceContext;
}

/// The default [`Propagation`]: the framework's own ids, in the task-local that
/// [`TraceContext::scope`] sets.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskLocal;

impl Propagation for TaskLocal {
    fn current(&self) -> Option<TraceContext> {
        TraceContext::current()
    }

    fn continue_in(&self, _span: &tracing::Span, parent: Option<TraceContext>) -> TraceContext {
        parent.map_or_else(TraceContext::new_root, |parent| parent.child())
    }
}

static PROPAGATION: OnceLock<Box<dyn Propagation>> = OnceLock::new();

/// Installs `propagation` for this process, before any task is sent or run. `false` when one
/// was installed already (which stays).
pub fn set_propagation(propagation: impl Propagation) -> bool {
    PROPAGATION.set(Box::new(propagation)).is_ok()
}

/// The installed [`Propagation`], [`TaskLocal`] unless an application set another.
#[must_use]
pub fn propagation() -> &'static dyn Propagation {
    PROPAGATION
        .get()
        .map_or(&TaskLocal, |installed| &**installed)
}

/// Places `span` in the trace that continues `parent` and records its ids in the span's
/// `trace_id`, `span_id` and `parent_span_id` fields (declared empty by the caller). Returns
/// the span's context, to scope the span's work in and to send on.
pub fn enter_trace(span: &tracing::Span, parent: Option<TraceContext>) -> TraceContext {
    let context = propagation().continue_in(span, parent);
    span.record("trace_id", display(context.trace_id()));
    span.record("span_id", display(context.span_id()));
    if let Some(parent) = parent {
        span.record("parent_span_id", display(parent.span_id()));
    }
    context
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_traceparent())
    }
}

fn nonzero_u128() -> u128 {
    uuid::Uuid::new_v4().as_u128().max(1)
}

fn nonzero_u64() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const W3C_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_w3c_example_reads_and_writes_back_unchanged() {
        let context = TraceContext::parse(W3C_EXAMPLE).expect("valid");
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.span_id(), "00f067aa0ba902b7");
        assert!(context.sampled());
        assert_eq!(context.to_traceparent(), W3C_EXAMPLE);
    }

    #[test]
    fn a_child_keeps_the_trace_and_points_at_its_parent() {
        let parent = TraceContext::parse(W3C_EXAMPLE).expect("valid");
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert_eq!(child.parent_span_id(), Some(parent.span_id()));
    }

    #[test]
    fn invalid_values_are_refused() {
        for invalid in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(invalid), None, "{invalid:?}");
        }
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        let read = TraceContext::parse(future).expect("a later version's first fields");
        assert!(!read.sampled());
    }

    #[tokio::test]
    async fn the_current_context_is_the_scoped_one_and_none_outside() {
        assert_eq!(TraceContext::current(), None);
        let context = TraceContext::new_root();
        let inside = context.scope(async { TraceContext::current() }).await;
        assert_eq!(inside, Some(context));
        let child = context
            .scope(async { enter_trace(&tracing::Span::none(), propagation().current()) })
            .await;
        assert_eq!(child.trace_id(), context.trace_id());
        assert_eq!(child.parent_span_id(), Some(context.span_id()));
    }
}
