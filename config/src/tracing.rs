//! `[tracing]`: exporting the daemon's spans over OTLP, the way to X-Ray through an ADOT
//! collector (or to any OpenTelemetry backend).

use crate::error::Validator;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Span export. Off by default, and then free: no exporter, no span per batch, no trace id made
/// up for a change whose message carried none. Trace context read from Kafka headers
/// (`kafka.traceparent_header`, ...) travels with the events whether export is on or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// The OTLP/HTTP traces endpoint, in full (`http://127.0.0.1:4318/v1/traces` for a local
    /// ADOT or OpenTelemetry collector); spans go there as protobuf. Empty: no export.
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans: how the trace backend (X-Ray's service map, Jaeger)
    /// names the daemon.
    pub service_name: String,
    /// Longest wait for one export call; a collector slower than this loses that batch of spans,
    /// never a change.
    pub export_timeout_ms: u64,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            service_name: "eda-daemon".into(),
            export_timeout_ms: 10_000,
        }
    }
}

impl TracingConfig {
    /// Whether spans are exported.
    pub fn exports(&self) -> bool {
        !self.otlp_endpoint.is_empty()
    }

    /// `export_timeout_ms` as a duration.
    pub fn export_timeout(&self) -> Duration {
        Duration::from_millis(self.export_timeout_ms)
    }

    pub(crate) fn validate(&self, v: &mut Validator) {
        if self.exports() {
            v.url("tracing.otlp_endpoint", &self.otlp_endpoint);
        }
        v.non_empty("tracing.service_name", &self.service_name);
        v.range(
            "tracing.export_timeout_ms",
            self.export_timeout_ms,
            100,
            600_000,
        );
    }
}
