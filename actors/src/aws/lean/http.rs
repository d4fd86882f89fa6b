//! The lean client's HTTP/1.1 transport: a keep-alive connection pool of eda's own in which the
//! calling task does the I/O itself.
//!
//! An exchange checks a connection out of the endpoint's pool (or opens one: TCP, then TLS
//! through rustls for `https`), writes the request head and body with one vectored write, reads
//! the answer into the connection's own buffer and parses it in place (`httparse`: the status
//! line, `Content-Length` or `chunked` bodies, `Connection: close` and the error-type header eda
//! reads), and returns the connection to the pool only when the answer was read whole, nothing
//! followed it, and the server did not ask to close. Any other ending — an error, a cut-off
//! answer, the caller's timeout dropping the future mid-exchange — drops the connection, so a
//! pooled connection is always one that sits between two exchanges.
//!
//! Why not hyper (`docs/perf/profile.md`, "The HTTP exchange"): hyper-util's legacy pooled
//! client runs each connection as its own task, so every request is handed over to that task and
//! every answer handed back (two cross-task wake-ups, often across the runtime's two workers),
//! behind a pool checkout keyed by `Uri` and a request of `http` types (header map, `Uri`
//! clone, boxed body). `hyper::client::conn::http1` without the legacy pool keeps the connection
//! task and the hand-overs. Here the task that asks does the write and the read, and the request
//! head is written straight into the connection's buffer by the signer.
//!
//! A pooled connection found closed or readable when it is checked out (the server's FIN after
//! its idle timeout, AWS's is about a minute; a proxy's at any time) is dropped and the next one
//! tried; idle connections older than [`POOL_IDLE`] are dropped, and at most [`MAX_IDLE`] are
//! kept.

use crate::ports::SinkError;
use bytes::Bytes;
use eda_core::failure::ErrorClass;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// How long an idle pooled connection is kept (AWS closes idle connections after about a
/// minute; reusing one it already closed costs a failed attempt).
pub(crate) const POOL_IDLE: Duration = Duration::from_secs(50);

/// The most idle connections one endpoint's pool keeps; a connection coming back to a full
/// pool is closed.
pub(crate) const MAX_IDLE: usize = 128;

/// The longest answer head (status line and headers) read before the answer is refused.
const MAX_HEAD: usize = 64 * 1024;

/// The longest answer body read: DynamoDB's largest answer to a `PutItem` is the stored item
/// (at most 400 KB) and EventBridge's to a `PutEvents` a line per entry, so a length beyond this
/// is a broken proxy or garbage, refused before any memory is reserved for it.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The most headers an answer may have.
const MAX_HEADERS: usize = 64;

/// A connection's read buffer grows as needed; a larger one is not kept in the pool.
const KEEP_BUFFER: usize = 64 * 1024;

/// What a read buffer grows by at least.
const READ_CHUNK: usize = 8 * 1024;

/// Where one pool connects to: the endpoint's host, port and scheme.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The host name or address, as in the endpoint.
    pub host: String,
    /// The port (the scheme's default when the endpoint names none).
    pub port: u16,
    /// `https`: TLS through rustls, with `host` as the server name.
    pub tls: bool,
}

/// How connections are opened.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The longest resolving and connecting (TLS handshake included) may take.
    pub connect_timeout: Duration,
}

/// The keep-alive connections of one endpoint. Cloning shares them.
#[derive(Clone)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    target: Target,
    settings: Settings,
    /// The TLS connector and the server name, for `https`.
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// Idle connections, oldest first (checked out from the end: the most recently used).
    idle: Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("target", &self.shared.target)
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

/// A pooled connection and when it went idle.
struct Idle {
    conn: Conn,
    since: Instant,
}

/// The byte stream of a connection.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// One HTTP/1.1 connection and its buffers.
pub(crate) struct Conn {
    stream: Stream,
    /// The request head of the exchange under way (written by the caller).
    pub(crate) head: Vec<u8>,
    /// What was read from the server and not consumed yet.
    read: Vec<u8>,
}

/// An answer, read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The `X-Amzn-ErrorType` header, when the server sent one.
    pub error_type: Option<String>,
    /// The body (chunked bodies decoded).
    pub body: Bytes,
}

/// How an exchange failed, before the caller names the service and operation.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Retryable classes only: `Connect` or `Timeout`.
    pub class: ErrorClass,
    /// What happened, for the log.
    pub message: String,
}

impl Failure {
    fn connect(message: String) -> Self {
        Self {
            class: ErrorClass::Connect,
            message,
        }
    }

    /// As the ports report it.
    pub(crate) fn into_sink_error(self, service: &'static str) -> SinkError {
        SinkError {
            service,
            operation: "",
            class: self.class,
            message: self.message,
        }
    }
}

impl Pool {
    /// The pool of `target`; connections are opened on demand. Inside a tokio runtime, a task
    /// also closes connections left idle longer than [`POOL_IDLE`] while no call comes.
    pub(crate) fn new(
        target: Target,
        settings: Settings,
        tls_config: &Arc<rustls::ClientConfig>,
    ) -> Result<Self, String> {
        let tls = if target.tls {
            let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|err| format!("{:?} is not a TLS server name: {err}", target.host))?;
            Some((tokio_rustls::TlsConnector::from(tls_config.clone()), name))
        } else {
            None
        };
        let pool = Self {
            shared: Arc::new(Shared {
                target,
                settings,
                tls,
                idle: Mutex::new(Vec::new()),
            }),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(reap(Arc::downgrade(&pool.shared)));
        }
        Ok(pool)
    }

    /// A connection to the endpoint: the most recently used idle one that is still open, else a
    /// new one. Its `head` is empty.
    pub(crate) async fn checkout(&self) -> Result<Conn, Failure> {
        loop {
            let idle = {
                let mut idle = self.shared.lock();
                expire(&mut idle, Instant::now());
                idle.pop()
            };
            let Some(Idle { mut conn, .. }) = idle else {
                break;
            };
            if conn.is_open() {
                conn.head.clear();
                return Ok(conn);
            }
        }
        self.connect().await
    }

    /// Puts a connection whose exchange ended cleanly back into the pool.
    fn checkin(&self, mut conn: Conn) {
        if conn.read.capacity() > KEEP_BUFFER {
            conn.read = Vec::new();
        }
        if conn.head.capacity() > KEEP_BUFFER {
            conn.head = Vec::new();
        }
        let now = Instant::now();
        let mut idle = self.shared.lock();
        expire(&mut idle, now);
        if idle.len() < MAX_IDLE {
            idle.push(Idle { conn, since: now });
        }
    }

    /// Opens a connection within the connect timeout.
    async fn connect(&self) -> Result<Conn, Failure> {
        let shared = &*self.shared;
        let target = &shared.target;
        let timeout = shared.settings.connect_timeout;
        let open = async {
            let tcp = connect_tcp(&target.host, target.port).await?;
            let stream = match &shared.tls {
                None => Stream::Plain(tcp),
                Some((connector, name)) => {
                    let tls = connector.connect(name.clone(), tcp).await.map_err(|err| {
                        Failure::connect(format!(
                            "TLS handshake with {}:{}: {err}",
                            target.host, target.port
                        ))
                    })?;
                    Stream::Tls(Box::new(tls))
                }
            };
            Ok(Conn {
                stream,
                head: Vec::with_capacity(1024),
                read: Vec::new(),
            })
        };
        match tokio::time::timeout(timeout, open).await {
            Ok(conn) => conn,
            Err(_) => Err(Failure {
                class: ErrorClass::Timeout,
                message: format!(
                    "connecting to {}:{} took longer than {} ms (aws.connect_timeout_ms)",
                    target.host,
                    target.port,
                    timeout.as_millis()
                ),
            }),
        }
    }

    /// Sends `conn.head` and `body` on `conn` and reads the answer; the connection goes back to
    /// the pool when the answer was read whole and the server keeps the connection open.
    pub(crate) async fn exchange(&self, mut conn: Conn, body: &[u8]) -> Result<Answer, Failure> {
        let target = &self.shared.target;
        let mut slices = [IoSlice::new(&conn.head), IoSlice::new(body)];
        write_all_vectored(&mut conn.stream, &mut slices)
            .await
            .map_err(|err| {
                Failure::connect(format!(
                    "sending the request to {}:{}: {err}",
                    target.host, target.port
                ))
            })?;
        let (answer, reusable) = conn.read_answer().await.map_err(|message| {
            Failure::connect(format!(
                "reading the answer of {}:{}: {message}",
                target.host, target.port
            ))
        })?;
        if reusable {
            self.checkin(conn);
        }
        Ok(answer)
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Drops the idle connections older than [`POOL_IDLE`] (they are at the front).
fn expire(idle: &mut Vec<Idle>, now: Instant) {
    let stale = idle
        .iter()
        .take_while(|conn| now.duration_since(conn.since) >= POOL_IDLE)
        .count();
    if stale > 0 {
        idle.drain(..stale);
    }
}

/// Closes a pool's stale idle connections every half [`POOL_IDLE`] until the pool is gone.
async fn reap(pool: Weak<Shared>) {
    loop {
        tokio::time::sleep(POOL_IDLE / 2).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let stale: Vec<Idle> = {
            let mut idle = pool.lock();
            let now = Instant::now();
            let count = idle
                .iter()
                .take_while(|conn| now.duration_since(conn.since) >= POOL_IDLE)
                .count();
            idle.drain(..count).collect()
        };
        // Closed outside the lock.
        drop(stale);
    }
}

/// Resolves `host` and connects to the first address that accepts, with `TCP_NODELAY` and TCP
/// keep-alive probes after 30 s of silence.
async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, Failure> {
    let addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|err| Failure::connect(format!("resolving {host}: {err}")))?;
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(30));
                let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
                return Ok(stream);
            }
            Err(err) => last = Some(format!("connecting to {address}: {err}")),
        }
    }
    Err(Failure::connect(
        last.unwrap_or_else(|| format!("resolving {host}: no address")),
    ))
}

/// Writes every slice whole (a short write continues where it stopped).
async fn write_all_vectored(
    stream: &mut Stream,
    mut slices: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let written = stream.write_vectored(slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    stream.flush().await
}

/// What the head of an answer says about its body.
struct Head {
    status: u16,
    /// Length of the head, in bytes of the read buffer.
    len: usize,
    error_type: Option<String>,
    framing: Framing,
    /// The server said `Connection: close` (or spoke HTTP/1.0 without keep-alive).
    close: bool,
}

/// How the body of an answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Exactly this many bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// At the end of the connection (neither header; the connection cannot be reused).
    Close,
}

impl Conn {
    /// Whether a pooled connection is still usable: not closed by the server, nothing unread.
    /// One read attempt that does not wait: "would block" is the only good answer.
    fn is_open(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        matches!(
            Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf),
            Poll::Pending
        )
    }

    /// Reads more of the answer into the buffer; `Ok(0)` is the end of the connection.
    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.read.capacity() - self.read.len() < READ_CHUNK / 2 {
            self.read.reserve(READ_CHUNK);
        }
        self.stream.read_buf(&mut self.read).await
    }

    /// Reads one answer; the flag says whether the connection may carry another exchange.
    async fn read_answer(&mut self) -> Result<(Answer, bool), String> {
        self.read.clear();
        let head = loop {
            if let Some(head) = parse_head(&self.read)? {
                break head;
            }
            if self.read.len() > MAX_HEAD {
                return Err(format!("an answer head longer than {MAX_HEAD} bytes"));
            }
            if self.fill().await.map_err(|err| err.to_string())? == 0 {
                return Err(if self.read.is_empty() {
                    "the server closed the connection without answering".to_string()
                } else {
                    format!(
                        "the connection closed after {} bytes of the answer's head",
                        self.read.len()
                    )
                });
            }
        };
        let no_body = head.status == 204 || head.status == 304 || head.status < 200;
        if head.status < 200 {
            return Err(format!(
                "an unexpected interim answer (HTTP {})",
                head.status
            ));
        }
        let (body, end) = match head.framing {
            _ if no_body => (Bytes::new(), head.len),
            Framing::Length(length) => {
                if length > MAX_BODY {
                    return Err(format!(
                        "an answer body of {length} bytes, longer than {MAX_BODY}"
                    ));
                }
                let end = head.len + length;
                while self.read.len() < end {
                    self.read.reserve(end - self.read.len());
                    if self.fill().await.map_err(|err| err.to_string())? == 0 {
                        return Err(format!(
                            "the connection closed after {} of the body's {length} bytes",
                            self.read.len() - head.len
                        ));
                    }
                }
                (Bytes::copy_from_slice(&self.read[head.len..end]), end)
            }
            Framing::Chunked => self.read_chunked(head.len).await?,
            Framing::Close => {
                while self.fill().await.map_err(|err| err.to_string())? != 0 {
                    if self.read.len() - head.len > MAX_BODY {
                        return Err(format!("an answer body longer than {MAX_BODY} bytes"));
                    }
                }
                let end = self.read.len();
                (Bytes::copy_from_slice(&self.read[head.len..]), end)
            }
        };
        // Bytes after the answer mean the server sent something nobody asked for.
        let reusable = !head.close && head.framing != Framing::Close && self.read.len() == end;
        self.read.clear();
        Ok((
            Answer {
                status: head.status,
                error_type: head.error_type,
                body,
            },
            reusable,
        ))
    }

    /// Reads a chunked body that starts at `start` in the buffer; returns it decoded and where
    /// the answer ends (after the trailer).
    async fn read_chunked(&mut self, start: usize) -> Result<(Bytes, usize), String> {
        let mut body = Vec::new();
        let mut at = start;
        loop {
            // The size line.
            let size = loop {
                match httparse::parse_chunk_size(&self.read[at..]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        at += used;
                        break usize::try_from(size)
                            .map_err(|_| format!("a chunk of {size} bytes"))?;
                    }
                    Ok(httparse::Status::Partial) => self.more(at, "a chunk size").await?,
                    Err(_) => return Err("a malformed chunk size".to_string()),
                }
            };
            if size == 0 {
                break;
            }
            if body.len().saturating_add(size) > MAX_BODY {
                return Err(format!(
                    "a chunked answer body longer than {MAX_BODY} bytes (a chunk of {size})"
                ));
            }
            // The data and its CRLF.
            while self.read.len() < at + size + 2 {
                self.more(at, "a chunk").await?;
            }
            if &self.read[at + size..at + size + 2] != b"\r\n" {
                return Err("a chunk not followed by CRLF".to_string());
            }
            body.extend_from_slice(&self.read[at..at + size]);
            at += size + 2;
        }
        // The trailer: header lines up to an empty line.
        loop {
            match memchr::memmem::find(&self.read[at..], b"\r\n") {
                Some(0) => return Ok((Bytes::from(body), at + 2)),
                Some(line) => at += line + 2,
                None => self.more(at, "the trailer").await?,
            }
        }
    }

    /// Reads more while a chunked body is incomplete at `at`.
    async fn more(&mut self, at: usize, what: &str) -> Result<(), String> {
        if self.read.len() - at > MAX_HEAD && what != "a chunk" {
            return Err(format!("{what} longer than {MAX_HEAD} bytes"));
        }
        match self.fill().await.map_err(|err| err.to_string())? {
            0 => Err(format!("the connection closed in {what} of a chunked body")),
            _ => Ok(()),
        }
    }
}

/// The head of an answer, if `buf` holds all of it.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(format!("a malformed answer head: {err}")),
    };
    let status = response.code.unwrap_or(0);
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut close = response.version == Some(0);
    let mut error_type = None;
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or("a malformed Content-Length")?;
            if length.is_some_and(|known| known != value) {
                return Err("two different Content-Lengths".to_string());
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let value = String::from_utf8_lossy(header.value);
            let last = value.rsplit(',').next().unwrap_or("").trim();
            if !last.eq_ignore_ascii_case("chunked") {
                return Err(format!("an unsupported Transfer-Encoding: {value}"));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in String::from_utf8_lossy(header.value).split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && response.version == Some(0) {
                    close = false;
                }
            }
        } else if name.eq_ignore_ascii_case("x-amzn-errortype") {
            error_type = Some(String::from_utf8_lossy(header.value).into_owned());
        }
    }
    let framing = if chunked {
        // Transfer-Encoding wins over Content-Length (RFC 9112 6.3).
        Framing::Chunked
    } else if let Some(length) = length {
        Framing::Length(length)
    } else {
        Framing::Close
    };
    Ok(Some(Head {
        status,
        len,
        error_type,
        framing,
        close,
    }))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A key and self-signed certificate for `localhost`, made by the `openssl` command.
    fn localhost_certificate(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
        let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
        let status = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl made the certificate");
        (
            std::fs::read(key).expect("key"),
            std::fs::read(cert).expect("certificate"),
        )
    }

    /// Over TLS (a local rustls server with a certificate the client trusts): the answers come
    /// back, the connection is kept for the next call, and a server's close after an answer
    /// (`close_notify`, FIN) is seen at checkout and the next call gets a new connection.
    #[tokio::test]
    async fn https_exchanges_reuse_their_connection_and_see_a_close() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let dir = std::env::temp_dir().join(format!("eda-lean-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (key, cert) = localhost_certificate(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        let cert = CertificateDer::from_pem_slice(&cert).expect("certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(&key).expect("key PEM");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .expect("server config");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("trusted");
        let client = Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let port = listener.local_addr().expect("address").port();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let accepted = Arc::new(AtomicUsize::new(0));
        // Answers every request; after the third answer on a connection, closes it.
        let server = {
            let accepted = accepted.clone();
            tokio::spawn(async move {
                loop {
                    let (tcp, _) = listener.accept().await.expect("accepts");
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let mut tls = acceptor.accept(tcp).await.expect("TLS handshake");
                    tokio::spawn(async move {
                        let mut request = Vec::new();
                        let mut buf = [0u8; 4096];
                        let mut answered = 0;
                        while let Ok(n @ 1..) = tls.read(&mut buf).await {
                            request.extend_from_slice(&buf[..n]);
                            let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n")
                            else {
                                continue;
                            };
                            // The test's bodies are 2 bytes.
                            if request.len() < end + 6 {
                                continue;
                            }
                            request.drain(..end + 6);
                            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
                            tls.write_all(answer).await.expect("answers");
                            answered += 1;
                            if answered == 3 {
                                let _ = tls.shutdown().await;
                                return;
                            }
                        }
                    });
                }
            })
        };

        let pool = Pool::new(
            Target {
                host: "localhost".into(),
                port,
                tls: true,
            },
            Settings {
                connect_timeout: Duration::from_secs(5),
            },
            &client,
        )
        .expect("pool");
        for call in 1..=5 {
            let mut conn = pool.checkout().await.expect("a connection");
            conn.head.extend_from_slice(
                format!("POST / HTTP/1.1\r\nhost: localhost:{port}\r\ncontent-length: 2\r\n\r\n")
                    .as_bytes(),
            );
            let answer = pool.exchange(conn, b"{}").await.expect("an answer");
            assert_eq!((answer.status, &answer.body[..]), (200, &b"{\"a\":1}"[..]));
            if call == 3 {
                // Time for the close to arrive.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "three calls on the first connection, two on the second"
        );
        server.abort();
    }

    #[test]
    fn an_answer_head_names_its_framing() {
        let head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            .expect("parses")
            .expect("complete");
        assert_eq!(
            (head.status, head.framing, head.close),
            (200, Framing::Length(2), false)
        );
        assert_eq!(head.len, 38);
        let head = parse_head(
            b"HTTP/1.1 400 Bad\r\nx-amzn-ErrorType: ThrottlingException\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .expect("parses")
        .expect("complete");
        assert_eq!((head.framing, head.close), (Framing::Chunked, true));
        assert_eq!(head.error_type.as_deref(), Some("ThrottlingException"));
        let head = parse_head(b"HTTP/1.0 503 Unavailable\r\n\r\n")
            .expect("parses")
            .expect("complete");
        assert_eq!((head.framing, head.close), (Framing::Close, true));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le")
            .expect("parses")
            .is_none());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").is_err());
    }
}
