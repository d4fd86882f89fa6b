//! The endpoint of the lean clients, resolved as the SDK clients of the same region resolve
//! theirs: eda's configured override (`regions.*.endpoints`), else the `AWS_ENDPOINT_URL_<SERVICE>`
//! / `AWS_ENDPOINT_URL` environment variables and the shared config files' `endpoint_url` (read
//! through the SDK's own loader), else the service's endpoint rules for the region (partition,
//! FIPS and dual-stack settings included) — the rules the SDK client runs, called here once.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::endpoint::ResolveEndpoint as _;
use aws_types::service_config::ServiceConfigKey;

/// The URL an override or the environment gives the service `service_id`, if any.
fn configured(shared: &SdkConfig, override_url: Option<&str>, service_id: &str) -> Option<String> {
    if let Some(url) = override_url {
        return Some(url.to_string());
    }
    let key = ServiceConfigKey::builder()
        .service_id(service_id)
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .expect("every field is set");
    shared
        .service_config()
        .and_then(|config| config.load_config(key))
        .or_else(|| shared.endpoint_url().map(str::to_string))
}

/// DynamoDB's endpoint in `region`.
pub(crate) async fn dynamodb(
    shared: &SdkConfig,
    override_url: Option<&str>,
    region: &str,
) -> String {
    use aws_sdk_dynamodb::config::endpoint::{DefaultResolver, Params};
    let params = Params::builder()
        .region(region)
        .use_fips(shared.use_fips().unwrap_or(false))
        .use_dual_stack(shared.use_dual_stack().unwrap_or(false))
        .set_endpoint(configured(shared, override_url, "DynamoDB"))
        .build()
        .expect("region and flags are set");
    DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .map(|endpoint| endpoint.url().to_string())
        .unwrap_or_else(|err| panic!("no DynamoDB endpoint for {region}: {err}"))
}

/// EventBridge's endpoint in `region`.
pub(crate) async fn eventbridge(
    shared: &SdkConfig,
    override_url: Option<&str>,
    region: &str,
) -> String {
    use aws_sdk_eventbridge::config::endpoint::{DefaultResolver, Params, ResolveEndpoint as _};
    let params = Params::builder()
        .region(region)
        .use_fips(shared.use_fips().unwrap_or(false))
        .use_dual_stack(shared.use_dual_stack().unwrap_or(false))
        .set_endpoint(configured(shared, override_url, "EventBridge"))
        .build()
        .expect("region and flags are set");
    DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .map(|endpoint| endpoint.url().to_string())
        .unwrap_or_else(|err| panic!("no EventBridge endpoint for {region}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::BehaviorVersion;

    async fn shared() -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build()
    }

    #[tokio::test]
    async fn without_an_override_the_regional_aws_endpoints_are_used() {
        let shared = shared().await;
        assert_eq!(
            dynamodb(&shared, None, "us-west-2").await,
            "https://dynamodb.us-west-2.amazonaws.com"
        );
        assert_eq!(
            eventbridge(&shared, None, "us-east-1").await,
            "https://events.us-east-1.amazonaws.com"
        );
        assert_eq!(
            dynamodb(&shared, None, "cn-north-1").await,
            "https://dynamodb.cn-north-1.amazonaws.com.cn"
        );
    }

    #[tokio::test]
    async fn an_override_wins() {
        let shared = shared().await;
        assert_eq!(
            dynamodb(&shared, Some("http://127.0.0.1:8000"), "us-west-2").await,
            "http://127.0.0.1:8000"
        );
    }
}
