//! The span of an applied batch, when spans are exported (`tracing.otlp_endpoint`), and the trace
//! each change of the batch is published under.
//!
//! A batch holds changes of several messages, each with the trace its producer gave it or none.
//! Its span (`apply_batch`, from the apply to the acknowledgement of every event) is:
//!
//! - the **child** of the producer's span when every change of the batch came with the same
//!   trace context: one trace from the producer through eda, and each change is published under
//!   the batch span (its `traceparent`'s parent is the batch span's id);
//! - otherwise a **new root**, with a **link** to each distinct producer context: a change that
//!   came with a trace keeps it (its producer's span stays its parent), a change that came
//!   without one is published under the batch span's new trace.
//!
//! Without export there is no span and nothing is made up: a change is published under its
//! producer's trace as it came, and a change without one carries no trace at all. Making up trace
//! ids nobody can look up would only add bytes to every event.

use eda_core::cdc::CdcEvent;
use eda_core::trace::{MessageTrace, TraceContext};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use std::str::FromStr;
use std::sync::Arc;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Opens the span of a batch of `events` (see the module's documentation) and stamps each event
/// with the trace it is to be published under. `tracing::Span::none()` when the span is disabled
/// (no exporting layer wants it); the events are then left as they came.
pub fn batch_span(events: &mut [CdcEvent]) -> tracing::Span {
    let span = tracing::info_span!(
        target: "eda_actors::batch",
        "apply_batch",
        changes = events.len(),
        otel.kind = "consumer"
    );
    if span.is_disabled() {
        return span;
    }
    let contexts: Vec<(TraceContext, Option<&str>)> = distinct_contexts(events);
    let one_parent = contexts.len() == 1 && events.iter().all(|e| context_of(e).is_some());
    if one_parent {
        let (context, state) = contexts[0];
        let parent = opentelemetry::Context::new().with_remote_span_context(otel(context, state));
        // Fails only without the exporting layer, where the span is disabled anyway.
        let _ = span.set_parent(parent);
    } else {
        for (context, state) in &contexts {
            span.add_link(otel(*context, *state));
        }
    }
    let own = span.context().span().span_context().clone();
    if !own.is_valid() {
        return span;
    }
    let Some(batch) = TraceContext::new(
        own.trace_id().to_bytes(),
        own.span_id().to_bytes(),
        own.trace_flags().to_u8(),
    ) else {
        return span;
    };
    for event in events.iter_mut() {
        if one_parent || context_of(event).is_none() {
            let trace = event.trace.as_deref().cloned().unwrap_or_default();
            event.trace = Some(Arc::new(MessageTrace {
                context: Some(batch),
                ..trace
            }));
        }
    }
    span
}

fn context_of(event: &CdcEvent) -> Option<TraceContext> {
    event.trace.as_ref().and_then(|t| t.context)
}

/// The producers' contexts among `events`, each once, in order of first appearance.
fn distinct_contexts(events: &[CdcEvent]) -> Vec<(TraceContext, Option<&str>)> {
    let mut seen: Vec<(TraceContext, Option<&str>)> = Vec::new();
    for trace in events.iter().filter_map(|e| e.trace.as_deref()) {
        if let Some(context) = trace.context {
            if !seen.iter().any(|(c, _)| *c == context) {
                seen.push((context, trace.tracestate.as_deref()));
            }
        }
    }
    seen
}

/// The OpenTelemetry form of a producer's context (remote: it was read off a message).
fn otel(context: TraceContext, state: Option<&str>) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(context.trace_id()),
        SpanId::from_bytes(context.parent_id()),
        TraceFlags::new(context.flags()),
        true,
        // A tracestate OpenTelemetry refuses is dropped, as W3C asks of a malformed one.
        state
            .and_then(|s| TraceState::from_str(s).ok())
            .unwrap_or_default(),
    )
}
