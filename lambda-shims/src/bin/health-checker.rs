//! The `health-checker` Lambda function: see [`eda_lambda_shims::health_checker`].

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), eda_lambda_shims::Error> {
    eda_lambda_shims::run::<eda_lambda_shims::health_checker::HealthChecker>().await
}
