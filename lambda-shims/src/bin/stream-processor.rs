//! The `stream-processor` Lambda function: see [`eda_lambda_shims::stream_processor`].

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), eda_lambda_shims::Error> {
    eda_lambda_shims::run::<eda_lambda_shims::stream_processor::StreamProcessor>().await
}
