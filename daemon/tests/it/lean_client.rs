//! The lean client of the per-message calls (`PutItem`, `PutEvents`) against the real local
//! servers: what eda writes is what DynamoDB Local stores, the guard's refusal brings back the
//! stored sequence, ministack's bus gets the fields of an entry, and a black-holed EventBridge
//! ends in a retryable timeout. (Throttles and 5xx answers: `holds.rs`; a black-holed
//! DynamoDB: `timeouts.rs`.)
//!
//! Its transport (`actors/src/aws/lean/http.rs`, a keep-alive pool of eda's own): a pooled
//! connection cut between two calls is replaced, not reused; a refused connection is a
//! retryable failure; and, against [`HandWrittenServer`] for what no real server can be made to
//! answer, chunked answers are read whole, a cut-off answer is a retryable failure that leaves
//! no connection behind, a server's close (FIN or `Connection: close`) is honoured, a 5xx
//! without a body is the server's failure, and an answer claiming a huge body is refused before
//! memory is reserved for it.

use super::fault_proxy::{Fault, FaultProxy};
use eda_actors::aws::{from_sdk, DynamoDbItemWriter, EventBridgeClient, RegionClients};
use eda_actors::ports::{EventPublisher, ItemWriter};
use eda_core::apply_plan::{AttrValue, PlannedWrite, WriteOutcome, PK_ATTR, SEQ_ATTR};
use eda_core::eventbridge::EventBridgeEntry;
use eda_core::failure::ErrorClass;
use eda_testkit::bus::Inspector;
use eda_testkit::{local_config, Sinks};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An item with every attribute type the apply plan produces, and strings that need escaping.
fn write(table: &str, pk: &str, n: u64) -> PlannedWrite {
    let sequence = eda_loadtest::history::sequence(n);
    let item = BTreeMap::from([
        (PK_ATTR.to_string(), AttrValue::S(pk.into())),
        (SEQ_ATTR.to_string(), AttrValue::S(sequence.clone())),
        (
            "NAME".to_string(),
            AttrValue::S(format!("O'Brien \"Bob\" \\ é ✓\n\t\u{1} #{n}")),
        ),
        ("AMOUNT".to_string(), AttrValue::N("-12345.6789".into())),
        ("ACTIVE".to_string(), AttrValue::Bool(n % 2 == 0)),
        ("NOTE".to_string(), AttrValue::Null),
        (
            "BLOB".to_string(),
            AttrValue::B(vec![0, 1, 2, 253, 254, 255]),
        ),
        (
            "TAGS".to_string(),
            AttrValue::L(vec![AttrValue::S("a".into()), AttrValue::N("2".into())]),
        ),
        (
            "ADDRESS".to_string(),
            AttrValue::M(BTreeMap::from([
                ("city".to_string(), AttrValue::S("Zürich".into())),
                ("zip".to_string(), AttrValue::N("8001".into())),
            ])),
        ),
    ]);
    PlannedWrite {
        table_name: table.to_string(),
        item,
        sequence,
        tombstone: false,
        winner: 0,
        covers: vec![0],
    }
}

#[tokio::test]
async fn the_guard_refuses_older_and_replayed_writes_and_returns_the_stored_sequence() {
    let sinks = Sinks::create_uninspected().await;
    let writer = DynamoDbItemWriter::new(&sinks.clients);
    let table = &sinks.table.name;

    let second = write(table, "SALES.CUSTOMERS#L1", 2);
    assert_eq!(
        writer.write(&second).await.expect("first write"),
        WriteOutcome::Applied { previous: None }
    );
    let stored = sinks.table.items().await;
    let item: BTreeMap<String, AttrValue> = stored["SALES.CUSTOMERS#L1"]
        .iter()
        .map(|(name, value)| (name.clone(), from_sdk(value)))
        .collect();
    assert_eq!(
        item, second.item,
        "DynamoDB stored exactly the planned item"
    );

    for older in [write(table, "SALES.CUSTOMERS#L1", 1), second.clone()] {
        let outcome = writer.write(&older).await.expect("a refusal is an answer");
        assert_eq!(
            outcome,
            WriteOutcome::Superseded {
                current: Some(second.sequence.clone())
            },
            "sequence {} against the stored {}",
            older.sequence,
            second.sequence
        );
    }
    let newer = write(table, "SALES.CUSTOMERS#L1", 3);
    assert_eq!(
        writer.write(&newer).await.expect("newer write"),
        WriteOutcome::Applied { previous: None }
    );
}

#[tokio::test]
async fn a_write_to_a_missing_table_is_a_permanent_error() {
    let config = local_config();
    let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
    let err = DynamoDbItemWriter::new(&clients)
        .write(&write("eda-no-such-table", "K", 1))
        .await
        .expect_err("no table");
    assert_eq!(err.class, ErrorClass::Client, "{err:?}");
    assert!(err.message.contains("ResourceNotFoundException"), "{err}");
}

#[tokio::test]
async fn put_events_delivers_every_field_of_each_entry_to_the_bus() {
    let config = local_config();
    let region = &config.regions.primary;
    let clients = RegionClients::new(region, &config.aws).await;
    let bus = eda_testkit::bus::create_bus(&clients).await;
    let inspector = Inspector::attach(&clients, &bus).await;
    let publisher = EventBridgeClient::new(clients.lean_eventbridge.clone(), &bus, &region.name);
    let marker = eda_testkit::unique("lean-marker");
    let detail = serde_json::json!({
        "marker": marker,
        "text": "quote \" backslash \\ newline \n unicode é ✓ control \u{1}",
    })
    .to_string();
    let entries = [
        EventBridgeEntry {
            source: "eda.test".into(),
            detail_type: "lean.first".into(),
            detail: detail.as_str().into(),
            resources: vec!["arn:aws:dynamodb:us-west-2:000000000000:table/t".into()],
            time: Some("2026-01-02T03:04:05Z".into()),
            event_bus_name: None,
            // Taken, though the stand-in keeps no trace of it.
            trace_header: Some(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
            ),
        },
        EventBridgeEntry {
            source: "eda.test".into(),
            detail_type: "lean.second".into(),
            detail: serde_json::json!({ "marker": format!("{marker}-2") })
                .to_string()
                .into(),
            resources: Vec::new(),
            time: None,
            event_bus_name: Some(bus.clone()),
            trace_header: None,
        },
    ];
    let results = publisher.put_events(&entries).await.expect("answered");
    assert_eq!(results.len(), 2);
    for result in &results {
        assert!(
            result.as_ref().is_ok_and(|id| !id.is_empty()),
            "{results:?}"
        );
    }

    let events = inspector
        .wait_for(&[format!("\"{marker}\""), format!("{marker}-2")])
        .await;
    let first = &events[0];
    assert_eq!(first["source"], "eda.test");
    assert_eq!(first["detail-type"], "lean.first");
    assert_eq!(
        first["detail"],
        serde_json::from_str::<serde_json::Value>(&detail).expect("detail")
    );
    assert_eq!(
        first["resources"],
        serde_json::json!(["arn:aws:dynamodb:us-west-2:000000000000:table/t"])
    );
    // ministack stamps the arrival time whatever `Time` says (its own convention), so the
    // field's form is checked by the serializer's unit test instead.
    assert_eq!(events[1]["detail-type"], "lean.second");
}

#[tokio::test]
async fn a_black_holed_eventbridge_times_out_as_a_retryable_failure() {
    let proxy = FaultProxy::start("127.0.0.1:5000".parse().expect("address")).await;
    let mut config = local_config();
    config.regions.primary.endpoints.eventbridge = Some(proxy.url());
    config.aws.attempt_timeout_ms = 300;
    let region = &config.regions.primary;
    let clients = RegionClients::new(region, &config.aws).await;
    let publisher = EventBridgeClient::new(
        clients.lean_eventbridge.clone(),
        &region.event_bus,
        &region.name,
    );
    let entry = EventBridgeEntry {
        source: "eda.test".into(),
        detail_type: "lean.timeout".into(),
        detail: "{}".into(),
        ..EventBridgeEntry::default()
    };
    proxy.set(Fault::BlackHole);
    // The bound only keeps a broken build from hanging the suite.
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        publisher.put_events(std::slice::from_ref(&entry)),
    )
    .await
    .expect("the call ends on its own")
    .expect_err("nothing answered");
    assert_eq!(err.class, ErrorClass::Timeout, "{err:?}");
    assert!(err.is_retryable());

    proxy.set(Fault::None);
    let results = tokio::time::timeout(Duration::from_secs(60), publisher.put_events(&[entry]))
        .await
        .expect("the call ends on its own")
        .expect("answered once the path is back");
    assert!(results[0].is_ok(), "{results:?}");
}

/// A writer whose `PutItem`s go to `endpoint` (the local stack's DynamoDB credentials and
/// region), with a short attempt timeout so that a broken transport fails fast.
async fn writer_at(endpoint: String) -> DynamoDbItemWriter {
    let mut config = local_config();
    config.regions.primary.endpoints.dynamodb = Some(endpoint);
    config.aws.attempt_timeout_ms = 5_000;
    let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
    DynamoDbItemWriter::new(&clients)
}

/// One write, bounded so that a hang fails the test instead of stalling the suite.
async fn bounded(
    writer: &DynamoDbItemWriter,
    write: &PlannedWrite,
) -> Result<WriteOutcome, eda_actors::ports::SinkError> {
    tokio::time::timeout(Duration::from_secs(60), writer.write(write))
        .await
        .expect("the call ends on its own")
}

#[tokio::test]
async fn a_pooled_connection_cut_between_two_calls_is_replaced_not_reused() {
    let sinks = Sinks::create_uninspected().await;
    let table = &sinks.table.name;
    let proxy = FaultProxy::start("127.0.0.1:8000".parse().expect("address")).await;
    let writer = writer_at(proxy.url()).await;
    bounded(&writer, &write(table, "CUT#1", 1))
        .await
        .expect("the first write, which leaves its connection in the pool");
    for round in 2..5 {
        // The proxy resets every open connection (what a load balancer or an idle timeout
        // does), then passes new ones again.
        proxy.set(Fault::Refuse);
        tokio::time::sleep(Duration::from_millis(200)).await;
        proxy.set(Fault::None);
        let outcome = bounded(&writer, &write(table, "CUT#1", round))
            .await
            .unwrap_or_else(|err| panic!("round {round}: the cut connection was reused: {err}"));
        assert_eq!(outcome, WriteOutcome::Applied { previous: None });
    }
    let stored = sinks.table.items().await;
    assert_eq!(
        stored["CUT#1"][SEQ_ATTR].as_s().expect("a string"),
        &eda_loadtest::history::sequence(4)
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_connect_failure() {
    let port = eda_testkit::free_port();
    let writer = writer_at(format!("http://127.0.0.1:{port}")).await;
    let err = bounded(&writer, &write("t", "K", 1))
        .await
        .expect_err("nothing listens");
    assert_eq!(err.class, ErrorClass::Connect, "{err:?}");
    assert!(err.is_retryable());
    assert_eq!((err.service, err.operation), ("dynamodb", "PutItem"));
    assert!(err.message.contains(&port.to_string()), "{err}");
}

/// A hand-written HTTP/1.1 server, for the answers no real server can be made to give (a chunked
/// body on demand, an answer cut off mid-body, a close right after an answer): it reads each
/// request (its head and `Content-Length` bytes of body) and writes the next of its canned
/// answers (in turn, across connections) as it is, then closes the connection (FIN) if told
/// to. It counts the connections it accepted.
struct HandWrittenServer {
    url: String,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HandWrittenServer {
    async fn start(answers: &'static [&'static str], close_after_each: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let task = {
            let accepted = accepted.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut conn, _)) = listener.accept().await else {
                        return;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let served = served.clone();
                    tokio::spawn(async move {
                        let mut request = Vec::new();
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            let n = conn.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            request.extend_from_slice(&buf[..n]);
                            let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n")
                            else {
                                continue;
                            };
                            let head =
                                String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|line| line.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if request.len() < end + 4 + length {
                                continue;
                            }
                            request.drain(..end + 4 + length);
                            let answer =
                                answers[served.fetch_add(1, Ordering::SeqCst) % answers.len()];
                            if conn.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                            if close_after_each {
                                let _ = conn.shutdown().await;
                                return;
                            }
                        }
                    });
                }
            })
        };
        Self {
            url,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for HandWrittenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `PutItem`'s answer to a write the guard let through.
const APPLIED: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n{}";

#[tokio::test]
async fn chunked_answers_are_read_whole_and_keep_their_connection() {
    // A success in three chunks (one of them empty-looking: just the closing brace), then the
    // guard's refusal with the stored item, its JSON split mid-string across chunks, and a
    // trailer.
    static ANSWERS: [&str; 2] = [
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n\
         Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n1;ext=1\r\n}\r\n0\r\n\r\n",
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\n\
         Transfer-Encoding: chunked\r\n\r\n\
         2c\r\n{\"__type\":\"com.amazonaws.dynamodb.v20120810#\r\n\
         4C\r\nConditionalCheckFailedException\",\"message\":\"The conditional request failed\",\r\n\
         24\r\n\"Item\":{\"_seq\":{\"S\":\"00000000009\"}}}\r\n\
         0\r\nx-trailer: 1\r\n\r\n",
    ];
    let server = HandWrittenServer::start(&ANSWERS, false).await;
    let writer = writer_at(server.url.clone()).await;
    assert_eq!(
        bounded(&writer, &write("t", "K", 1))
            .await
            .expect("a chunked 200"),
        WriteOutcome::Applied { previous: None }
    );
    assert_eq!(
        bounded(&writer, &write("t", "K", 2))
            .await
            .expect("a chunked refusal is an answer"),
        WriteOutcome::Superseded {
            current: Some("00000000009".into())
        }
    );
    assert_eq!(
        server.accepted(),
        1,
        "both answers came on one pooled connection"
    );
}

#[tokio::test]
async fn an_answer_cut_off_mid_body_is_a_retryable_failure_and_its_connection_is_dropped() {
    // Content-Length says 100; 13 bytes come, then the server closes.
    static CUT: [&str; 1] = ["HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Attributes\""];
    let server = HandWrittenServer::start(&CUT, true).await;
    let writer = writer_at(server.url.clone()).await;
    for attempt in 1..=2 {
        let err = bounded(&writer, &write("t", "K", attempt))
            .await
            .expect_err("half an answer is no answer");
        assert_eq!(err.class, ErrorClass::Connect, "{err:?}");
        assert!(err.is_retryable());
        assert!(
            err.message
                .contains("closed after 13 of the body's 100 bytes"),
            "{err}"
        );
    }
    assert_eq!(server.accepted(), 2, "a new connection for each attempt");

    // Cut off in the head: the same, with the head named.
    static CUT_HEAD: [&str; 1] = ["HTTP/1.1 200 OK\r\nContent-Len"];
    let server = HandWrittenServer::start(&CUT_HEAD, true).await;
    let err = bounded(&writer_at(server.url.clone()).await, &write("t", "K", 1))
        .await
        .expect_err("half a head is no answer");
    assert_eq!(err.class, ErrorClass::Connect, "{err:?}");
    assert!(err.message.contains("of the answer's head"), "{err}");
}

#[tokio::test]
async fn an_answer_claiming_a_huge_body_is_refused_before_it_is_read() {
    // A broken proxy or a garbage answer: a length no AWS answer has. The client must refuse it
    // as a retryable failure rather than reserve memory for it (100 GB would abort the daemon).
    static HUGE: [&str; 1] = ["HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n{}"];
    let server = HandWrittenServer::start(&HUGE, true).await;
    let writer = writer_at(server.url.clone()).await;
    let err = bounded(&writer, &write("t", "K", 1))
        .await
        .expect_err("an answer of 100 GB is no answer");
    assert_eq!(err.class, ErrorClass::Connect, "{err:?}");
    assert!(err.message.contains("longer than"), "{err}");

    // The same length in chunks: one chunk of 0x1000000000 bytes (64 GiB).
    static HUGE_CHUNK: [&str; 1] =
        ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000\r\n{}"];
    let server = HandWrittenServer::start(&HUGE_CHUNK, true).await;
    let err = bounded(&writer_at(server.url.clone()).await, &write("t", "K", 1))
        .await
        .expect_err("a chunk of 64 GiB is no answer");
    assert_eq!(err.class, ErrorClass::Connect, "{err:?}");
    assert!(err.message.contains("longer than"), "{err}");
}

#[tokio::test]
async fn a_server_that_closes_after_an_answer_gets_a_new_connection_for_the_next_call() {
    // `Connection: close`: the client must not even try the connection again.
    static CLOSING: [&str; 1] =
        ["HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"];
    let server = HandWrittenServer::start(&CLOSING, true).await;
    let writer = writer_at(server.url.clone()).await;
    for n in 1..=3 {
        bounded(&writer, &write("t", "K", n))
            .await
            .unwrap_or_else(|err| panic!("call {n}: {err}"));
    }
    assert_eq!(server.accepted(), 3);

    // A plain FIN after a keep-alive answer (an idle timeout): the pooled connection is found
    // closed when it is checked out, and dropped.
    static KEEP_ALIVE: [&str; 1] = [APPLIED];
    let server = HandWrittenServer::start(&KEEP_ALIVE, true).await;
    let writer = writer_at(server.url.clone()).await;
    for n in 1..=3 {
        bounded(&writer, &write("t", "K", n))
            .await
            .unwrap_or_else(|err| panic!("call {n}: {err}"));
        // Time for the FIN to arrive (the race with a close in flight is the retry loop's).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(server.accepted(), 3);

    // And a server that keeps its connections: one connection for every call.
    let server = HandWrittenServer::start(&KEEP_ALIVE, false).await;
    let writer = writer_at(server.url.clone()).await;
    for n in 1..=3 {
        bounded(&writer, &write("t", "K", n))
            .await
            .unwrap_or_else(|err| panic!("call {n}: {err}"));
    }
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn a_5xx_without_a_body_is_the_servers_retryable_failure() {
    // An empty body by its length, and one that ends with the connection (no length at all).
    static EMPTY: [&str; 1] = ["HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"];
    static UNTIL_CLOSE: [&str; 1] = ["HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n"];
    for (answers, status) in [(&EMPTY, 500), (&UNTIL_CLOSE, 502)] {
        let server = HandWrittenServer::start(answers, true).await;
        let writer = writer_at(server.url.clone()).await;
        let err = bounded(&writer, &write("t", "K", 1))
            .await
            .expect_err("a 5xx");
        assert_eq!(err.class, ErrorClass::Server, "{err:?}");
        assert!(err.is_retryable());
        assert!(err.message.contains(&format!("HTTP {status}")), "{err}");
    }
}
