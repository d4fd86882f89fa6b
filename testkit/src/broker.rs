//! A private Kafka-API broker for one test: the same `tansu` binary the local stack runs, on a
//! port of its own with memory storage, so a test can freeze it (SIGSTOP), thaw it or put a
//! fault proxy in front of it without touching the shared broker on :9092 that every other test
//! uses. It is stopped by its PID when dropped.
//!
//! Clients connect to the address the broker *advertises* in its metadata, not to the bootstrap
//! address they were given; a test that puts a proxy in front of the broker starts it with
//! [`PrivateBroker::start_behind`] so that every connection, not only the first, goes through
//! the proxy.
//!
//! `TEST_TANSU_BIN` names another tansu binary to run; `TEST_TANSU_LOG` sets the broker's
//! log filter (tansu's `RUST_LOG`, `warn` otherwise) and keeps its log file after the test.

use crate::local::{free_port, unique};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh broker gets to open its port.
const START_WITHIN: Duration = Duration::from_secs(30);

/// A `tansu` broker process of this test only.
pub struct PrivateBroker {
    /// The process; killed on drop.
    child: Child,
    /// Where it listens.
    listen: SocketAddr,
    /// What it tells clients to connect to (its own address, or a proxy's).
    advertised: SocketAddr,
    /// Its stdout and stderr, for a failing test's message.
    log: PathBuf,
}

impl PrivateBroker {
    /// Starts a broker on a free loopback port, advertising that port; returns once it accepts
    /// connections.
    pub fn start() -> Self {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Self::spawn(addr, addr)
    }

    /// Starts a broker on `listen` that advertises `advertised` (a proxy in front of it), so
    /// that clients reach it only through the proxy. Returns once `listen` accepts connections.
    pub fn start_behind(listen: SocketAddr, advertised: SocketAddr) -> Self {
        Self::spawn(listen, advertised)
    }

    fn spawn(listen: SocketAddr, advertised: SocketAddr) -> Self {
        let log = std::env::temp_dir().join(format!("{}.log", unique("tansu")));
        let out = std::fs::File::create(&log).expect("broker log file");
        let err = out.try_clone().expect("broker log file");
        let child = Command::new(tansu_binary())
            .arg("broker")
            .args(["--storage-engine", "memory://tansu/"])
            .arg("--listener-url")
            .arg(format!("tcp://{listen}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://{advertised}"))
            .args(["--kafka-cluster-id", "eda-private"])
            // The broker's own log level (tansu reads RUST_LOG); not the test's filter.
            .env(
                "RUST_LOG",
                std::env::var("TEST_TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", tansu_binary().display()));
        let mut broker = Self {
            child,
            listen,
            advertised,
            log,
        };
        let deadline = Instant::now() + START_WITHIN;
        while TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = broker.child.try_wait() {
                panic!(
                    "the private broker exited during start-up ({status}): {}",
                    broker.log_tail(20)
                );
            }
            assert!(
                Instant::now() < deadline,
                "the private broker did not open {listen} within {START_WITHIN:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        broker
    }

    /// The bootstrap address for clients (`bootstrap.servers`): the advertised one.
    pub fn brokers(&self) -> String {
        self.advertised.to_string()
    }

    /// Where the broker itself listens (a proxy's upstream).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freezes the broker (SIGSTOP): its port still accepts connections, which the kernel
    /// completes, but nothing answers, as with a broker stuck in a long GC pause or a VM paused.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Thaws a frozen broker (SIGCONT): it answers again, with the state it had.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// The broker's output (kept after the test when `TEST_TANSU_LOG` sets its level).
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// The last `lines` lines of the broker's output.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {}", self.child.id());
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        // SIGKILL ends a frozen (stopped) process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("TEST_TANSU_LOG").is_none() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The `tansu` binary `deploy/local/install.sh` installs (what the local stack runs), or the one
/// `TEST_TANSU_BIN` names (another build, to try a test against it).
fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TEST_TANSU_BIN") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME is set");
    cache.join("eda/tansu/bin/tansu")
}
