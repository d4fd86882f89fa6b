//! A TCP proxy that injects region outages: it listens on `127.0.0.1:0` in front of a real
//! server (the AWS stand-in, DynamoDB Local) and, on demand, passes traffic through, refuses connections,
//! black-holes them (accepts and never answers), delays every answer, stalls only the
//! requests that name one thing (one item's key) while the rest pass, or answers every request
//! itself with a canned HTTP error (a throttle, a 5xx from a load balancer: the answers the
//! local servers cannot be made to give). Point one region's
//! endpoints at it to take that region down while the other keeps working.
//!
//! A fault applies to open connections too (the SDK pools them): refusing resets them,
//! black-holing stops forwarding on them. The proxy and its connections stop when it is dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Pass everything through.
    None,
    /// Reset every connection (new and open): the region is down.
    Refuse,
    /// Accept, then never answer: the region hangs.
    BlackHole,
    /// Pass through, holding each answer back this long: the region is slow.
    Delay(Duration),
    /// Pass through, except that a connection stops forwarding (as under [`Fault::BlackHole`])
    /// once a request on it contains these bytes: one item hangs while every other is served.
    Stall(&'static [u8]),
    /// Answer every HTTP request with these bytes (a whole HTTP/1.1 response, keep-alive)
    /// instead of passing it on: a hand-written error answer, for the throttles and 5xx the
    /// real servers cannot be made to give.
    Answer(&'static str),
}

/// A running proxy.
pub struct FaultProxy {
    /// Where clients connect.
    addr: SocketAddr,
    /// The current fault, watched by every connection.
    fault: watch::Sender<Fault>,
    /// The accept loop; it owns the connections, so aborting it ends them all.
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream`, passing traffic through.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let (fault, watcher) = watch::channel(Fault::None);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        connections.spawn(serve(client, upstream, watcher.clone()));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Self { addr, fault, task }
    }

    /// Where clients connect (a Kafka broker's advertised address, when the proxy fronts one).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, for an endpoint override.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the fault, for new and open connections alike.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client connection, for as long as the fault allows.
async fn serve(client: TcpStream, upstream: SocketAddr, mut fault: watch::Receiver<Fault>) {
    let current = *fault.borrow_and_update();
    match current {
        Fault::Refuse => return reset(client),
        Fault::BlackHole => return hold(client, fault).await,
        Fault::Answer(response) => return answer(client, response, fault).await,
        Fault::None | Fault::Delay(_) | Fault::Stall(_) => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Set when a request passed since the last answer, so a delay applies once per answer.
    let asked = Arc::new(AtomicBool::new(false));
    // Set when a request matched a `Stall`: the connection then hangs like a black hole.
    let stalled = Arc::new(tokio::sync::Notify::new());
    let up = {
        let asked = asked.clone();
        let stalled = stalled.clone();
        let fault = fault.clone();
        let (client_read, server_write) = (&mut client_read, &mut server_write);
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            // The end of the previous read, so a pattern split across two reads is seen.
            let mut tail: Vec<u8> = Vec::new();
            loop {
                let n = client_read.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                let current = *fault.borrow();
                if let Fault::Stall(pattern) = current {
                    tail.extend_from_slice(&buf[..n]);
                    if tail.windows(pattern.len()).any(|w| w == pattern) {
                        stalled.notify_one();
                        return std::future::pending().await;
                    }
                    let keep = tail.len().saturating_sub(pattern.len());
                    tail.drain(..keep);
                }
                asked.store(true, Ordering::SeqCst);
                if server_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    };
    let down = {
        let fault = fault.clone();
        let (server_read, client_write) = (&mut server_read, &mut client_write);
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = server_read.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                let current = *fault.borrow();
                if let Fault::Delay(delay) = current {
                    if asked.swap(false, Ordering::SeqCst) {
                        tokio::time::sleep(delay).await;
                    }
                }
                if client_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    };
    let cut = async {
        loop {
            if fault.changed().await.is_err() {
                return Fault::Refuse;
            }
            let now = *fault.borrow_and_update();
            if matches!(now, Fault::Refuse | Fault::BlackHole) {
                return now;
            }
            if matches!(now, Fault::Answer(_)) {
                // Open connections end; the client's next one is answered by the proxy.
                return Fault::Refuse;
            }
        }
    };
    let now = tokio::select! {
        _ = async { tokio::join!(up, down) } => return,
        now = cut => now,
        _ = stalled.notified() => *fault.borrow_and_update(),
    };
    if matches!(now, Fault::BlackHole | Fault::Stall(_)) {
        // Stop forwarding but keep the sockets open: a pooled connection hangs, as it would
        // behind a dead network path, until the fault ends.
        while fault.changed().await.is_ok() {
            if *fault.borrow_and_update() != now {
                break;
            }
        }
    }
    if let Ok(client) = client_read.reunite(client_write) {
        reset(client);
    }
    drop((server_read, server_write));
}

/// Resets the connection (RST, not FIN): what a refused or crashed endpoint looks like.
fn reset(client: TcpStream) {
    // Deprecated because a non-zero linger blocks the thread on drop; zero never does.
    #[allow(deprecated)]
    let _ = client.set_linger(Some(Duration::ZERO));
    drop(client);
}

/// Reads each HTTP/1.1 request (headers, then `Content-Length` bytes of body) and writes
/// `response` for it, until the fault changes; then resets the connection.
async fn answer(mut client: TcpStream, response: &'static str, mut fault: watch::Receiver<Fault>) {
    let mut request: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = client.read(&mut buf) => read.unwrap_or(0),
            _ = fault.changed() => 0,
        };
        if n == 0 || *fault.borrow() != Fault::Answer(response) {
            break;
        }
        request.extend_from_slice(&buf[..n]);
        // Answer every complete request in what was read.
        while let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
            let body = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if request.len() < end + 4 + body {
                break;
            }
            request.drain(..end + 4 + body);
            if client.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    }
    reset(client);
}

/// Keeps the connection open without reading or answering until the black hole ends.
async fn hold(client: TcpStream, mut fault: watch::Receiver<Fault>) {
    while fault.changed().await.is_ok() {
        if *fault.borrow_and_update() != Fault::BlackHole {
            break;
        }
    }
    reset(client);
}
