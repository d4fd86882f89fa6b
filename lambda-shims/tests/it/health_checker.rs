//! The health checker on the EventBridge schedule sample: both regions of the local stack are
//! probed and one `HealthCheckEvent` is published.

use crate::support::publisher;
use eda_actors::aws::RegionClients;
use eda_core::health::Status;
use eda_lambda_shims::health_checker::HealthChecker;
use eda_testkit::{local_config, Inspector};

#[tokio::test]
async fn both_regions_are_probed_and_one_event_is_published() {
    let config = local_config();
    let mut regions = Vec::new();
    for (_, region) in config.regions.all() {
        regions.push(RegionClients::new(region, &config.aws).await);
    }
    let home = &config.regions.primary;
    let checker = HealthChecker::new(&config, regions, publisher(&config, home).await);

    let inspector = Inspector::start(&config, home).await;
    let event = checker.check("request-1").await.unwrap();
    let names: Vec<_> = event.regions.iter().map(|r| r.region.as_str()).collect();
    assert_eq!(names, ["us-west-2", "us-east-1"]);
    for region in &event.regions {
        assert_eq!(region.services.len(), 3);
        assert_ne!(region.status, Status::Unhealthy, "{region:?}");
    }
    let published = inspector
        .wait_for(std::slice::from_ref(&event.event_id))
        .await;
    assert_eq!(published[0]["detail-type"], "health_check");
    assert_eq!(
        published[0]["detail"]["regions"][1]["services"][2]["service"],
        "sqs"
    );
}
