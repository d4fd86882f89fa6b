//! The loadtest's integration tests, against real servers on loopback: the blackhole sink as
//! eda's own AWS SDK adapters see it, and a daemon pipeline run into it over the local broker.

mod pipeline;
mod sink;

use eda_loadtest::sink::{serve, Sink, SinkOptions};
use std::sync::Arc;

/// A sink serving on a free loopback port in this process, until the returned sender is
/// dropped or fired.
pub async fn start_sink(
    options: SinkOptions,
) -> (Arc<Sink>, String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let sink = Arc::new(Sink::new(options));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, sink.clone(), async {
        let _ = stopped.await;
    }));
    (sink, url, stop)
}

/// The local configuration with every AWS endpoint and queue of both regions on `sink`.
pub fn config_on(sink: &str) -> eda_config::Config {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/local.toml");
    let mut config = eda_config::Config::load(Some(&path)).expect("config/local.toml");
    for region in [&mut config.regions.primary, &mut config.regions.secondary] {
        region.endpoints.dynamodb = Some(sink.to_string());
        region.endpoints.eventbridge = Some(sink.to_string());
        region.endpoints.sqs = Some(sink.to_string());
        region.endpoints.secretsmanager = Some(sink.to_string());
        region.dlq_queue_url = format!("{sink}/000000000000/eda-dlq");
        region.owed_queue_url = format!("{sink}/000000000000/eda-owed");
    }
    config
}
