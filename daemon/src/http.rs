//! The daemon's HTTP surface: `/metrics` for Prometheus, `/healthz` for the liveness probe and
//! `/readyz` for the readiness probe, on `http.listen` (port 9090 by default).
//!
//! [`serve`] takes a bound listener and a shutdown future (as mini-redis's `server::run` does),
//! so `run` decides the address and when to stop, and tests serve on `127.0.0.1:0`. Handlers
//! only read shared state ([`Metrics`], [`Readiness`], [`Liveness`]); none waits on an actor, so
//! a busy pipeline cannot make a probe time out. Plain hyper (HTTP/1, no router): three fixed
//! paths do not pay for a framework.

use eda_actors::telemetry::{Liveness, Metrics, Readiness, OPENMETRICS_CONTENT_TYPE};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Content type of the plain-text probe answers.
const TEXT: &str = "text/plain; charset=utf-8";

/// How long open connections get to finish once shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed `accept` (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A client that sends no complete request head within this is disconnected.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the handlers read: shared with the actors that write it.
#[derive(Clone)]
struct Surface {
    /// The registry `/metrics` encodes.
    metrics: Arc<Metrics>,
    /// Partitions and sink probes, for `/readyz`.
    readiness: Arc<Readiness>,
    /// The root supervisor's heartbeat and the consumer's membership, for `/healthz`.
    liveness: Arc<Liveness>,
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown` completes, then
/// stops accepting and gives open connections [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    liveness: Arc<Liveness>,
    shutdown: impl Future<Output = ()>,
) {
    let surface = Surface {
        metrics,
        readiness,
        liveness,
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "Serving /metrics, /healthz and /readyz.");
    }
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let surface = surface.clone();
                    let service = service_fn(move |request: Request<Incoming>| {
                        std::future::ready(Ok::<_, Infallible>(respond(&request, &surface)))
                    });
                    let connection = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service);
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        if let Err(err) = connection.await {
                            tracing::debug!(error = %err, "HTTP connection ended with an error.");
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "Accepting an HTTP connection failed; retrying.");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections did not close in time; dropping them.");
    }
    tracing::debug!("HTTP surface stopped.");
}

/// Routes one request.
fn respond(request: &Request<Incoming>, surface: &Surface) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/metrics" => match surface.metrics.encode() {
            Ok(body) => {
                let mut response = text(StatusCode::OK, body);
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
                );
                response
            }
            Err(err) => {
                tracing::error!(error = %err, "Encoding the metrics failed.");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "metrics encoding failed\n",
                )
            }
        },
        "/healthz" => match surface.liveness.check() {
            Ok(()) => text(StatusCode::OK, "ok\n"),
            Err(not_alive) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{not_alive}\n")),
        },
        _ => match surface.readiness.check() {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(not_ready) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{not_ready}\n")),
        },
    }
}

/// A plain-text answer.
fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use eda_actors::telemetry::{
        ActorKind, ActorRestarted, InternalEvent, MessagesConsumed, Service, Sink,
    };
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    /// A server on 127.0.0.1:0 and the handles to drive it.
    struct Running {
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        liveness: Arc<Liveness>,
        stop: oneshot::Sender<()>,
        server: JoinHandle<()>,
    }

    async fn start() -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let readiness = Arc::new(Readiness::new(
            [
                Sink::new(Service::DynamoDb, "us-west-2"),
                Sink::new(Service::EventBridge, "us-west-2"),
            ],
            Duration::from_secs(60),
        ));
        let liveness = Arc::new(Liveness::new(Duration::from_secs(60)));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            Arc::clone(&metrics),
            Arc::clone(&readiness),
            Arc::clone(&liveness),
            async {
                let _ = stopped.await;
            },
        ));
        Running {
            addr,
            metrics,
            readiness,
            liveness,
            stop,
            server,
        }
    }

    /// Status, head and body of one request over a fresh connection.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_owned())
    }

    async fn stop(running: Running) {
        running.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), running.server)
            .await
            .expect("the server stops when shutdown completes")
            .unwrap();
    }

    #[tokio::test]
    async fn metrics_are_scraped_as_openmetrics() {
        let running = start().await;
        MessagesConsumed {
            topic: "orders",
            count: 7,
        }
        .emit(&running.metrics);
        ActorRestarted {
            kind: ActorKind::DlqWriter,
            name: "dlq_writer",
            reason: "failed: test",
            attempt: 1,
            backoff: Duration::from_millis(100),
        }
        .emit(&running.metrics);

        let (status, head, body) = request(running.addr, "GET", "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            head.contains(
                "content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"
            ),
            "{head}"
        );
        assert!(
            body.contains("eda_kafka_messages_consumed_total{topic=\"orders\"} 7\n"),
            "{body}"
        );
        assert!(
            body.contains("eda_actor_restarts_total{actor=\"dlq_writer\"} 1\n"),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"));
        stop(running).await;
    }

    #[tokio::test]
    async fn readyz_turns_ready_once_partitions_are_assigned_and_sinks_answered() {
        let running = start().await;
        let (status, _, body) = request(running.addr, "GET", "/readyz").await;
        assert_eq!(status, 503);
        assert_eq!(
            body,
            "not ready: no partitions assigned; dynamodb in us-west-2 not probed yet; \
             eventbridge in us-west-2 not probed yet\n"
        );

        running.readiness.set_partitions_assigned(4);
        running
            .readiness
            .record_probe(Service::DynamoDb, "us-west-2", true);
        running
            .readiness
            .record_probe(Service::EventBridge, "us-west-2", false);
        let (status, _, body) = request(running.addr, "GET", "/readyz").await;
        assert_eq!(
            (status, body.as_str()),
            (503, "not ready: eventbridge in us-west-2 unreachable\n")
        );

        running
            .readiness
            .record_probe(Service::EventBridge, "us-west-2", true);
        let (status, _, body) = request(running.addr, "GET", "/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ready\n"));
        stop(running).await;
    }

    #[tokio::test]
    async fn healthz_follows_the_supervision_tree() {
        let running = start().await;
        assert_eq!(request(running.addr, "GET", "/healthz").await.0, 503);
        running.liveness.beat();
        let (status, _, body) = request(running.addr, "GET", "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        running.liveness.mark_stopped();
        assert_eq!(request(running.addr, "GET", "/healthz").await.0, 503);
        stop(running).await;
    }

    #[tokio::test]
    async fn healthz_fails_with_the_reason_while_the_consumer_is_stuck_out_of_its_group() {
        let running = start().await;
        running.liveness.beat();
        running
            .liveness
            .set_group_stuck(Some(Duration::from_secs(301)));
        let (status, _, body) = request(running.addr, "GET", "/healthz").await;
        assert_eq!(
            (status, body.as_str()),
            (
                503,
                "the consumer has been out of its group for 301 s while the brokers answer\n"
            )
        );
        running.liveness.group_joined();
        assert_eq!(request(running.addr, "GET", "/healthz").await.0, 200);
        stop(running).await;
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        let running = start().await;
        assert_eq!(request(running.addr, "GET", "/").await.0, 404);
        let (status, head, _) = request(running.addr, "POST", "/metrics").await;
        assert_eq!(status, 405);
        assert!(head.contains("allow: get, head"), "{head}");
        let (status, _, body) = request(running.addr, "HEAD", "/healthz").await;
        assert_eq!((status, body.as_str()), (503, ""));
        stop(running).await;
    }

    #[tokio::test]
    async fn shutdown_stops_accepting() {
        let running = start().await;
        let addr = running.addr;
        // A keep-alive connection left open must not hold the shutdown.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let _ = idle.read(&mut buf).await.unwrap();
        stop(running).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
