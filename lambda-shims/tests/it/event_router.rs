//! The event router: a change event crosses to the other region inside the cross-region
//! envelope; a dead target opens the breaker, which stays open across invocations, and traffic
//! fails over to the home region.

use crate::support::{fixture, local_config, publisher, unique, Inspector};
use eda_actors::aws::{EventBridgeClient, RegionClients};
use eda_actors::core::breaker::State;
use eda_actors::core::envelope::{CrossRegionEvent, EnvelopePacker};
use eda_lambda_shims::event_router::{EventRouter, RouteResponse};
use serde_json::{json, Value};
use std::sync::Arc;

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
    let (home, other) = (&config.regions.primary, &config.regions.secondary);
    let clients = RegionClients::new(other, &config.aws).await;
    let target = Arc::new(EventBridgeClient::new(
        clients.eventbridge,
        other.event_bus.clone(),
        other.name.clone(),
    ));
    let router =
        EventRouter::new(&config, &home.name, target, publisher(&config, home).await).unwrap();
    let marker = unique("route");
    let event = change_event(&marker);

    let inspector = Inspector::start(&config, other).await;
    let answer = router.route(event.clone()).await.unwrap();
    assert!(
        matches!(&answer, RouteResponse::Routed { region, .. } if region == "us-east-1"),
        "{answer:?}"
    );
    let arrived = inspector.wait_for(std::slice::from_ref(&marker)).await;
    assert_eq!(arrived[0]["source"], "eda.cross-region");
    let envelope = CrossRegionEvent::from_detail(&arrived[0]["detail"].to_string()).unwrap();
    assert_eq!(envelope.source_region, "us-west-2");
    assert_eq!(envelope.target_region, "us-east-1");
    assert_eq!(envelope.correlation_id.as_deref(), Some("tx-1"));
    let mut packer = EnvelopePacker::new(&config.routing, None).unwrap();
    let payload: Value = serde_json::from_slice(&packer.unpack(&envelope).unwrap()).unwrap();
    assert_eq!(payload, event["detail"]);
}

#[tokio::test]
async fn a_dead_target_opens_the_breaker_across_invocations_and_traffic_fails_over() {
    let mut config = local_config();
    config.routing.replicate_event_types = vec!["*".into()];
    config.breaker.minimum_calls = 2;
    config.breaker.window_size = 2;
    config.breaker.failure_rate_threshold = 50.0;
    config.breaker.open_wait_ms = 60_000;
    config.publish.retry.max_attempts = 1;
    let (home, other) = (&config.regions.primary, &config.regions.secondary);
    let clients = RegionClients::new(other, &config.aws).await;
    // A bus that does not exist: every PutEvents entry is refused.
    let target = Arc::new(EventBridgeClient::new(
        clients.eventbridge,
        unique("no-such-bus"),
        other.name.clone(),
    ));
    let router =
        EventRouter::new(&config, &home.name, target, publisher(&config, home).await).unwrap();

    for _ in 0..2 {
        assert!(router.route(change_event(&unique("fail"))).await.is_err());
    }
    assert_eq!(router.breaker_state().await, State::Open);

    let inspector = Inspector::start(&config, home).await;
    let marker = unique("failover");
    let answer = router.route(change_event(&marker)).await.unwrap();
    assert_eq!(
        answer,
        RouteResponse::FailedOver {
            region: "us-west-2".into(),
            breaker: "open"
        }
    );
    let arrived = inspector.wait_for(std::slice::from_ref(&marker)).await;
    assert_eq!(arrived[0]["source"], "eda.cross-region");
}
