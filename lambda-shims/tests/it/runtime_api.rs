//! Every shim binary run for real against a Lambda runtime API emulator: a tiny HTTP/1.1 server
//! on 127.0.0.1 that answers `GET /2018-06-01/runtime/invocation/next` with a sample event and
//! takes the `POST .../response`, as Lambda's runtime API does. The time from process start to
//! the first `next` request is the binary's local init time; the test prints it (run with
//! `--nocapture`) and asserts nothing about it. `SHIM_BIN_DIR` points the test at other builds
//! of the binaries (the release ones, for the figures).

use crate::support::fixture;
use eda_testkit::local_config_path;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const STREAM_SAMPLE: &str = include_str!("../../../core/tests/fixtures/stream_lambda_sample.json");

/// One HTTP request as the runtime client sends it.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await.ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    Some(Request { method, path, body })
}

async fn respond(stream: &mut BufReader<TcpStream>, status: &str, headers: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: application/json\r\n{headers}\r\n",
        body.len()
    );
    let writer = stream.get_mut();
    writer.write_all(head.as_bytes()).await.unwrap();
    writer.write_all(body).await.unwrap();
}

/// What one run of a binary showed.
struct Run {
    init: Duration,
    answer: Value,
}

/// Starts `binary`, serves it `event` once, and stops it (by its PID) after the answer.
async fn run_once(binary: &str, event: Value) -> Run {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let path = match std::env::var_os("SHIM_BIN_DIR") {
        Some(dir) => PathBuf::from(dir).join(binary),
        None => bin_path(binary),
    };
    let mut command = std::process::Command::new(&path);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("EDA_") {
            command.env_remove(name);
        }
    }
    let started = Instant::now();
    let child = command
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", binary)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_REGION", "us-west-2")
        .env("CONFIG_FILE", local_config_path())
        .env("RUST_LOG", "warn")
        .env("EDA_ROUTING__REPLICATE_EVENT_TYPES", "[\"*\"]")
        .env("EDA_HEALTH__CALL_TIMEOUT_MS", "2000")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", path.display()));
    let mut child = KillOnDrop(child);
    let served = async {
        let (stream, _) = listener.accept().await.unwrap();
        let mut stream = BufReader::new(stream);
        let mut init = None;
        loop {
            let request = read_request(&mut stream).await.expect("a request");
            match (request.method.as_str(), request.path.as_str()) {
                ("GET", "/2018-06-01/runtime/invocation/next") if init.is_none() => {
                    init = Some(started.elapsed());
                    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
                    let headers = format!(
                        "lambda-runtime-aws-request-id: req-1\r\n\
                         lambda-runtime-deadline-ms: {deadline}\r\n\
                         lambda-runtime-invoked-function-arn: arn:aws:lambda:us-west-2:123456789012:function:{binary}\r\n\
                         lambda-runtime-trace-id: Root=1-5759e988-bd862e3fe1be46a994272793\r\n"
                    );
                    respond(
                        &mut stream,
                        "200 OK",
                        &headers,
                        &serde_json::to_vec(&event).unwrap(),
                    )
                    .await;
                }
                ("POST", "/2018-06-01/runtime/invocation/req-1/response") => {
                    respond(&mut stream, "202 Accepted", "", b"{}").await;
                    let answer = serde_json::from_slice(&request.body).expect("a JSON answer");
                    return Run {
                        init: init.expect("next came first"),
                        answer,
                    };
                }
                (method, path) => panic!(
                    "{binary}: unexpected {method} {path}: {}",
                    String::from_utf8_lossy(&request.body)
                ),
            }
        }
    };
    let run = tokio::time::timeout(Duration::from_secs(30), served).await;
    child.stop();
    run.unwrap_or_else(|_| panic!("{binary} did not answer within 30 s"))
}

/// The started binary, stopped by its PID (`kill` signals exactly this child) and reaped, also
/// when the test fails half-way.
struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bin_path(binary: &str) -> PathBuf {
    match binary {
        "authorizer" => env!("CARGO_BIN_EXE_authorizer"),
        "stream-processor" => env!("CARGO_BIN_EXE_stream-processor"),
        "event-transformer" => env!("CARGO_BIN_EXE_event-transformer"),
        "health-checker" => env!("CARGO_BIN_EXE_health-checker"),
        "event-router" => env!("CARGO_BIN_EXE_event-router"),
        other => panic!("no binary {other}"),
    }
    .into()
}

fn hs256_token() -> String {
    let now = chrono::Utc::now().timestamp();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "user-1", "iss": "https://auth.eda.local", "aud": "eda-api",
                "exp": now + 600, "roles": ["reader"], "tenant_id": "t-1"}),
        &EncodingKey::from_secret(b"local-development-hs256-secret-change-me"),
    )
    .unwrap()
}

#[tokio::test]
async fn every_binary_serves_an_event_through_the_runtime_api() {
    let mut token_request = fixture("example-apigw-custom-auth-request.json");
    token_request["authorizationToken"] = json!(format!("Bearer {}", hs256_token()));
    let mut change = fixture("example-eventbridge-event-obj.json");
    change["detail-type"] = json!("SALES.CUSTOMERS.UPDATE");
    change["detail"] = json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "event_type": "SALES.CUSTOMERS.UPDATE",
        "source_region": "us-west-2",
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "payload": {}
    });
    let runs = [
        ("authorizer", token_request),
        (
            "stream-processor",
            serde_json::from_str(STREAM_SAMPLE).unwrap(),
        ),
        ("event-transformer", change.clone()),
        (
            "health-checker",
            fixture("example-eventbridge-schedule.json"),
        ),
        ("event-router", change),
    ];
    for (binary, event) in runs {
        let run = run_once(binary, event).await;
        eprintln!(
            "{binary}: init {:.1} ms (process start to first runtime API request)",
            run.init.as_secs_f64() * 1000.0
        );
        match binary {
            "authorizer" => assert_eq!(
                run.answer["policyDocument"]["Statement"][0]["Effect"], "Allow",
                "{}",
                run.answer
            ),
            "stream-processor" => assert_eq!(run.answer, json!({"batchItemFailures": []})),
            "event-transformer" => assert_eq!(run.answer["detail_type"], "transformed"),
            "health-checker" => assert_eq!(run.answer["regions"].as_array().map(Vec::len), Some(2)),
            "event-router" => assert_eq!(run.answer["outcome"], "routed", "{}", run.answer),
            _ => unreachable!(),
        }
    }
}
