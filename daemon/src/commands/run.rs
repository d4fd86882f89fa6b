//! `eda-daemon run`: the pipeline, until SIGTERM or SIGINT.
//!
//! Start-up: load and validate the configuration, bind the HTTP surface, start the supervision
//! tree. Shutdown on a signal: the consumer group stops fetching, drains in-flight work within
//! `kafka.drain_timeout_ms`, commits and leaves the group; then the sinks stop, then the HTTP
//! surface; exit 0. If the root supervisor gives up (restarts ran out), exit 1.

use eda_actors::pipeline::{Observability, Pipeline};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Loads the configuration and runs the pipeline.
pub fn run(path: &Path) -> ExitCode {
    let (config, runtime) = match super::start(path) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let code = runtime.block_on(serve(Arc::new(config)));
    // The exporter's calls run on the runtime: flush while it is still there.
    crate::logging::flush();
    code
}

async fn serve(config: Arc<eda_config::Config>) -> ExitCode {
    let obs = Observability::new(&config);
    let listener = match TcpListener::bind(&config.http.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(listen = %config.http.listen, error = %err, "Cannot bind the HTTP listener.");
            return ExitCode::FAILURE;
        }
    };
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(crate::http::serve(
        listener,
        obs.metrics.clone(),
        obs.readiness.clone(),
        obs.liveness.clone(),
        async {
            let _ = http_stopped.await;
        },
    ));
    let mut pipeline = match Pipeline::start(config.clone(), obs).await {
        Ok(pipeline) => pipeline,
        Err(err) => {
            tracing::error!(error = %err, "The pipeline did not start.");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        topics = ?config.kafka.topics,
        group = %config.kafka.group_id,
        region = %config.regions.primary.name,
        metrics = %format!("http://{}/metrics", config.http.listen),
        "eda is running."
    );
    let code = tokio::select! {
        signal = shutdown_signal() => {
            tracing::info!(signal, "Shutting down: draining in-flight work.");
            pipeline.shutdown().await;
            tracing::info!("Shutdown complete.");
            ExitCode::SUCCESS
        }
        () = pipeline.stopped() => {
            tracing::error!("The supervision tree gave up (restarts exhausted); exiting.");
            ExitCode::FAILURE
        }
    };
    let _ = stop_http.send(());
    let _ = http.await;
    code
}

/// Resolves with the name of the first SIGTERM or SIGINT.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers there is nothing to wait for but Ctrl-C.
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
