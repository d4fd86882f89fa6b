//! The configuration mapped to what the actors take: the settings each actor is built with, derived
//! from [`Config`] in one place, so the supervision tree (`pipeline`), the redrive command and the
//! CLI's `decode` agree on them without reaching into the tree's file.

use crate::cdc_applier::ApplierSettings;
use eda_config::Config;
use eda_core::apply_plan::TableRouting;
use eda_core::cdc::TableRef;
use eda_core::claim_check::EventLimits;

/// Which DynamoDB table each source table goes to: the primary region's `cdc_table`, except
/// where `apply.table_map` (`"SCHEMA.TABLE" = "target"`) says otherwise.
pub fn table_routing(config: &Config) -> TableRouting {
    let mut routing = TableRouting::new(config.regions.primary.cdc_table.clone());
    for (source, target) in &config.apply.table_map {
        if let Some((schema, name)) = source.split_once('.') {
            routing = routing.with_override(&TableRef::new(schema, name), target.clone());
        }
    }
    routing
}

/// The applier settings from the configuration (routing from `apply.table_map`).
pub fn applier_settings(config: &Config) -> ApplierSettings {
    let region = &config.regions.primary;
    ApplierSettings {
        routing: table_routing(config),
        tombstone_ttl_secs: i64::try_from(config.apply.tombstone_ttl_secs).unwrap_or(i64::MAX),
        max_concurrency: config.apply.max_concurrency,
        retry: config.apply.retry.clone(),
        region: region.name.as_str().into(),
        event_source: config.publish.source.clone(),
        event_bus: region.event_bus.clone(),
        replication: config.routing.clone(),
        event_limits: event_limits(config),
        trace_export: config.tracing.exports(),
    }
}

/// The sizes change events are held to (whole or by claim check), the same for the daemon's
/// appliers and the `stream-processor`.
pub fn event_limits(config: &Config) -> EventLimits {
    EventLimits::new(
        &config.publish.source,
        &config.routing,
        config.dlq.max_message_bytes,
        [&config.regions.primary.name, &config.regions.secondary.name],
    )
}
