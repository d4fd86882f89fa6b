//! What the tests share: the local configuration, the sample events, and a private inspection
//! queue that receives a copy of every event on a bus, as the stack's `eda-inspect` does.

use eda_actors::aws::RegionClients;
use eda_actors::region_router::CROSS_REGION_SOURCE;
use eda_actors::telemetry::Metrics;
use eda_config::{Config, RegionConfig};
use eda_core::envelope::CrossRegionEvent;
use eda_lambda_shims::event_router::EventRouter;
use eda_lambda_shims::publishing::{CrossRegion, RegionPublisher};
use eda_lambda_shims::stream_processor::StreamProcessor;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `config/local.toml`, which points at the local stack.
pub fn local_config_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/local.toml")
}

/// The shipped local configuration, read without the process environment.
pub fn local_config() -> Config {
    let text = std::fs::read_to_string(local_config_path()).expect("config/local.toml readable");
    let config: Config = toml::from_str(&text).expect("config/local.toml parses");
    config.validate().expect("config/local.toml is valid");
    config
}

/// A sample event from `tests/fixtures/`.
pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture readable"))
        .expect("fixture is JSON")
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
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
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    format!("http://{addr}")
}

/// The cross-region envelope an event seen on a bus carries; its source must say it is one.
pub fn envelope_of(event: &Value) -> CrossRegionEvent {
    assert_eq!(event["source"], CROSS_REGION_SOURCE, "{event}");
    CrossRegionEvent::from_detail(&event["detail"].to_string()).expect("an envelope")
}

/// A private copy of the stack's inspection rule: a queue of its own that receives every event
/// put on `region`'s bus from now on, as `eda-inspect` does. The shared `eda-inspect` queue keeps
/// every event of every test run (thousands, once the loadtest has run), which no reader can
/// scan in time without hiding other tests' messages from them.
pub struct Inspector {
    clients: RegionClients,
    bus: String,
    name: String,
    url: String,
}

impl Inspector {
    /// Creates the queue and the rule; start it before publishing.
    pub async fn start(config: &Config, region: &RegionConfig) -> Inspector {
        let clients = RegionClients::new(region, &config.aws).await;
        let name = unique("eda-test-inspect");
        let url = clients
            .sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .expect("create_queue")
            .queue_url()
            .expect("url")
            .to_string();
        let account = config
            .aws
            .static_credentials
            .as_ref()
            .map(|c| c.access_key_id.clone())
            .expect("local credentials name the account");
        clients
            .eventbridge
            .put_rule()
            .name(&name)
            .event_bus_name(&region.event_bus)
            .event_pattern(serde_json::json!({ "account": [account] }).to_string())
            .send()
            .await
            .expect("put_rule");
        clients
            .eventbridge
            .put_targets()
            .rule(&name)
            .event_bus_name(&region.event_bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(format!("arn:aws:sqs:{}:{account}:{name}", region.name))
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("put_targets");
        Inspector {
            clients,
            bus: region.event_bus.clone(),
            name,
            url,
        }
    }

    /// Waits until an event containing each marker has arrived, and returns their bodies
    /// (EventBridge events as JSON) in marker order; then removes the rule and the queue.
    pub async fn wait_for(self, markers: &[String]) -> Vec<Value> {
        let mut found: Vec<Option<Value>> = vec![None; markers.len()];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while found.iter().any(Option::is_none) && tokio::time::Instant::now() < deadline {
            let received = self
                .clients
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive_message");
            for message in received.messages() {
                let Some(body) = message.body() else { continue };
                for (i, marker) in markers.iter().enumerate() {
                    if found[i].is_none() && body.contains(marker.as_str()) {
                        found[i] = Some(serde_json::from_str(body).expect("an event as JSON"));
                    }
                }
                if let Some(handle) = message.receipt_handle() {
                    let _ = self
                        .clients
                        .sqs
                        .delete_message()
                        .queue_url(&self.url)
                        .receipt_handle(handle)
                        .send()
                        .await;
                }
            }
        }
        self.remove().await;
        assert!(
            found.iter().all(Option::is_some),
            "not every event reached bus {}: {markers:?}",
            self.bus
        );
        found.into_iter().map(Option::unwrap).collect()
    }

    async fn remove(&self) {
        let events = &self.clients.eventbridge;
        let _ = events
            .remove_targets()
            .rule(&self.name)
            .event_bus_name(&self.bus)
            .ids("queue")
            .send()
            .await;
        let _ = events
            .delete_rule()
            .name(&self.name)
            .event_bus_name(&self.bus)
            .send()
            .await;
        let _ = self
            .clients
            .sqs
            .delete_queue()
            .queue_url(&self.url)
            .send()
            .await;
    }
}
