//! Trace context from Kafka to both regions' buses, against the local stack: a message whose
//! producer put a W3C `traceparent` (and a correlation id) in its Kafka headers yields a change
//! event carrying that trace id on the home bus (`detail.metadata.trace_id`) and on the other
//! region's bus (the envelope's `traceparent`, and the unpacked detail's metadata); a malformed
//! `traceparent` is counted and its message applied and published all the same, without a trace.
//! (The `TraceHeader` of the `PutEvents` calls is not visible through the stand-in's rule
//! targets; it is checked on the entries, in `eda-core`'s `change_event` and `envelope` tests.)

use eda_core::envelope::EnvelopePacker;
use eda_loadtest::history::{qlik_message, sequence};
use eda_testkit::local::BROKERS;
use eda_testkit::{envelope_of, init_logs, unique, Inspector, Scenario, Sinks};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
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

/// Produces `value` with `headers` and waits for its delivery.
async fn produce(producer: &FutureProducer, topic: &str, value: &[u8], headers: &[(&str, &str)]) {
    let mut owned = OwnedHeaders::new();
    for (name, value) in headers {
        owned = owned.insert(Header {
            key: name,
            value: Some(value.as_bytes()),
        });
    }
    producer
        .send(
            FutureRecord::<(), _>::to(topic)
                .payload(value)
                .headers(owned),
            Duration::from_secs(30),
        )
        .await
        .expect("delivered");
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
