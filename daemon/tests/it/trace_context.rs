//! Trace context from Kafka to both regions' buses, against the local stack: a message whose
//! producer put a W3C `traceparent` (and a correlation id) in its Kafka headers yields a change
//! event carrying that trace id on the home bus (`detail.metadata.trace_id`) and on the other
//! region's bus (the envelope's `traceparent`, and the unpacked detail's metadata); a malformed
//! `traceparent` is counted and its message applied and published all the same, without a trace.
//! (The `TraceHeader` of the `PutEvents` calls is not visible through the stand-in's rule
//! targets; it is checked on the entries, in `eda-core`'s `change_event` and `envelope` tests.)

use crate::topic_tables::produce;
use eda_core::envelope::EnvelopePacker;
use eda_loadtest::history::{qlik_message, sequence};
use eda_testkit::local::BROKERS;
use eda_testkit::{envelope_of, init_logs, unique, Inspector, Scenario, Sinks};
use serde_json::{Map, Value};
use std::time::Duration;

/// The producer's trace: the W3C recommendation's own example.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A Qlik INSERT into `SALES.CUSTOMERS` of the row `CUSTOMER_ID` = `key`.
fn insert(key: &str) -> Vec<u8> {
    let mut row = Map::new();
    row.insert("CUSTOMER_ID".into(), key.into());
    row.insert("NOTE".into(), "traced".into());
    qlik_message("INSERT", &sequence(1), &row, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_on_a_message_is_the_trace_of_its_event_on_both_regions_buses() {
    init_logs();
    let mut scenario = Scenario::new(Sinks::create().await, 1).await;
    scenario
        .config
        .kafka
        .key_columns
        .insert("SALES.CUSTOMERS".into(), vec!["CUSTOMER_ID".into()]);
    let (traced, malformed, untraced) = (unique("traced"), unique("malformed"), unique("plain"));
    let producer = eda_loadtest::kafka::producer(BROKERS).expect("producer");
    let topic = scenario.topic.clone();
    produce(
        &producer,
        &topic,
        &insert(&traced),
        &[
            ("traceparent", TRACEPARENT),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("correlation-id", "order-42"),
        ],
    )
    .await;
    // Upper-case hex: not a valid traceparent.
    produce(
        &producer,
        &topic,
        &insert(&malformed),
        &[("traceparent", &TRACEPARENT.to_uppercase())],
    )
    .await;
    produce(&producer, &topic, &insert(&untraced), &[]).await;

    let secondary = eda_actors::aws::RegionClients::new(
        &scenario.config.regions.secondary,
        &scenario.config.aws,
    )
    .await;
    let other_bus = Inspector::attach(&secondary, &scenario.sinks.bus).await;
    let (pipeline, obs) = scenario.start().await;
    let markers = [traced.clone(), malformed.clone(), untraced.clone()];
    let home = scenario
        .sinks
        .inspect
        .as_ref()
        .expect("inspected")
        .find(&markers, Duration::from_secs(90))
        .await;
    let home: Vec<Value> = home
        .into_iter()
        .zip(&markers)
        .map(|(event, marker)| event.unwrap_or_else(|| panic!("no event for {marker}")))
        .collect();
    let ids: Vec<String> = home
        .iter()
        .map(|e| e["detail"]["event_id"].as_str().expect("an id").to_owned())
        .collect();
    let crossed = other_bus.wait_for(&ids).await;
    let text = obs.metrics.encode().expect("metrics encode");
    pipeline.shutdown().await;

    // The home bus: the traced message's event carries its trace and its correlation id; the
    // top-level correlation id is still Qlik's transaction id.
    let metadata = &home[0]["detail"]["metadata"];
    assert_eq!(metadata["trace_id"], TRACE_ID, "{}", home[0]);
    assert_eq!(metadata["traceparent"], TRACEPARENT, "{}", home[0]);
    assert_eq!(metadata["message_correlation_id"], "order-42");
    // The malformed and the untraced messages were applied and published, without a trace.
    for event in &home[1..] {
        assert!(
            event["detail"]["metadata"].get("trace_id").is_none(),
            "{event}"
        );
    }

    // The other region's bus: the envelope carries the trace in clear, and the event inside it
    // is the home bus's, trace included.
    let mut packer = EnvelopePacker::new(&scenario.config.routing, None).expect("packer");
    let envelope = envelope_of(&crossed[0]);
    assert_eq!(envelope.traceparent.as_deref(), Some(TRACEPARENT));
    let context = envelope.trace_context().expect("a valid traceparent");
    assert_eq!(context.trace_id_hex(), TRACE_ID);
    let payload: Value =
        serde_json::from_slice(&packer.unpack(&envelope).expect("unpacks")).expect("JSON");
    assert_eq!(payload, home[0]["detail"]);
    for event in &crossed[1..] {
        assert_eq!(envelope_of(event).traceparent, None, "{event}");
    }

    // The malformed header was counted, once.
    let line = format!("eda_trace_headers_malformed_total{{topic=\"{topic}\"}} 1");
    assert!(text.contains(&line), "{line} not in:\n{text}");
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "nothing dead-lettered"
    );
}

/// The 16 bytes of a 32-digit hex trace id (or 8 of a span id), as OTLP carries them.
fn bytes_of(hex_id: &str) -> Vec<u8> {
    (0..hex_id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex_id[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The `(trace id, parent id)` of an event's `metadata.traceparent`, as bytes.
fn published_under(event: &Value) -> (Vec<u8>, Vec<u8>) {
    let traceparent = event["detail"]["metadata"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("a traceparent: {event}"));
    let parts: Vec<&str> = traceparent.split('-').collect();
    (bytes_of(parts[1]), bytes_of(parts[2]))
}

/// With `tracing.otlp_endpoint` set, the daemon process exports a span per applied batch: the
/// batch of a traced message is the child of the producer's span, and its event is published
/// under that batch span; the batch of an untraced message starts a trace of its own, which its
/// event then carries. The spans are received by the stand-in OTLP receiver (`otlp_receiver.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_batch_spans_continue_the_producers_trace_and_events_name_them() {
    use super::crash::{log_path, Daemon};
    use super::otlp_receiver::OtlpReceiver;
    init_logs();
    let scenario = Scenario::new(Sinks::create().await, 1).await;
    let receiver = OtlpReceiver::start().await;
    let producer = eda_loadtest::kafka::producer(BROKERS).expect("producer");
    let (traced, untraced) = (unique("exported"), unique("rooted"));
    produce(
        &producer,
        &scenario.topic,
        &insert(&traced),
        &[("traceparent", TRACEPARENT)],
    )
    .await;
    let mut env = scenario.env();
    env.retain(|(k, _)| k != "EDA_HTTP__LISTEN");
    env.extend([
        (
            "EDA_HTTP__LISTEN".to_string(),
            format!("127.0.0.1:{}", eda_testkit::free_port()),
        ),
        ("EDA_TRACING__OTLP_ENDPOINT".into(), receiver.endpoint()),
        ("EDA_TRACING__SERVICE_NAME".into(), "eda-trace-test".into()),
    ]);
    let log = log_path("trace_export");
    let mut daemon = Daemon::start(&env, &log);
    let inspect = scenario.sinks.inspect.as_ref().expect("inspected");
    let within = Duration::from_secs(90);
    let first = inspect
        .find(std::slice::from_ref(&traced), within)
        .await
        .remove(0);
    let first = first.unwrap_or_else(|| {
        panic!(
            "no event for the traced message; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    // Alone in its batch: produced once the first batch is out.
    produce(&producer, &scenario.topic, &insert(&untraced), &[]).await;
    let second = inspect
        .find(std::slice::from_ref(&untraced), within)
        .await
        .remove(0);
    let second = second.expect("an event for the untraced message");
    // SIGTERM: the daemon drains, then flushes its spans before it exits.
    daemon.signal("-TERM");
    let status = daemon
        .wait(Duration::from_secs(30))
        .expect("the daemon exits");
    assert!(status.success(), "{status:?}");

    let batches: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|(_, span)| span.name == "apply_batch")
        .collect();
    assert!(
        batches
            .iter()
            .all(|(service, _)| service == "eda-trace-test"),
        "{batches:#?}"
    );
    // The traced message's batch: a child of the producer's span, in its trace; its event is
    // published under the batch span.
    let (trace, parent) = published_under(&first);
    assert_eq!(trace, bytes_of(TRACE_ID), "{first}");
    let batch = batches
        .iter()
        .map(|(_, span)| span)
        .find(|span| span.span_id == parent)
        .unwrap_or_else(|| panic!("no exported span is the event's parent: {batches:#?}"));
    assert_eq!(batch.trace_id, bytes_of(TRACE_ID));
    assert_eq!(batch.parent_span_id, bytes_of("00f067aa0ba902b7"));
    // The untraced message's batch: a root span of a new trace, which its event carries.
    let (trace, parent) = published_under(&second);
    assert_ne!(trace, bytes_of(TRACE_ID));
    let batch = batches
        .iter()
        .map(|(_, span)| span)
        .find(|span| span.span_id == parent)
        .unwrap_or_else(|| panic!("no exported span is the event's parent: {batches:#?}"));
    assert_eq!(batch.trace_id, trace);
    assert!(batch.parent_span_id.is_empty(), "{batch:#?}");
    assert_eq!(
        second["detail"]["metadata"]["trace_id"].as_str(),
        Some(hex(&trace).as_str())
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
