//! The lean client: the two calls eda makes per message — DynamoDB `PutItem` and EventBridge
//! `PutEvents` — sent without the AWS SDK's orchestrator.
//!
//! The profile of the daemon (`docs/perf/profile.md`) found the SDK's per-call machinery (config
//! bag, interceptors, request serializer, signer, and their allocations) to be about 84 % of the
//! daemon's CPU. For these two calls eda writes the AWS JSON protocol itself: the body goes into a
//! reused per-thread buffer, SigV4 is signed with a key derived once a day ([`sigv4`]), the
//! credentials come from the SDK's own provider, cached ([`credentials`]), and the request goes
//! over a keep-alive connection pool of eda's own ([`http`]) in which the calling task writes
//! the request (its head signed straight into the connection's buffer, head and body in one
//! vectored write) and reads and parses the answer itself; HTTPS goes through rustls on
//! aws-lc-rs, the SDK's own stack. Everything else eda calls stays on the SDK.
//!
//! Why its own pool and not hyper's: measured per exchange (`docs/perf/profile.md`, "The HTTP
//! exchange"), hyper-util's legacy client spent its instructions on the pool checkout keyed by
//! `Uri`, the `http::Request` and header map, and its connection task — each request handed to
//! that task and each answer handed back, a cross-task (often cross-thread) wake-up both ways.
//! `hyper::client::conn::http1` without the legacy pool keeps the task and the hand-overs. What
//! eda needs of HTTP/1.1 here is small (one `POST`, a body of known length, an answer with
//! `Content-Length` or `chunked`), and every failure ends with the connection dropped.
//!
//! What is the same as the SDK client of the region: the region, the credentials, the endpoint
//! (the configured override, else `AWS_ENDPOINT_URL*` and the shared config files' `endpoint_url`
//! as the SDK reads them, else the SDK's own endpoint rules for the region, FIPS and dual-stack
//! settings included), the connect timeout and the timeout of one attempt. What is not: the SDK
//! retried throttling, 5xx and timeouts up to three times inside each call before eda's own
//! retry loop saw the failure; here every failed attempt goes straight to eda's loop
//! ([`crate::retry`]), which backs off with full jitter and is configured per use
//! (`apply.retry`, `publish.retry`). No clock-skew correction: a host whose clock is off by
//! more than five minutes gets `InvalidSignatureException` (a permanent error) as it would from
//! any SigV4 client without it.

mod credentials;
pub(crate) mod http;
pub(crate) mod json;
pub(crate) mod sigv4;

use crate::ports::SinkError;
use crate::telemetry::{AwsCall, AwsCallTimed, InternalEvent, Metrics};
use ::http::{StatusCode, Uri};
use bytes::Bytes;
use credentials::CredentialsCache;
use eda_core::failure::ErrorClass;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub(crate) use credentials::CredentialsCache as SharedCredentials;

/// How the lean clients of one region connect (each endpoint keeps its own connection pool).
pub(crate) type HttpClient = http::Settings;

/// The `User-Agent` of the lean calls.
const AGENT: &str = concat!("eda/", env!("CARGO_PKG_VERSION"), " lean-client");

/// One AWS JSON-protocol service in one region (DynamoDB or EventBridge). Cloning is cheap and
/// shares the pool, the credentials and the signing key.
#[derive(Clone, Debug)]
pub struct LeanClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The endpoint's keep-alive connections.
    pool: http::Pool,
    /// The endpoint, path included (`/` unless an override names one).
    uri: Uri,
    /// The `Host` header as signed (`host` or `host:port` when the port is not the default).
    host: String,
    /// The path as signed.
    path: String,
    /// `dynamodb` or `eventbridge`, for errors and metrics.
    service: &'static str,
    /// The SigV4 service name (`dynamodb`, `events`).
    signing_name: &'static str,
    /// The region name, as signed.
    region: String,
    /// `application/x-amz-json-1.0` (DynamoDB) or `-1.1` (EventBridge).
    content_type: &'static str,
    /// Where the keys come from.
    credentials: Arc<CredentialsCache>,
    /// The signing key of the current day and key pair.
    key: Mutex<Option<DayKey>>,
    /// The longest one call may take (`aws.attempt_timeout_ms`).
    attempt_timeout: Duration,
    /// Where each exchange's time goes (`eda_aws_call_duration_seconds`), once a process with
    /// a registry has said so ([`LeanClient::time_calls`]).
    metrics: OnceLock<Arc<Metrics>>,
}

/// A signing key and what it was derived for.
struct DayKey {
    /// `YYYYMMDD`.
    date: [u8; 8],
    /// The access key id it belongs to (a rotated key pair needs a new signing key).
    access_key_id: String,
    /// `kSigning`, prepared for HMAC.
    key: sigv4::HmacKey,
}

impl std::fmt::Debug for DayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DayKey(..)")
    }
}

/// What a service protocol needs from the transport.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Protocol {
    /// `dynamodb` or `eventbridge`, for errors.
    pub service: &'static str,
    /// The SigV4 service name.
    pub signing_name: &'static str,
    /// The JSON protocol's content type.
    pub content_type: &'static str,
}

/// DynamoDB: AWS JSON 1.0, signed as `dynamodb`.
pub(crate) const DYNAMODB: Protocol = Protocol {
    service: "dynamodb",
    signing_name: "dynamodb",
    content_type: "application/x-amz-json-1.0",
};

/// EventBridge: AWS JSON 1.1, signed as `events`.
pub(crate) const EVENTBRIDGE: Protocol = Protocol {
    service: "eventbridge",
    signing_name: "events",
    content_type: "application/x-amz-json-1.1",
};

/// The per-message call `target` is, as `eda_aws_call_duration_seconds` names it; `None` for a
/// target it does not time.
fn timed_call(target: &str) -> Option<AwsCall> {
    match target.rsplit_once('.')?.1 {
        "PutItem" => Some(AwsCall::PutItem),
        "BatchExecuteStatement" => Some(AwsCall::BatchExecuteStatement),
        "PutEvents" => Some(AwsCall::PutEvents),
        _ => None,
    }
}

/// A call the service answered with an error.
#[derive(Debug)]
pub(crate) struct ServiceError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error code without its namespace (`ConditionalCheckFailedException`), or empty.
    pub code: String,
    /// The service's message, if any.
    pub message: Option<String>,
    /// The whole answer, for errors that carry more (the guard's stored item).
    pub body: Bytes,
}

/// Why a lean call did not succeed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The service answered with an error.
    Service(ServiceError),
    /// No answer: connection, timeout, credentials.
    Transport(SinkError),
}

impl CallError {
    /// The failure as the ports report it, classified like the SDK adapters' errors.
    pub(crate) fn into_sink_error(
        self,
        service: &'static str,
        operation: &'static str,
    ) -> SinkError {
        match self {
            Self::Transport(mut err) => {
                err.operation = operation;
                err
            }
            Self::Service(err) => {
                let class =
                    match super::error::service_error_class(&err.code, err.message.as_deref()) {
                        // A code the list does not know, on a 5xx or 429, is the server's or a
                        // throttle; the SDK, after its own retries, called it a refusal.
                        ErrorClass::Client if err.status == StatusCode::TOO_MANY_REQUESTS => {
                            ErrorClass::Throttled
                        }
                        ErrorClass::Client if err.status.is_server_error() => ErrorClass::Server,
                        class => class,
                    };
                let code = if err.code.is_empty() {
                    "Unknown"
                } else {
                    &err.code
                };
                SinkError {
                    service,
                    operation,
                    class,
                    message: format!(
                        "{code} (HTTP {}): {}",
                        err.status.as_u16(),
                        err.message.as_deref().unwrap_or("")
                    ),
                }
            }
        }
    }
}

/// How the lean calls of one region connect: the connect timeout (`aws.connect_timeout_ms`).
pub(crate) fn http_client(connect_timeout: Duration) -> HttpClient {
    http::Settings { connect_timeout }
}

/// The TLS configuration of every lean client: rustls on aws-lc-rs (the SDK's provider) with the
/// system's root certificates, loaded once per process.
fn tls_config() -> &'static Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let loaded = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(loaded.certs);
        if added == 0 {
            // Local endpoints are plain HTTP; an HTTPS one then fails with a certificate error.
            tracing::warn!(errors = ?loaded.errors, "No root certificates found; HTTPS calls of the lean client will fail.");
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    })
}

thread_local! {
    /// Per-thread buffers of the signer: the canonical request and string to sign, and the
    /// `Authorization` value. Used only between awaits.
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// Per-thread buffer request bodies are written into before being copied out once.
    static BODY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes a request body with `write` into the thread's reused buffer and returns a copy sized
/// to fit (one allocation, no growth).
pub(crate) fn body_with(write: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    BODY.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        buffer.clear();
        write(&mut buffer);
        let body = Bytes::copy_from_slice(&buffer[..]);
        // A rare huge body should not pin its memory to the thread.
        if buffer.capacity() > 1 << 20 {
            *buffer = Vec::new();
        }
        body
    })
}

impl LeanClient {
    /// A client of `protocol` at `endpoint` in `region`.
    pub(crate) fn new(
        http: HttpClient,
        protocol: Protocol,
        endpoint: &str,
        region: &str,
        credentials: Arc<CredentialsCache>,
        attempt_timeout: Duration,
    ) -> Result<Self, String> {
        let uri: Uri = endpoint
            .parse()
            .map_err(|err| format!("{} endpoint {endpoint:?}: {err}", protocol.service))?;
        let scheme = uri.scheme_str().unwrap_or("");
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "{} endpoint {endpoint:?}: expected http:// or https://",
                protocol.service
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{} endpoint {endpoint:?}: no host", protocol.service))?;
        let default_port = if scheme == "https" { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(port) if port != default_port => format!("{}:{port}", authority.host()),
            _ => authority.host().to_string(),
        };
        let path = match uri.path() {
            "" => "/".to_string(),
            path => path.to_string(),
        };
        if host.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(format!(
                "{} endpoint {endpoint:?}: the host is not a valid header value",
                protocol.service
            ));
        }
        let target = http::Target {
            host: authority.host().trim_matches(['[', ']']).to_string(),
            port: authority.port_u16().unwrap_or(default_port),
            tls: scheme == "https",
        };
        let pool = http::Pool::new(target, http, tls_config())
            .map_err(|err| format!("{} endpoint {endpoint:?}: {err}", protocol.service))?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                host,
                uri,
                path,
                service: protocol.service,
                signing_name: protocol.signing_name,
                region: region.to_string(),
                content_type: protocol.content_type,
                credentials,
                key: Mutex::new(None),
                attempt_timeout,
                metrics: OnceLock::new(),
            }),
        })
    }

    /// Times every exchange of this client (and its clones) into `metrics`'
    /// `eda_aws_call_duration_seconds`; a client already timed keeps its first registry.
    pub fn time_calls(&self, metrics: Arc<Metrics>) {
        let _ = self.inner.metrics.set(metrics);
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &Uri {
        &self.inner.uri
    }

    /// Sends `body` as the operation `target` (`DynamoDB_20120810.PutItem`) and returns the
    /// answer's body on a 2xx.
    pub(crate) async fn call(&self, target: &'static str, body: Bytes) -> Result<Bytes, CallError> {
        let inner = &*self.inner;
        let creds = inner
            .credentials
            .get(inner.service)
            .await
            .map_err(CallError::Transport)?;
        let exchange = async {
            let mut conn = inner.pool.checkout().await?;
            self.head(target, &body, &creds, chrono::Utc::now(), &mut conn.head);
            inner.pool.exchange(conn, &body).await
        };
        let started = Instant::now();
        let answer = tokio::time::timeout(inner.attempt_timeout, exchange).await;
        if let (Some(metrics), Some(operation)) = (inner.metrics.get(), timed_call(target)) {
            AwsCallTimed {
                region: &inner.region,
                operation,
                elapsed: started.elapsed(),
            }
            .emit(metrics);
        }
        let answer = match answer {
            Ok(Ok(answer)) => answer,
            Ok(Err(failure)) => {
                return Err(CallError::Transport(failure.into_sink_error(inner.service)))
            }
            Err(_) => {
                return Err(CallError::Transport(SinkError {
                    service: inner.service,
                    operation: "",
                    class: ErrorClass::Timeout,
                    message: format!(
                        "no answer within {} ms (aws.attempt_timeout_ms); the request may have been applied",
                        inner.attempt_timeout.as_millis()
                    ),
                }))
            }
        };
        let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
        if status.is_success() {
            return Ok(answer.body);
        }
        let parsed: ErrorBody = serde_json::from_slice(&answer.body).unwrap_or_default();
        let code = parsed
            .code
            .or(answer.error_type)
            .map(|code| error_code(&code).to_string())
            .unwrap_or_default();
        Err(CallError::Service(ServiceError {
            status,
            code,
            message: parsed.message.or(parsed.message_upper),
            body: answer.body,
        }))
    }

    /// Writes the signed request head (request line, headers, blank line) into `out`.
    fn head(
        &self,
        target: &'static str,
        body: &[u8],
        creds: &aws_credential_types::Credentials,
        now: chrono::DateTime<chrono::Utc>,
        out: &mut Vec<u8>,
    ) {
        let inner = &*self.inner;
        let amz_date = amz_date(&now);
        let date: [u8; 8] = amz_date[..8].try_into().expect("8 bytes");
        let amz_date = std::str::from_utf8(&amz_date).expect("ASCII");
        let key = self.day_key(date, creds);
        let scope = format!(
            "{}/{}/{}/aws4_request",
            &amz_date[..8],
            inner.region,
            inner.signing_name
        );
        let token = creds.session_token();
        let mut headers: [(&str, &str); 5] = [
            ("content-type", inner.content_type),
            ("host", &inner.host),
            ("x-amz-date", amz_date),
            ("x-amz-target", target),
            ("", ""),
        ];
        let signed = match token {
            Some(token) => {
                headers[3] = ("x-amz-security-token", token);
                headers[4] = ("x-amz-target", target);
                &headers[..5]
            }
            None => &headers[..4],
        };
        out.clear();
        out.extend_from_slice(b"POST ");
        out.extend_from_slice(inner.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in signed {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"user-agent: ");
        out.extend_from_slice(AGENT.as_bytes());
        out.extend_from_slice(b"\r\ncontent-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\nauthorization: ");
        SCRATCH.with(|scratch| {
            let mut guard = scratch.borrow_mut();
            let (scratch, authorization) = &mut *guard;
            let signable = sigv4::Signable {
                method: "POST",
                path: &inner.path,
                headers: signed,
                body,
                amz_date,
                scope: &scope,
            };
            sigv4::authorization(
                &signable,
                creds.access_key_id(),
                &key,
                scratch,
                authorization,
            );
            out.extend_from_slice(authorization);
        });
        out.extend_from_slice(b"\r\n\r\n");
    }

    /// The signing key for `date` and `creds`, derived on the first request of a day or key pair.
    fn day_key(&self, date: [u8; 8], creds: &aws_credential_types::Credentials) -> sigv4::HmacKey {
        let mut slot = self
            .inner
            .key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*slot {
            Some(day) if day.date == date && day.access_key_id == creds.access_key_id() => {
                day.key.clone()
            }
            _ => {
                let key = sigv4::signing_key(
                    creds.secret_access_key(),
                    std::str::from_utf8(&date).expect("ASCII"),
                    &self.inner.region,
                    self.inner.signing_name,
                );
                *slot = Some(DayKey {
                    date,
                    access_key_id: creds.access_key_id().to_string(),
                    key: key.clone(),
                });
                key
            }
        }
    }
}

/// The error answer of the AWS JSON protocols.
#[derive(Debug, Default, serde::Deserialize)]
struct ErrorBody {
    /// `__type`: the code, possibly behind a namespace (`com.amazonaws.dynamodb.v20120810#…`).
    #[serde(rename = "__type")]
    code: Option<String>,
    /// The message, as DynamoDB spells the key.
    message: Option<String>,
    /// The message, as other services spell it.
    #[serde(rename = "Message")]
    message_upper: Option<String>,
}

/// The bare code of an error type: without the namespace before `#` and the suffix after `:`.
fn error_code(raw: &str) -> &str {
    let code = raw.rsplit_once('#').map_or(raw, |(_, code)| code);
    code.split_once(':').map_or(code, |(code, _)| code)
}

/// `YYYYMMDD'T'HHMMSS'Z'` of `now`.
fn amz_date(now: &chrono::DateTime<chrono::Utc>) -> [u8; 16] {
    use chrono::{Datelike, Timelike};
    let mut out = *b"00000000T000000Z";
    let put = |out: &mut [u8; 16], at: usize, width: usize, mut value: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(&mut out, 0, 4, u32::try_from(now.year()).unwrap_or(0));
    put(&mut out, 4, 2, now.month());
    put(&mut out, 6, 2, now.day());
    put(&mut out, 9, 2, now.hour());
    put(&mut out, 11, 2, now.minute());
    put(&mut out, 13, 2, now.second());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole request as sent, signed by eda and by the SDK's own signer (`aws-sigv4`), for
    /// a key pair with a session token (what IRSA gives) and an endpoint on a non-default port.
    #[tokio::test]
    async fn a_signed_request_carries_the_signature_the_sdk_signer_computes() {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let creds = aws_credential_types::Credentials::new(
            "ASIAEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("FwoGZXIvYXdzEXAMPLE//token+with/slashes==".into()),
            None,
            "test",
        );
        let client = LeanClient::new(
            http_client(Duration::from_secs(1)),
            DYNAMODB,
            "http://127.0.0.1:8000",
            "us-west-2",
            CredentialsCache::new(None),
            Duration::from_secs(1),
        )
        .expect("endpoint");
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-06T13:52:07Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let body = Bytes::from_static(br#"{"TableName":"t","Item":{"pk":{"S":"k"}}}"#);
        let mut head = Vec::new();
        client.head("DynamoDB_20120810.PutItem", &body, &creds, now, &mut head);
        let mut parsed = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut parsed);
        assert_eq!(
            request.parse(&head).expect("an HTTP/1.1 head"),
            httparse::Status::Complete(head.len()),
            "the head ends with its blank line"
        );
        assert_eq!((request.method, request.path), (Some("POST"), Some("/")));
        let header = |name: &str| {
            let values: Vec<&[u8]> = request
                .headers
                .iter()
                .filter(|h| h.name == name)
                .map(|h| h.value)
                .collect();
            assert_eq!(values.len(), 1, "one {name} header");
            String::from_utf8(values[0].to_vec()).expect("ASCII")
        };

        let identity = creds.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-west-2")
            .name("dynamodb")
            .time(now.into())
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let signed_headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("host", "127.0.0.1:8000"),
            ("x-amz-target", "DynamoDB_20120810.PutItem"),
        ];
        let signable = SignableRequest::new(
            "POST",
            "http://127.0.0.1:8000/",
            signed_headers.into_iter(),
            SignableBody::Bytes(&body),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("signs").into_parts();
        let expected: std::collections::HashMap<&str, &str> = instructions.headers().collect();
        assert_eq!(header("authorization"), expected["authorization"]);
        assert_eq!(header("x-amz-date"), expected["x-amz-date"]);
        assert_eq!(
            header("x-amz-security-token"),
            expected["x-amz-security-token"]
        );
        assert_eq!(header("host"), "127.0.0.1:8000");
        assert_eq!(header("content-length"), body.len().to_string());
        assert_eq!(header("content-type"), "application/x-amz-json-1.0");
        assert_eq!(header("x-amz-target"), "DynamoDB_20120810.PutItem");
    }

    #[test]
    fn error_codes_lose_their_namespace_and_suffix() {
        assert_eq!(
            error_code("com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"),
            "ConditionalCheckFailedException"
        );
        assert_eq!(
            error_code("ThrottlingException:http://internal.amazon.com/"),
            "ThrottlingException"
        );
        assert_eq!(error_code("InternalException"), "InternalException");
    }

    #[test]
    fn the_amz_date_is_utc_and_zero_padded() {
        let at = chrono::DateTime::parse_from_rfc3339("2015-08-30T02:03:04Z")
            .expect("date")
            .with_timezone(&chrono::Utc);
        assert_eq!(&amz_date(&at), b"20150830T020304Z");
    }

    fn service_error(status: u16, code: &str) -> CallError {
        CallError::Service(ServiceError {
            status: StatusCode::from_u16(status).expect("status"),
            code: code.into(),
            message: Some("m".into()),
            body: Bytes::new(),
        })
    }

    #[test]
    fn answers_are_classified_by_code_then_by_status() {
        let class = |status, code| {
            service_error(status, code)
                .into_sink_error("dynamodb", "PutItem")
                .class
        };
        assert_eq!(
            class(400, "ProvisionedThroughputExceededException"),
            ErrorClass::Throttled
        );
        assert_eq!(class(400, "ThrottlingException"), ErrorClass::Throttled);
        assert_eq!(class(500, "InternalServerError"), ErrorClass::Server);
        assert_eq!(class(503, ""), ErrorClass::Server);
        assert_eq!(class(429, ""), ErrorClass::Throttled);
        assert_eq!(class(400, "ValidationException"), ErrorClass::Client);
        assert_eq!(class(400, "ResourceNotFoundException"), ErrorClass::Client);
        assert_eq!(class(413, "RequestEntityTooLarge"), ErrorClass::TooLarge);
    }
}
