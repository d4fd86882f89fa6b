//! The event router, on the daemon's region routers: a change event crosses to the other region
//! inside the cross-region envelope; a region that refuses connections opens its router's
//! breaker, which stays open across invocations of the same warm state, and its traffic is
//! recorded as owed to it, with a detour copy on the home region's bus.

use crate::support::{event_router, fixture, refusing_endpoint};
use eda_actors::aws::RegionClients;
use eda_core::breaker::State;
use eda_core::envelope::EnvelopePacker;
use eda_core::owed::OwedEvent;
use eda_lambda_shims::event_router::RouteResponse;
use eda_testkit::{envelope_of, local_config, unique, Inspector, Queue};
use serde_json::{json, Value};
use std::time::Duration;

/// How long a test invocation may take, as a Lambda deadline.
const DEADLINE: Duration = Duration::from_secs(20);

fn change_event(marker: &str) -> Value {
    let mut event = fixture("example-eventbridge-event-obj.json");
    event["source"] = json!("eda.cdc");
    event["detail-type"] = json!("SALES.CUSTOMERS.UPDATE");
    event["region"] = json!("us-west-2");
    event["detail"] = json!({
        "event_id": marker,
        "event_type": "SALES.CUSTOMERS.UPDATE",
        "source_region": "us-west-2",
        "timestamp": "2024-05-01T12:00:00.000",
        "correlation_id": "tx-1",
        "payload": {"key": {"CUSTOMER_ID": marker}}
    });
    event
}

#[tokio::test]
async fn a_change_event_crosses_to_the_other_region_in_the_envelope() {
    let mut config = local_config();
    config.routing.replicate_event_types = vec!["*".into()];
    let router = event_router(&config).await;
    let marker = unique("route");
    let event = change_event(&marker);

    let inspector = Inspector::start(&config, &config.regions.secondary).await;
    let answer = router
        .route(event.clone(), "req-1", DEADLINE)
        .await
        .unwrap();
    assert_eq!(
        answer,
        RouteResponse::Routed {
            region: "us-east-1".into(),
            breaker: "closed"
        }
    );
    let arrived = inspector.wait_for(std::slice::from_ref(&marker)).await;
    let envelope = envelope_of(&arrived[0]);
    assert_eq!(envelope.event_id, marker);
    assert_eq!(envelope.source_region, "us-west-2");
    assert_eq!(envelope.target_region, "us-east-1");
    assert_eq!(envelope.correlation_id.as_deref(), Some("tx-1"));
    let mut packer = EnvelopePacker::new(&config.routing, None).unwrap();
    let payload: Value = serde_json::from_slice(&packer.unpack(&envelope).unwrap()).unwrap();
    assert_eq!(payload, event["detail"]);
    let status = router.cross_region().status().await.unwrap();
    assert_eq!((status.delivered, status.failed_over), (1, 0), "{status:?}");
    router.cross_region().stop();
}

#[tokio::test]
async fn a_refusing_region_opens_the_breaker_across_invocations_and_traffic_fails_over() {
    let mut config = local_config();
    config.routing.replicate_event_types = vec!["*".into()];
    config.routing.call_timeout_ms = 1_000;
    config.breaker.minimum_calls = 2;
    config.breaker.window_size = 2;
    config.breaker.failure_rate_threshold = 50.0;
    config.breaker.open_wait_ms = 60_000;
    // The other region is down: its EventBridge endpoint refuses every connection.
    config.regions.secondary.endpoints.eventbridge = Some(refusing_endpoint());
    // What it is owed waits in the home region, in a queue of this test's own.
    let home_clients = RegionClients::new(&config.regions.primary, &config.aws).await;
    let owed = Queue::create(&home_clients, "eda-owed").await;
    config.regions.primary.owed_queue_url = owed.url.clone();
    let router = event_router(&config).await;
    let inspector = Inspector::start(&config, &config.regions.primary).await;

    // One warm state, three invocations: two failed calls open the breaker, and the third is
    // refused by it without a call. Each is owed to the other region, with a detour copy
    // delivered to the home bus.
    let markers: Vec<String> = (0..3).map(|_| unique("failover")).collect();
    let mut breakers = Vec::new();
    for marker in &markers {
        match router
            .route(change_event(marker), "req-1", DEADLINE)
            .await
            .unwrap()
        {
            RouteResponse::Routed { region, breaker } => {
                assert_eq!(region, "us-east-1");
                breakers.push(breaker);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(breakers, ["closed", "open", "open"]);
    let status = router.cross_region().status().await.unwrap();
    assert_eq!(status.state, State::Open);
    assert_eq!(
        (status.counters.failures, status.counters.rejected),
        (2, 1),
        "{status:?}"
    );
    assert_eq!(
        (status.delivered, status.failed_over, status.owed),
        (0, 3, 3),
        "{status:?}"
    );
    let records = owed.drain(3, Duration::from_secs(10)).await;
    let mut owed_ids: Vec<String> = records
        .iter()
        .map(|body| {
            let record = OwedEvent::from_body(body.as_bytes()).expect("an owed record");
            assert_eq!(record.target_region, "us-east-1");
            assert_eq!(record.envelope.target_region, "us-east-1");
            record.envelope.event_id
        })
        .collect();
    owed_ids.sort();
    let mut expected = markers.clone();
    expected.sort();
    assert_eq!(owed_ids, expected, "each event is owed to the other region");

    let arrived = inspector.wait_for(&markers).await;
    for (event, marker) in arrived.iter().zip(&markers) {
        let envelope = envelope_of(event);
        assert_eq!(&envelope.event_id, marker);
        assert_eq!(envelope.source_region, "us-west-2");
        // Packed by the home region's router, which delivered it.
        assert_eq!(envelope.target_region, "us-west-2");
    }
    router.cross_region().stop();
}
