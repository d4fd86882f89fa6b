//! The event transformer with the EventBridge sample event: a valid business event comes out
//! `transformed`, the sample's EC2 detail `validation_failed`, both on the bus.

use crate::support::{fixture, publisher};
use eda_lambda_shims::event_transformer::EventTransformer;
use eda_testkit::{local_config, Inspector};
use serde_json::json;

#[tokio::test]
async fn valid_and_invalid_events_are_published_under_their_outcome() {
    let config = local_config();
    let region = &config.regions.primary;
    let transformer = EventTransformer::new(&config, publisher(&config, region).await).unwrap();

    let inspector = Inspector::start(&config, region).await;
    let event_id = uuid::Uuid::new_v4().to_string();
    let mut valid = fixture("example-eventbridge-event-obj.json");
    valid["detail"] = json!({
        "event_id": event_id,
        "event_type": "SALES.CUSTOMERS.UPDATE",
        "source_region": "us-west-2",
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "payload": {"email": "  Someone@Example.COM "}
    });
    let answer = transformer.process(valid).await.unwrap();
    assert_eq!(answer.detail_type, "transformed");
    assert_eq!(answer.event_id, event_id);

    let mut invalid = fixture("example-eventbridge-event-obj.json");
    let sample_id = uuid::Uuid::new_v4().to_string();
    invalid["id"] = json!(sample_id);
    invalid["detail"]["instance-id"] = json!(sample_id);
    let answer = transformer.process(invalid).await.unwrap();
    assert_eq!(answer.detail_type, "validation_failed");

    let events = inspector.wait_for(&[event_id.clone(), sample_id]).await;
    assert_eq!(events[0]["detail-type"], "transformed");
    assert_eq!(events[0]["detail"]["processing_region"], "us-west-2");
    assert_eq!(events[1]["detail-type"], "validation_failed");
    let reasons = events[1]["detail"]["reasons"].as_array().unwrap();
    assert!(
        reasons.len() >= 4,
        "every missing field is listed: {reasons:?}"
    );
}
