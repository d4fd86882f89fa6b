//! What the Lambda tests share among themselves: the sample events, and the shims as their cold
//! starts build them. What they share with the daemon's tests (the local configuration, unique
//! names, inspection queues) is in `eda-testkit`.

use eda_actors::aws::RegionClients;
use eda_actors::telemetry::Metrics;
use eda_config::{Config, RegionConfig};
use eda_lambda_shims::event_router::EventRouter;
use eda_lambda_shims::publishing::{CrossRegion, RegionPublisher};
use eda_lambda_shims::stream_processor::StreamProcessor;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// A sample event from `tests/fixtures/`.
pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture readable"))
        .expect("fixture is JSON")
}

/// A publisher for `region`, as a shim's cold start builds it.
pub async fn publisher(config: &Config, region: &RegionConfig) -> RegionPublisher {
    let clients = RegionClients::new(region, &config.aws).await;
    RegionPublisher::spawn(config, region, &clients, Arc::new(Metrics::new()))
        .await
        .expect("actors start")
}

/// Both region routers of a shim whose home is `home`, dead-lettering through `publisher`'s DLQ
/// writer, as the stream processor's cold start builds them.
pub async fn cross_region(
    config: &Config,
    home: &RegionConfig,
    publisher: &RegionPublisher,
) -> CrossRegion {
    CrossRegion::spawn(config, home, publisher.dlq(), Arc::new(Metrics::new()))
        .await
        .expect("routers start")
}

/// The stream processor a cold start in the primary region builds.
pub async fn stream_processor(config: &Config) -> StreamProcessor {
    let home = &config.regions.primary;
    let publisher = publisher(config, home).await;
    let routers = cross_region(config, home, &publisher).await;
    StreamProcessor::new(config, publisher, routers)
}

/// The event router a cold start in the primary region builds.
pub async fn event_router(config: &Config) -> EventRouter {
    let home = &config.regions.primary;
    let publisher = publisher(config, home).await;
    EventRouter::new(config, cross_region(config, home, &publisher).await)
}

/// An endpoint that refuses every connection, as a region that is down does: a loopback port
/// that was just bound and released, so nothing listens on it.
pub fn refusing_endpoint() -> String {
    format!("http://127.0.0.1:{}", eda_testkit::free_port())
}
