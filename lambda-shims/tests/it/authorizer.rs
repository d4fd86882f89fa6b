//! The authorizer against the local Secrets Manager (the local stack holds `eda/jwt-hs256`): REST TOKEN and
//! REQUEST and HTTP API v2 sample requests, allowed and denied.

use crate::support::fixture;
use base64::Engine as _;
use eda_actors::aws::RegionClients;
use eda_config::RsaKeyConfig;
use eda_lambda_shims::authorizer::Authorizer;
use eda_testkit::local_config;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The value `deploy/local/resources.py` stores under `eda/jwt-hs256`.
const LOCAL_SECRET: &[u8] = b"local-development-hs256-secret-change-me";
const RSA_PRIVATE: &str = include_str!("../../../core/tests/fixtures/jwt_rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("../../../core/tests/fixtures/jwt_rsa_public.pem");

async fn authorizer() -> Authorizer {
    let mut config = local_config();
    config.jwt.rs256_keys = vec![RsaKeyConfig {
        kid: "rsa-1".into(),
        pem: RSA_PUBLIC.into(),
    }];
    let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
    Authorizer::new(&config.jwt, clients.secretsmanager)
        .await
        .expect("keys load from Secrets Manager")
}

fn claims() -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": "user-42",
        "iss": "https://auth.eda.local",
        "aud": "eda-api",
        "exp": now + 600,
        "iat": now - 5,
        "roles": ["admin", "reader"],
        "tenant_id": "tenant-7",
    })
}

fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(LOCAL_SECRET),
    )
    .unwrap()
}

fn rs256(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// `alg: none`, no signature.
fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

/// HS256 "signed" with the RSA public key as the HMAC secret: the classic key confusion.
fn confused(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
    )
    .unwrap()
}

fn token_request(token: &str) -> Value {
    let mut request = fixture("example-apigw-custom-auth-request.json");
    request["authorizationToken"] = json!(format!("Bearer {token}"));
    request
}

fn request_request(token: &str) -> Value {
    let mut request = fixture("example-apigw-custom-auth-request-type-request.json");
    request["headers"]["Authorization"] = json!(format!("Bearer {token}"));
    request
}

fn http_request(token: &str) -> Value {
    let mut request = fixture("example-apigw-v2-custom-authorizer-v2-request.json");
    request["headers"]["authorization"] = json!(format!("Bearer {token}"));
    request
}

fn effect(response: &Value) -> &str {
    response["policyDocument"]["Statement"][0]["Effect"]
        .as_str()
        .expect("an IAM policy")
}

#[tokio::test]
async fn valid_hs256_and_rs256_tokens_are_allowed_in_every_shape_with_the_context() {
    let authorizer = authorizer().await;
    for token in [hs256(&claims()), rs256(&claims())] {
        let rest = authorizer.authorize(token_request(&token)).await.unwrap();
        assert_eq!(effect(&rest), "Allow", "{rest}");
        assert_eq!(rest["principalId"], "user-42");
        assert_eq!(
            rest["context"],
            json!({"userId": "user-42", "roles": "admin,reader", "tenantId": "tenant-7"})
        );
        // The grant covers the stage, so API Gateway's cache answers the caller's other routes.
        assert_eq!(
            rest["policyDocument"]["Statement"][0]["Resource"],
            "arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/*/*"
        );

        let request = authorizer.authorize(request_request(&token)).await.unwrap();
        assert_eq!(effect(&request), "Allow", "{request}");

        let http = authorizer.authorize(http_request(&token)).await.unwrap();
        assert_eq!(
            http,
            json!({
                "isAuthorized": true,
                "context": {"userId": "user-42", "roles": "admin,reader", "tenantId": "tenant-7"}
            })
        );
    }
}

#[tokio::test]
async fn bad_tokens_are_denied_in_every_shape() {
    let authorizer = authorizer().await;
    let now = chrono::Utc::now().timestamp();
    let mut expired = claims();
    expired["exp"] = json!(now - 3600);
    let mut wrong_audience = claims();
    wrong_audience["aud"] = json!("someone-else");
    let mut wrong_issuer = claims();
    wrong_issuer["iss"] = json!("https://evil.example");
    let cases = [
        ("expired", hs256(&expired)),
        ("expired RS256", rs256(&expired)),
        ("wrong audience", hs256(&wrong_audience)),
        ("wrong issuer", rs256(&wrong_issuer)),
        ("alg none", unsigned(&claims())),
        ("HS256 signed with the RSA public key", confused(&claims())),
        ("garbage", "not-a-jwt".to_string()),
    ];
    for (what, token) in &cases {
        let rest = authorizer.authorize(token_request(token)).await.unwrap();
        assert_eq!(effect(&rest), "Deny", "{what}: {rest}");
        assert!(rest.get("context").is_none(), "{what}: no context on deny");
        let request = authorizer.authorize(request_request(token)).await.unwrap();
        assert_eq!(effect(&request), "Deny", "{what}");
        let http = authorizer.authorize(http_request(token)).await.unwrap();
        assert_eq!(http, json!({"isAuthorized": false}), "{what}");
    }
}

#[tokio::test]
async fn a_request_without_a_bearer_token_is_denied() {
    let authorizer = authorizer().await;
    // The samples as published carry no bearer token at all.
    for sample in [
        "example-apigw-custom-auth-request.json",
        "example-apigw-custom-auth-request-type-request.json",
    ] {
        let response = authorizer.authorize(fixture(sample)).await.unwrap();
        assert_eq!(effect(&response), "Deny", "{sample}");
    }
    let http = authorizer
        .authorize(fixture(
            "example-apigw-v2-custom-authorizer-v2-request.json",
        ))
        .await
        .unwrap();
    assert_eq!(http["isAuthorized"], false);
}
