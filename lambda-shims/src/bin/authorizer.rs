//! The `authorizer` Lambda function: see [`eda_lambda_shims::authorizer`].

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), eda_lambda_shims::Error> {
    eda_lambda_shims::run::<eda_lambda_shims::authorizer::Authorizer>().await
}
