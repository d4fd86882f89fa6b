//! The local stack as the tests see it: where it listens, the shipped configuration that points
//! at it, and the small things every test needs around it.

use eda_actors::aws::RegionClients;
use eda_config::Config;
use std::path::PathBuf;

/// The broker started by `deploy/local/stack.sh`: topics are created and produced to here,
/// outside any configuration.
pub const BROKERS: &str = "127.0.0.1:9092";

/// `config/local.toml`, for a process started on it (the daemon, a Lambda binary) and for
/// tests that derive a configuration file from it.
pub fn local_config_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/local.toml")
}

/// The shipped local configuration, parsed without the process environment: tests run in
/// parallel and some set `EDA_` variables on child processes only, so the tests start from the
/// file an operator starts from.
pub fn local_config() -> Config {
    let text = std::fs::read_to_string(local_config_path()).expect("config/local.toml readable");
    let config: Config = toml::from_str(&text).expect("config/local.toml parses");
    config.validate().expect("config/local.toml is valid");
    config
}

/// SDK clients for the primary region of the local stack, for tests that look at what the
/// stack itself holds.
pub async fn primary_clients() -> RegionClients {
    let config = local_config();
    RegionClients::new(&config.regions.primary, &config.aws).await
}

/// A name no other test (or earlier run) uses: the stack is shared, and its state outlives a
/// run.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A loopback port nothing listens on (bound and released): for a listener a test starts, or an
/// endpoint that refuses every connection, as a region that is down does.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Logs of the in-process pipeline, shown for failing tests (`RUST_LOG` filters; default warn),
/// since an integration test's failure message rarely says why on its own.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}
