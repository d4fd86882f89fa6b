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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

/// The JWKS the fixtures' RSA key pair signs for (`kid` `jwks-key-1`).
const JWKS: &str = include_str!("../../../core/tests/fixtures/jwt_jwks.json");

/// A private JWKS server on loopback: it serves [`JWKS`] while healthy and answers 503 while
/// failing, counting the requests it gets in each state. One request per connection
/// (`Connection: close`), so every fetch is counted once.
struct JwksServer {
    url: String,
    failing: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().expect("address")
        );
        let failing = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (f, s, r) = (failing.clone(), served.clone(), refused.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    continue;
                };
                let (f, s, r) = (f.clone(), s.clone(), r.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let response = if f.load(Ordering::SeqCst) {
                        r.fetch_add(1, Ordering::SeqCst);
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_string()
                    } else {
                        s.fetch_add(1, Ordering::SeqCst);
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{JWKS}",
                            JWKS.len()
                        )
                    };
                    let _ = conn.write_all(response.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Self {
            url,
            failing,
            served,
            refused,
            task,
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP proxy in front of the local Secrets Manager (ministack) that passes traffic through
/// or, while refusing, accepts and drops every connection at once (a service that is down),
/// counting the connections it refused: each is one attempt of a `GetSecretValue` call.
struct RefusingProxy {
    endpoint: String,
    refusing: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    /// Connections passed through to the upstream.
    passed: Arc<AtomicUsize>,
    /// Connections passing through now.
    live: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RefusingProxy {
    async fn start(upstream: &str) -> Self {
        let upstream: std::net::SocketAddr = upstream
            .trim_start_matches("http://")
            .parse()
            .expect("an address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let refusing = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let passed = Arc::new(AtomicUsize::new(0));
        let live = Arc::new(AtomicUsize::new(0));
        let (f, r, p, l) = (
            refusing.clone(),
            refused.clone(),
            passed.clone(),
            live.clone(),
        );
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if f.load(Ordering::SeqCst) {
                    r.fetch_add(1, Ordering::SeqCst);
                    drop(client);
                    continue;
                }
                p.fetch_add(1, Ordering::SeqCst);
                l.fetch_add(1, Ordering::SeqCst);
                let (refusing, live) = (f.clone(), l.clone());
                connections.spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        live.fetch_sub(1, Ordering::SeqCst);
                        return;
                    };
                    // A pooled connection must not outlive the start of an outage.
                    let outage = async {
                        while !refusing.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = outage => {}
                    }
                    live.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            endpoint,
            refusing,
            refused,
            passed,
            live,
            task,
        }
    }

    /// Starts refusing, and returns once no connection passes through any more.
    async fn refuse(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        while self.live.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for RefusingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits out a key cache of one second, so the next call finds the keys stale.
async fn past_the_cache_ttl() {
    tokio::time::sleep(Duration::from_millis(1_100)).await;
}

/// Keys are trusted for a second (`jwks_cache_ttl_secs = 1`); then the JWKS server fails.
/// Twenty calls during the outage are still answered with the old keys, and the JWKS is asked
/// once, not once per call: a failed reload backs off. When the server is back, a later call
/// picks up fresh keys.
#[tokio::test]
async fn a_jwks_outage_is_not_fetched_on_every_call_and_its_end_is_noticed() {
    let server = JwksServer::start().await;
    let mut config = local_config();
    config.jwt.jwks_url = Some(server.url.clone());
    config.jwt.jwks_cache_ttl_secs = 1;
    let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
    let authorizer = Authorizer::new(&config.jwt, clients.secretsmanager)
        .await
        .expect("keys load");
    assert_eq!(server.served.load(Ordering::SeqCst), 1, "loaded at start");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("jwks-key-1".into());
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&header, &claims(), &key).unwrap();
    let now = || chrono::Utc::now().timestamp();
    assert!(authorizer.verify(Some(&token), now()).await.is_ok());

    past_the_cache_ttl().await;
    server.failing.store(true, Ordering::SeqCst);
    for call in 0..20 {
        let outcome = authorizer.verify(Some(&token), now()).await;
        assert!(
            outcome.is_ok(),
            "call {call}: the old keys answer: {outcome:?}"
        );
    }
    let fetched = server.refused.load(Ordering::SeqCst);
    println!("JWKS OUTAGE: 20 calls, {fetched} JWKS requests");
    assert_eq!(fetched, 1, "one reload for 20 calls during the outage");

    // Back: a call after the backoff reloads the keys.
    server.failing.store(false, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while server.served.load(Ordering::SeqCst) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the keys were never reloaded after the outage"
        );
        assert!(authorizer.verify(Some(&token), now()).await.is_ok());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The HS256 secret is read from the local Secrets Manager through a proxy and trusted for a
/// second; then the proxy refuses every connection. Ten calls during the outage are answered
/// with the cached secret, and Secrets Manager is tried for one reload (the SDK's own attempts
/// of one `GetSecretValue`), not once per call. When it answers again, the secret is read anew.
#[tokio::test]
async fn a_secrets_manager_outage_is_not_read_on_every_call_and_its_end_is_noticed() {
    let mut config = local_config();
    let ministack = config.regions.primary.endpoints.secretsmanager.clone();
    let proxy = RefusingProxy::start(&ministack.expect("a local Secrets Manager")).await;
    config.regions.primary.endpoints.secretsmanager = Some(proxy.endpoint.clone());
    config.jwt.secret_cache_ttl_secs = 1;
    let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
    let authorizer = Authorizer::new(&config.jwt, clients.secretsmanager)
        .await
        .expect("the secret loads from Secrets Manager");
    let token = hs256(&claims());
    let now = || chrono::Utc::now().timestamp();
    assert!(authorizer.verify(Some(&token), now()).await.is_ok());

    past_the_cache_ttl().await;
    proxy.refuse().await;
    for call in 0..10 {
        let outcome = authorizer.verify(Some(&token), now()).await;
        assert!(
            outcome.is_ok(),
            "call {call}: the cached secret answers: {outcome:?}"
        );
    }
    let attempts = proxy.refused.load(Ordering::SeqCst);
    println!("SECRETS MANAGER OUTAGE: 10 calls, {attempts} connection attempts");
    // One GetSecretValue is at most the SDK's three attempts.
    assert!(
        (1..=3).contains(&attempts),
        "one reload (at most 3 SDK attempts) for 10 calls, got {attempts} attempts"
    );

    // Back: a call after the backoff reads the secret again, on a new connection.
    let passed = proxy.passed.load(Ordering::SeqCst);
    proxy.refusing.store(false, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while proxy.passed.load(Ordering::SeqCst) == passed {
        assert!(
            std::time::Instant::now() < deadline,
            "the secret was never read again after the outage"
        );
        assert!(authorizer.verify(Some(&token), now()).await.is_ok());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
