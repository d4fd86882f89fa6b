//! What the tests share: where the local stack listens, and the shipped local configuration.

use eda_actors::aws::RegionClients;
use eda_config::Config;
use std::path::PathBuf;

/// The broker started by `deploy/local/stack.sh`.
pub const BROKERS: &str = "127.0.0.1:9092";

/// `config/local.toml`, which points at the local stack.
pub fn local_config_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/local.toml")
}

/// The shipped local configuration, parsed without the process environment (tests run in
/// parallel and some set `EDA_` variables on child processes only).
pub fn local_config() -> Config {
    let text = std::fs::read_to_string(local_config_path()).expect("config/local.toml readable");
    let config: Config = toml::from_str(&text).expect("config/local.toml parses");
    config.validate().expect("config/local.toml is valid");
    config
}

/// SDK clients for the primary region of the local stack.
pub async fn primary_clients() -> RegionClients {
    let config = local_config();
    RegionClients::new(&config.regions.primary, &config.aws).await
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Logs of the in-process pipeline, shown for failing tests (`RUST_LOG` filters; default warn).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Held by the tests that load moto the most, so they run one at a time: moto serves every
/// test's EventBridge and SQS from one process, and two heavy tests at once slow each other
/// past their deadlines.
pub async fn moto_heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A new topic of `partitions` partitions holding `records`, in order; returns its name.
pub async fn topic_with(records: &[eda_loadtest::history::Record], partitions: i32) -> String {
    let topic = unique("cdc");
    eda_loadtest::kafka::create_topic(BROKERS, &topic, partitions)
        .await
        .expect("topic");
    let producer = eda_loadtest::kafka::producer(BROKERS).expect("producer");
    eda_loadtest::kafka::produce(&producer, &topic, records)
        .await
        .expect("produced");
    topic
}
