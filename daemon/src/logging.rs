//! Log set-up: JSON lines for log shippers or text for people, filtered by the configuration
//! unless `RUST_LOG` says otherwise; and, when `tracing.otlp_endpoint` is set, eda's spans
//! exported over OTLP (see [`crate::otlp`]).
//!
//! Each output has its own filter: the log filter does not decide which spans are exported, and
//! only eda's own spans (targets `eda_*`) go to the collector, whatever the log level.

use eda_config::{LogFormat, LoggingConfig, TracingConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::OnceLock;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The exporting provider, kept to flush it at exit.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber; logs go to stderr so stdout stays for command output. With an
/// OTLP endpoint, spans are exported from calls run on `runtime`; an exporter that cannot be
/// built is reported and the daemon runs without it (spans are advisory).
pub fn init(config: &LoggingConfig, tracing: &TracingConfig, runtime: tokio::runtime::Handle) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.filter));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match config.format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => fmt.with_filter(filter).boxed(),
    };
    let (otel, problem) = if tracing.exports() {
        match crate::otlp::provider(tracing, runtime) {
            Ok(provider) => {
                let layer = tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("eda"))
                    // eda's spans, and the events inside them at info and above: a trace-level
                    // line per change must not become a span event per change.
                    .with_filter(filter_fn(|meta| {
                        meta.target().starts_with("eda_") && *meta.level() <= tracing::Level::INFO
                    }));
                let _ = PROVIDER.set(provider);
                (Some(layer), None)
            }
            Err(problem) => (None, Some(problem)),
        }
    } else {
        (None, None)
    };
    // A second call (tests) keeps the first subscriber; that is fine.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    match problem {
        Some(problem) => {
            tracing::error!(
                problem,
                "Spans are not exported: the exporter did not start."
            )
        }
        None if tracing.exports() => tracing::info!(
            endpoint = %tracing.otlp_endpoint,
            "Spans are exported over OTLP/HTTP."
        ),
        None => {}
    }
}

/// Exports the spans still queued and stops the exporter; call it before the runtime goes.
pub fn flush() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(err) = provider.shutdown() {
            tracing::warn!(error = %err, "Spans still queued at exit were not all exported.");
        }
    }
}
