//! What the tests share: the local configuration, the sample events, and the inspection queue
//! (`eda-inspect`, which receives a copy of every event on bus `eda-events`).

use eda_actors::aws::RegionClients;
use eda_actors::telemetry::Metrics;
use eda_config::{Config, RegionConfig};
use eda_lambda_shims::publishing::RegionPublisher;
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

/// Waits until an event containing each marker has reached `region`'s inspection queue, and
/// returns their bodies (EventBridge events as JSON), in marker order.
pub async fn inspected(config: &Config, region: &RegionConfig, markers: &[String]) -> Vec<Value> {
    let clients = RegionClients::new(region, &config.aws).await;
    let url = clients
        .sqs
        .get_queue_url()
        .queue_name("eda-inspect")
        .send()
        .await
        .expect("eda-inspect exists")
        .queue_url()
        .expect("url")
        .to_string();
    let mut found: Vec<Option<Value>> = vec![None; markers.len()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while found.iter().any(Option::is_none) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every event reached eda-inspect in {}: {markers:?}",
            region.name
        );
        // Other tests read the same queue: what is not ours is hidden for one second only (so
        // the next receive gets further into the queue), and what is ours is deleted.
        let received = clients
            .sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(1)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive_message");
        for message in received.messages() {
            let Some(body) = message.body() else { continue };
            for (i, marker) in markers.iter().enumerate() {
                if found[i].is_none() && body.contains(marker.as_str()) {
                    found[i] = Some(serde_json::from_str(body).expect("an event as JSON"));
                    if let Some(handle) = message.receipt_handle() {
                        let _ = clients
                            .sqs
                            .delete_message()
                            .queue_url(&url)
                            .receipt_handle(handle)
                            .send()
                            .await;
                    }
                }
            }
        }
    }
    found.into_iter().map(Option::unwrap).collect()
}
