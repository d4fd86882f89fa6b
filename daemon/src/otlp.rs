//! Span export over OTLP/HTTP (protobuf), when `tracing.otlp_endpoint` is set: the way to X-Ray
//! through an ADOT collector, or to any OpenTelemetry backend.
//!
//! The SDK's batch processor exports from a thread of its own; its HTTP calls go through the
//! daemon's reqwest client on the daemon's tokio runtime ([`RuntimeClient`]), so the exporter
//! brings no HTTP stack or runtime of its own. A collector that is down or slow costs spans
//! (the processor drops what it cannot queue), never a change.

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{IdGenerator, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Trace ids as X-Ray makes them: the first 4 bytes the epoch seconds of the trace's start, the
/// other 12 random; so a trace the daemon starts (a batch of untraced changes) has an id X-Ray
/// takes as it is (`1-<8 digits>-<24 digits>`), through ADOT or in a `TraceHeader`. Span ids are
/// random.
#[derive(Debug, Clone, Copy, Default)]
pub struct XrayIds;

impl IdGenerator for XrayIds {
    fn new_trace_id(&self) -> TraceId {
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&(seconds as u32).to_be_bytes());
        id[4..].copy_from_slice(&fastrand::u128(..).to_be_bytes()[4..]);
        TraceId::from_bytes(id)
    }

    fn new_span_id(&self) -> SpanId {
        // Never all zeros (invalid in W3C and X-Ray).
        SpanId::from_bytes(fastrand::u64(1..).to_be_bytes())
    }
}

/// An OTLP exporter's HTTP client: reqwest, driven on the daemon's runtime from the SDK's export
/// thread.
#[derive(Debug, Clone)]
struct RuntimeClient {
    /// The connection pool.
    client: reqwest::Client,
    /// The runtime the calls run on (the export thread has none).
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let call = self.runtime.spawn(async move {
            let response = client.execute(request).await?;
            let (status, headers) = (response.status(), response.headers().clone());
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = call.await??;
        let mut response = Response::builder().status(status).body(body)?;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// The tracer provider exporting to `config.otlp_endpoint`, its calls run on `runtime`.
pub fn provider(
    config: &eda_config::TracingConfig,
    runtime: tokio::runtime::Handle,
) -> Result<SdkTracerProvider, String> {
    let client = reqwest::Client::builder()
        .timeout(config.export_timeout())
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("the OTLP HTTP client: {e}"))?;
    let exporter = SpanExporter::builder()
        .with_http()
        .with_http_client(RuntimeClient { client, runtime })
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.otlp_endpoint.clone())
        .with_timeout(config.export_timeout())
        .build()
        .map_err(|e| format!("the OTLP exporter to {}: {e}", config.otlp_endpoint))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_id_generator(XrayIds)
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_trace_id_starts_with_the_epoch_seconds_as_x_ray_s_do() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        let (a, b) = (XrayIds.new_trace_id(), XrayIds.new_trace_id());
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        for id in [a, b] {
            let bytes = id.to_bytes();
            let seconds = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            assert!((before..=after).contains(&seconds), "{id}");
        }
        assert_ne!(a, b, "the other 12 bytes are random");
        assert_ne!(XrayIds.new_span_id(), SpanId::INVALID);
    }
}
