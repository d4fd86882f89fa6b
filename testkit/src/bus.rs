//! EventBridge buses a test can look into. EventBridge keeps no events to read back, so a test
//! sees what reached a bus through an inspection queue: a queue of its own, the target of a rule
//! that copies every event on the bus, as the stack's `eda-inspect` does for `eda-events`. The
//! shared `eda-inspect` keeps every event of every run (thousands, once the loadtest has run),
//! which no test can scan in time.

use crate::local::unique;
use crate::queue::Queue;
use eda_actors::aws::RegionClients;
use eda_actors::region_router::CROSS_REGION_SOURCE;
use eda_config::{Config, RegionConfig};
use eda_core::envelope::CrossRegionEvent;
use serde_json::Value;
use std::time::Duration;

/// How long [`Inspector::wait_for`] waits for every marked event.
const WAIT_FOR_WITHIN: Duration = Duration::from_secs(30);

/// Creates a uniquely named bus in the clients' region, so a test's events reach no other
/// test's rules; returns its name.
pub async fn create_bus(clients: &RegionClients) -> String {
    let bus = unique("eda-bus");
    clients
        .eventbridge
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("create_event_bus");
    bus
}

/// Creates a uniquely named bus in the clients' region with an inspection queue; returns the bus
/// name and the queue. Both live as long as the stack: a test's own bus needs no clean-up.
pub async fn inspected_bus(clients: &RegionClients) -> (String, Queue) {
    let bus = create_bus(clients).await;
    let inspector = Inspector::attach(clients, &bus).await;
    (bus, inspector.queue)
}

/// An inspection queue on a bus the test shares (a region's configured bus), removed again once
/// the test found its events.
pub struct Inspector {
    /// Receives a copy of every event put on the bus since the inspector started.
    pub queue: Queue,
    /// Removes the rule again.
    eventbridge: aws_sdk_eventbridge::Client,
    /// The bus the rule is on.
    bus: String,
    /// The rule copying the bus's events to the queue.
    rule: String,
}

impl Inspector {
    /// Inspects `region`'s configured bus; start it before publishing, since the rule copies
    /// only what comes after it.
    pub async fn start(config: &Config, region: &RegionConfig) -> Self {
        let clients = RegionClients::new(region, &config.aws).await;
        Self::attach(&clients, &region.event_bus).await
    }

    /// Creates the queue and a rule on `bus` in the clients' region copying every event of the
    /// account to it.
    pub async fn attach(clients: &RegionClients, bus: &str) -> Self {
        let queue = Queue::create(clients, "eda-inspect").await;
        let arn = queue.arn().await;
        // arn:aws:sqs:<region>:<account>:<name>: the events of that account.
        let account = arn.split(':').nth(4).expect("an account in the queue ARN");
        let rule = unique("eda-inspect");
        clients
            .eventbridge
            .put_rule()
            .name(&rule)
            .event_bus_name(bus)
            .event_pattern(serde_json::json!({ "account": [account] }).to_string())
            .send()
            .await
            .expect("put_rule");
        clients
            .eventbridge
            .put_targets()
            .rule(&rule)
            .event_bus_name(bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("inspect")
                    .arn(arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("put_targets");
        Self {
            queue,
            eventbridge: clients.eventbridge.clone(),
            bus: bus.to_string(),
            rule,
        }
    }

    /// Waits until an event containing each marker has arrived, and returns them (EventBridge
    /// events as JSON) in marker order; then removes the rule and the queue, so the shared bus
    /// stops feeding a queue nobody reads.
    pub async fn wait_for(self, markers: &[String]) -> Vec<Value> {
        let found = self.queue.find(markers, WAIT_FOR_WITHIN).await;
        self.remove().await;
        assert!(
            found.iter().all(Option::is_some),
            "not every event reached bus {}: {markers:?}",
            self.bus
        );
        found.into_iter().map(Option::unwrap).collect()
    }

    /// Removes the rule and the queue (best effort: a leftover costs the stand-in a little).
    async fn remove(&self) {
        let _ = self
            .eventbridge
            .remove_targets()
            .rule(&self.rule)
            .event_bus_name(&self.bus)
            .ids("inspect")
            .send()
            .await;
        let _ = self
            .eventbridge
            .delete_rule()
            .name(&self.rule)
            .event_bus_name(&self.bus)
            .send()
            .await;
        self.queue.delete().await;
    }
}

/// The cross-region envelope an event seen on a bus carries; its source must say it is one, as
/// a region router's consumers rely on.
pub fn envelope_of(event: &Value) -> CrossRegionEvent {
    assert_eq!(event["source"], CROSS_REGION_SOURCE, "{event}");
    CrossRegionEvent::from_detail(&event["detail"].to_string()).expect("an envelope")
}
