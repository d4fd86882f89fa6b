//! `eda-loadtest sink`: a blackhole AWS endpoint for benchmarks.
//!
//! **A benchmark harness, not a stand-in for correctness.** It answers the AWS JSON-protocol
//! calls eda makes (DynamoDB, EventBridge, SQS) from memory, as fast as the machine allows or
//! after a chosen latency, so that a benchmark measures eda and not the local stand-ins (the
//! local stack's EventBridge delivered a few thousand events a second at best). It is
//! deliberately small: it evaluates *eda's* condition expressions, not DynamoDB's language; it
//! keeps no durability, enforces no IAM, delivers no events to rules and checks no signatures.
//! The real local servers (DynamoDB Local, ministack) stay the correctness reference: every
//! behaviour eda relies on is tested against them, and only measured here.
//!
//! What it keeps, so that a benchmark run is still checked end to end:
//!
//! - **DynamoDB** ([`dynamodb`]): an in-memory table per region and name that enforces eda's
//!   sequence guard and answers `ConditionalCheckFailedException` (and a transaction's
//!   cancellation reasons) as DynamoDB does; `PutItem`, `GetItem`, `DeleteItem`, `Query`,
//!   `Scan`, `TransactWriteItems`, `BatchWriteItem`, `ListTables`, `DescribeTable`,
//!   `CreateTable`.
//! - **EventBridge** ([`eventbridge`]): `PutEvents` counts every entry by region, source and
//!   `event_id` (distinct ids and total entries); `ListEventBuses`, `CreateEventBus`.
//! - **SQS** ([`sqs`]): queues in memory (the dead-letter and owed queues); `SendMessage`,
//!   `SendMessageBatch`, `ReceiveMessage`, `DeleteMessage`, `DeleteMessageBatch`,
//!   `GetQueueAttributes`, `ListQueues`, `GetQueueUrl`, `CreateQueue`, `PurgeQueue`.
//!
//! Requests are told apart by the region they are signed for, as on the local stack, so one
//! sink serves both of eda's regions. Every AWS call is answered `--latency-ms` (fixed,
//! `uniform:LOW..HIGH` or `exp:MEAN`) after its request was read, or as soon as its work is done
//! if that takes longer: the work (the writes, the counting) is done at once and the answer
//! held back until then, by a thread of its own ([`delay`], as tokio's millisecond timer made
//! 1 ms into 2-3). A call may be refused: a `--throttle-rate` share with the service's
//! throttling error, an `--error-rate` share with an HTTP 500; a refused call does no work.
//! Other services (Secrets Manager: the daemon does not call it) are answered with
//! `UnknownOperationException`.
//!
//! **Its CPU is the benchmark's too**: it runs on the machine it measures, so every µs it spends
//! is taken from eda. The calls every message makes, a conditional `PutItem` or a statement in a
//! `BatchExecuteStatement`, and a `PutEvents`, are read straight from the request's bytes into
//! borrowed typed fields (an item kept as its JSON text with an index of its attributes,
//! [`item`]; a statement's parameters kept as their text; a detail read where it lies, for its
//! `event_id`) and answered as bytes; a request of any other shape, and every other operation,
//! goes through a JSON tree, as before. Both readings answer the same (tests hold them to it).
//!
//! Two paths are the sink's own: `GET /_sink/stats` (JSON: calls and injected faults per
//! operation, events per region and source, items per table, queue depths, estimated write
//! units) and `GET /_sink/events?region=R&source=S` (the distinct event ids seen, sorted), for a
//! benchmark to check at the end that every change's event was put.

pub mod condition;
pub mod delay;
pub mod dynamodb;
pub mod eventbridge;
pub mod faults;
pub mod item;
pub mod partiql;
pub mod sqs;
pub mod wire;

use dynamodb::{DynamoDb, KeySchema};
use eventbridge::EventBridge;
use faults::{Fault, Latency};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use sqs::Sqs;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use wire::{AwsError, Service};

/// How the sink behaves.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// How long after its request is read every AWS call is answered (its work is done meanwhile).
    pub latency: Latency,
    /// The share of AWS calls answered with the service's throttling error (0..1).
    pub throttle_rate: f64,
    /// The share of AWS calls answered with an HTTP 500 (0..1).
    pub error_rate: f64,
    /// Key schemas of tables by name; others are keyed by `pk`.
    pub tables: HashMap<String, KeySchema>,
}

/// Calls of one operation.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CallCounts {
    /// Calls received.
    pub calls: u64,
    /// Calls answered with an injected throttling error.
    pub throttled: u64,
    /// Calls answered with an injected server error.
    pub failed: u64,
    /// Calls answered with any other error (a refused condition, a validation error).
    pub errors: u64,
    /// What the calls carried, for the batch operations: `PutEvents` entries,
    /// `BatchExecuteStatement` statements, `TransactWriteItems` items, `SendMessageBatch`
    /// entries (so a report can say how full the batches were).
    pub members: u64,
}

/// The sink's state: what every connection reads and writes.
#[derive(Debug)]
pub struct Sink {
    /// Latency and faults.
    options: SinkOptions,
    /// Keeps the waits of `--latency-ms` to their length.
    delays: delay::Delays,
    /// Tables.
    dynamodb: DynamoDb,
    /// Events.
    eventbridge: EventBridge,
    /// Queues.
    sqs: Sqs,
    /// Calls per service and operation (a handful: looked up in order, without building a key).
    calls: Mutex<Vec<(Service, Box<str>, CallCounts)>>,
    /// When the sink started, for the statistics.
    started: Instant,
}

impl Sink {
    /// A sink with `options` and nothing in it.
    pub fn new(options: SinkOptions) -> Self {
        Self {
            dynamodb: DynamoDb::new(options.tables.clone()),
            eventbridge: EventBridge::default(),
            sqs: Sqs::default(),
            calls: Mutex::new(Vec::new()),
            started: Instant::now(),
            delays: delay::Delays::new(),
            options,
        }
    }

    /// What `GET /_sink/stats` answers.
    pub fn stats(&self) -> Value {
        let calls: BTreeMap<String, CallCounts> = self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(service, operation, counts)| {
                (format!("{}.{operation}", service.name()), counts.clone())
            })
            .collect();
        json!({
            "uptime_secs": self.started.elapsed().as_secs_f64(),
            "latency_ms": self.options.latency.to_string(),
            "throttle_rate": self.options.throttle_rate,
            "error_rate": self.options.error_rate,
            "calls": calls,
            "events": self.eventbridge.stats(),
            "tables": self.dynamodb.stats(),
            "queues": self.sqs.stats(),
            "write_units": self.dynamodb.write_units(),
        })
    }

    /// Every distinct event id put under `region` and `source`, sorted (what
    /// `GET /_sink/events` answers).
    pub fn event_ids(&self, region: &str, source: &str) -> Vec<String> {
        self.eventbridge.ids(region, source)
    }

    fn count(&self, service: Service, operation: &str, f: impl FnOnce(&mut CallCounts)) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let at = match calls
            .iter()
            .position(|(s, o, _)| *s == service && **o == *operation)
        {
            Some(at) => at,
            None => {
                calls.push((service, operation.into(), CallCounts::default()));
                calls.len() - 1
            }
        };
        f(&mut calls[at].2);
    }

    /// Answers one AWS call with the JSON bytes of its answer.
    async fn call(&self, call: Call<'_>) -> Result<Vec<u8>, AwsError> {
        self.count(call.service, call.operation, |c| c.calls += 1);
        // The latency runs from the call's arrival, and the call is answered (its writes made)
        // meanwhile, as a service with room for every call in flight would: one thread working
        // through a burst after the wait instead (the sink's first form) put up to 6 ms of
        // queue on a 1 ms latency at 10,000 msg/s, all of it this harness's.
        let answer_at = self
            .options
            .latency
            .sample()
            .map(|wait| Instant::now() + wait);
        let answer = self.answer_now(call).await;
        if let Some(at) = answer_at {
            self.delays.wait_until(at).await;
        }
        answer
    }

    /// The answer to a call, fault injection first.
    async fn answer_now(&self, call: Call<'_>) -> Result<Vec<u8>, AwsError> {
        let Call {
            service,
            operation,
            region,
            body,
            ..
        } = call;
        match faults::draw(self.options.throttle_rate, self.options.error_rate) {
            Some(Fault::Throttle) => {
                self.count(service, operation, |c| c.throttled += 1);
                return Err(service.throttling_error());
            }
            Some(Fault::ServerError) => {
                self.count(service, operation, |c| c.failed += 1);
                return Err(service.server_error());
            }
            None => {}
        }
        // The calls of every message: read into typed fields, answered as bytes.
        // A batch's answer comes with how many members (statements, entries) it carried.
        let counted = |read: Option<(u64, Result<Vec<u8>, AwsError>)>| {
            read.map(|(members, answer)| {
                self.count(service, operation, |c| c.members += members);
                answer
            })
        };
        let fast = match (service, operation) {
            (Service::DynamoDb, "PutItem") => self.dynamodb.put_item_fast(region, body),
            (Service::DynamoDb, "BatchExecuteStatement") => {
                counted(self.dynamodb.batch_execute_statement_fast(region, body))
            }
            (Service::EventBridge, "PutEvents") => {
                counted(self.eventbridge.put_events_fast(region, body))
            }
            _ => None,
        };
        let answer = match fast {
            Some(answer) => answer,
            None => self
                .answer(call)
                .await
                .map(|answer| serde_json::to_vec(&answer).unwrap_or_default()),
        };
        if answer.is_err() {
            self.count(service, operation, |c| c.errors += 1);
        }
        answer
    }

    /// Answers a call read as a JSON tree: every operation, and the calls of a shape the
    /// typed readings do not take.
    async fn answer(&self, call: Call<'_>) -> Result<Value, AwsError> {
        let Call {
            service,
            operation,
            region,
            host,
            body,
        } = call;
        let request: Map<String, Value> = match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => map,
            Ok(_) | Err(_) if body.is_empty() => Map::new(),
            _ => {
                return Err(AwsError::new(
                    400,
                    "SerializationException",
                    "the request body is not a JSON object",
                ))
            }
        };
        let members = ["Entries", "Statements", "TransactItems"]
            .iter()
            .find_map(|name| request.get(*name).and_then(Value::as_array))
            .map_or(0, Vec::len) as u64;
        if members > 0 {
            self.count(service, operation, |c| c.members += members);
        }
        match service {
            Service::DynamoDb => self.dynamodb.handle(operation, region, request),
            Service::EventBridge => self.eventbridge.handle(operation, region, request),
            Service::Sqs => self.sqs.handle(operation, region, host, request).await,
        }
    }
}

/// One AWS call as it came in.
#[derive(Debug, Clone, Copy)]
struct Call<'a> {
    service: Service,
    /// The operation, from `X-Amz-Target` (`PutItem`).
    operation: &'a str,
    /// The region it is signed for.
    region: &'a str,
    /// The `Host` it was sent to (SQS answers with queue URLs on it).
    host: &'a str,
    body: &'a [u8],
}

/// Serves the sink on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, sink: Arc<Sink>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let sink = sink.clone();
                    let service = service_fn(move |request| {
                        let sink = sink.clone();
                        async move { Ok::<_, Infallible>(respond(&sink, request).await) }
                    });
                    tokio::spawn(async move {
                        // A client that goes away mid-request is its own business.
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "The sink could not accept a connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn respond(sink: &Sink, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    if parts.method == Method::GET && parts.uri.path().starts_with("/_sink/") {
        return own_path(sink, parts.uri.path(), parts.uri.query().unwrap_or(""));
    }
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let Some((service, operation)) = header("x-amz-target").and_then(Service::of_target) else {
        let err = AwsError::new(
            400,
            "UnknownOperationException",
            format!(
                "the sink answers DynamoDB, EventBridge and SQS calls (X-Amz-Target), not {:?}",
                header("x-amz-target").unwrap_or("no target")
            ),
        );
        return aws_error(Service::DynamoDb, &err);
    };
    let region = wire::signing_region(header("authorization"));
    let host = header("host").unwrap_or("127.0.0.1");
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return plain(StatusCode::BAD_REQUEST, "the request body was cut off"),
    };
    let call = Call {
        service,
        operation,
        region,
        host,
        body: &body,
    };
    match sink.call(call).await {
        Ok(answer) => {
            let mut response = Response::new(Full::new(Bytes::from(answer)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(service.content_type()),
            );
            response
        }
        Err(err) => aws_error(service, &err),
    }
}

fn aws_error(service: Service, err: &AwsError) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(err.body(service))));
    *response.status_mut() = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(service.content_type()),
    );
    if let Ok(code) = HeaderValue::from_str(err.code) {
        headers.insert("x-amzn-errortype", code);
    }
    if service == Service::Sqs {
        if let Ok(value) = HeaderValue::from_str(&err.sqs_query_error()) {
            headers.insert("x-amzn-query-error", value);
        }
    }
    response
}

fn own_path(sink: &Sink, path: &str, query: &str) -> Response<Full<Bytes>> {
    match path {
        "/_sink/stats" => json_response(&sink.stats()),
        "/_sink/events" => {
            let param = |name: &str| {
                query
                    .split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            };
            match (param("region"), param("source")) {
                (Some(region), Some(source)) => {
                    json_response(&json!(sink.event_ids(&region, &source)))
                }
                _ => plain(
                    StatusCode::BAD_REQUEST,
                    "GET /_sink/events?region=REGION&source=SOURCE",
                ),
            }
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            "the sink's own paths: /_sink/stats, /_sink/events?region=R&source=S",
        ),
    }
}

fn json_response(value: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(value).unwrap_or_default(),
    )));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt as _;

    #[tokio::test]
    async fn a_call_is_worked_at_once_and_answered_its_latency_after_it_arrived() {
        let sink = Sink::new(SinkOptions {
            latency: Latency::Fixed(200.0),
            ..SinkOptions::default()
        });
        let body = br#"{"Entries":[{"Source":"eda.cdc","DetailType":"t","EventBusName":"b","Detail":"{\"event_id\":\"e1\"}"}]}"#;
        let arrived = Instant::now();
        let mut call = Box::pin(sink.call(Call {
            service: Service::EventBridge,
            operation: "PutEvents",
            region: "us-west-2",
            host: "127.0.0.1",
            body,
        }));
        // The first poll does the work, then the call waits for its latency.
        assert!((&mut call).now_or_never().is_none());
        assert_eq!(sink.eventbridge.ids("us-west-2", "eda.cdc"), ["e1"]);
        let answer = call.await.expect("the events are put");
        assert!(String::from_utf8_lossy(&answer).contains("\"FailedEntryCount\":0"));
        let took = arrived.elapsed();
        assert!(
            took >= Duration::from_millis(200),
            "answered after {took:?}"
        );
    }
}
