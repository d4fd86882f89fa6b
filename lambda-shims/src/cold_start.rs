//! What every shim does once per execution environment, before its first event: load and
//! validate the configuration, set up logging, build its state, and hand its handler to the
//! Lambda runtime.

use eda_actors::jwt_keys::KeyLoadError;
use eda_actors::region_router::RouterStartError;
use eda_actors::telemetry::{InternalEvent, LambdaFunction, LambdaInvoked, Metrics};
use eda_config::{Config, LogFormat};
use eda_core::transform::TransformerError;
use lambda_runtime::{service_fn, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time kept back from the invocation's deadline to answer before Lambda cuts it off.
const DEADLINE_MARGIN: Duration = Duration::from_millis(1500);

/// The variable naming an optional TOML file (packaged with the function, or a layer's path).
/// It is not `EDA_`-prefixed on purpose: every `EDA_` variable is a configuration key.
pub const CONFIG_FILE_VAR: &str = "CONFIG_FILE";

/// Why a function could not start: its cold start failed, and Lambda reports the init error.
/// Nothing here is retried in-process: a new execution environment tries again.
#[derive(Debug, thiserror::Error)]
pub enum ColdStartError {
    /// The configuration is invalid; the message names the key.
    #[error("invalid configuration: {0}")]
    Config(#[from] eda_config::ConfigError),
    /// An actor (publisher, DLQ writer) did not start.
    #[error("an actor did not start: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    /// The region routers did not start (their dictionary, or an actor).
    #[error(transparent)]
    Routers(#[from] RouterStartError),
    /// The transformer's configured rules do not compile.
    #[error(transparent)]
    Transformer(#[from] TransformerError),
    /// The authorizer's keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] KeyLoadError),
}

/// One Lambda function: its state, built once at cold start, and its handler.
pub trait Shim: Sized + Send + Sync + 'static {
    /// What the function answers (serialized to JSON by the runtime).
    type Response: Serialize + Send;

    /// Which function this is (metrics label).
    const FUNCTION: LambdaFunction;

    /// Builds the clients and actors, from the validated configuration.
    fn cold_start(
        config: Config,
        metrics: Arc<Metrics>,
    ) -> impl Future<Output = Result<Self, ColdStartError>> + Send;

    /// Handles one invocation.
    fn handle(
        &self,
        event: LambdaEvent<Value>,
    ) -> impl Future<Output = Result<Self::Response, crate::Error>> + Send;
}

/// The configuration: defaults, then the file named by [`CONFIG_FILE_VAR`] if set, then the
/// `EDA_` environment; validated, every problem named.
pub fn load_config() -> Result<Config, ColdStartError> {
    let file = std::env::var_os(CONFIG_FILE_VAR).map(PathBuf::from);
    Ok(Config::load(file.as_deref())?)
}

/// The region this function runs in: the configured region named by `AWS_REGION` (which Lambda
/// sets), else the primary.
pub fn home_region(config: &Config) -> &eda_config::RegionConfig {
    let here = std::env::var("AWS_REGION").unwrap_or_default();
    if config.regions.secondary.name == here {
        &config.regions.secondary
    } else {
        &config.regions.primary
    }
}

/// JSON or text lines on stderr, which Lambda sends to CloudWatch Logs.
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.logging.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time(); // CloudWatch stamps every line.
    let _ = match config.logging.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// Cold start, then the runtime loop: the state is built once and shared by every invocation.
pub async fn run<S: Shim>() -> Result<(), crate::Error> {
    let config = load_config()?;
    init_logging(&config);
    let metrics = Arc::new(Metrics::new());
    let shim = Arc::new(S::cold_start(config, metrics.clone()).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let shim = shim.clone();
        let metrics = metrics.clone();
        async move {
            let started = Instant::now();
            let result = shim.handle(event).await;
            LambdaInvoked {
                function: S::FUNCTION,
                elapsed: started.elapsed(),
                failed: result.is_err(),
            }
            .emit(&metrics);
            result
        }
    }))
    .await
}

/// Time left before the invocation's deadline, less a margin to answer in.
pub fn remaining(context: &lambda_runtime::Context) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_millis(context.deadline)
        .saturating_sub(now)
        .saturating_sub(DEADLINE_MARGIN)
        .max(Duration::from_millis(100))
}
