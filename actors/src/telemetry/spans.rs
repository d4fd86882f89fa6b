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

#[cfg(test)]
mod tests {
    use super::*;
    use eda_core::cdc::{KeyColumn, Operation, TableRef};
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt;

    const A: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const B: &str = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01";

    fn change(traceparent: Option<&str>) -> CdcEvent {
        CdcEvent {
            table: TableRef::new("SALES", "CUSTOMERS"),
            operation: Operation::Insert,
            key: vec![KeyColumn {
                name: "ID".into(),
                value: serde_json::json!("1"),
            }],
            after: None,
            before: None,
            change_sequence: String::new(),
            source_timestamp: None,
            transaction_id: None,
            stream_position: None,
            kafka: None,
            trace: traceparent.map(|t| {
                Arc::new(MessageTrace {
                    context: Some(TraceContext::parse(t).unwrap()),
                    tracestate: Some("congo=t61rcWkgMzE".into()),
                    correlation_id: Some("order-42".into()),
                })
            }),
        }
    }

    fn published(event: &CdcEvent) -> Option<TraceContext> {
        context_of(event)
    }

    #[test]
    fn one_context_makes_a_child_and_several_a_linked_root() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let a = TraceContext::parse(A).unwrap();
        let b = TraceContext::parse(B).unwrap();
        let (mut alike, mut mixed) = (
            vec![change(Some(A)), change(Some(A))],
            vec![change(Some(A)), change(Some(B)), change(None)],
        );
        tracing::subscriber::with_default(subscriber, || {
            drop(batch_span(&mut alike));
            drop(batch_span(&mut mixed));
        });
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let (child, root) = (&spans[0], &spans[1]);

        // One context: the producer's span is the parent, every change goes under the batch.
        assert_eq!(child.name, "apply_batch");
        assert_eq!(child.span_context.trace_id().to_bytes(), a.trace_id());
        assert_eq!(child.parent_span_id.to_bytes(), a.parent_id());
        assert_eq!(
            child.span_context.trace_state().header(),
            "congo=t61rcWkgMzE"
        );
        for event in &alike {
            let context = published(event).unwrap();
            assert_eq!(context.trace_id(), a.trace_id());
            assert_eq!(context.parent_id(), child.span_context.span_id().to_bytes());
            // The rest of the message's trace stays.
            let trace = event.trace.as_deref().unwrap();
            assert_eq!(trace.correlation_id.as_deref(), Some("order-42"));
        }

        // Several: a root of its own, linked to each; traced changes keep their producer's
        // context, the untraced one goes under the batch.
        assert_eq!(root.parent_span_id, SpanId::INVALID);
        assert_ne!(root.span_context.trace_id().to_bytes(), a.trace_id());
        let linked: Vec<[u8; 16]> = root
            .links
            .iter()
            .map(|l| l.span_context.trace_id().to_bytes())
            .collect();
        assert_eq!(linked, [a.trace_id(), b.trace_id()]);
        assert_eq!(published(&mixed[0]), Some(a));
        assert_eq!(published(&mixed[1]), Some(b));
        let own = published(&mixed[2]).unwrap();
        assert_eq!(own.trace_id(), root.span_context.trace_id().to_bytes());
        assert_eq!(own.parent_id(), root.span_context.span_id().to_bytes());
    }

    #[test]
    fn without_an_exporting_layer_the_changes_are_left_as_they_came() {
        let mut events = vec![change(Some(A)), change(None)];
        let before = events.clone();
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || drop(batch_span(&mut events)));
        assert_eq!(events, before);
    }
}
