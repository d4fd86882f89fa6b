//! The Schema Registry client against the local stack's stand-in registry
//! (`deploy/local/schema_registry.py`), started by the test on a free loopback port.

use eda_actors::kafka::schema_registry::{SchemaRegistryClient, SchemaRegistryError};
use eda_config::{SchemaRegistryConfig, Secret};
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The stand-in registry process; killed by PID when dropped, even if the test panics.
struct Registry {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Registry {
    fn start() -> Self {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/local/schema_registry.py"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::env::temp_dir().join(format!("eda-schema-registry-{port}.log"));
        let out = fs::File::create(&log).expect("log file");
        let child = Command::new("python3")
            .arg(script)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(Stdio::from(out))
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 starts the stand-in registry");
        let registry = Self { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }

    fn config(&self) -> SchemaRegistryConfig {
        SchemaRegistryConfig {
            url: Some(format!("http://127.0.0.1:{}/", self.port)),
            username: Some("eda".into()),
            password: Some(Secret::new("local")),
            cache_capacity: 2,
            timeout_ms: 2_000,
        }
    }

    /// Requests the registry logged for paths starting with `prefix` (one line per request).
    fn requests(&self, prefix: &str) -> usize {
        let needle = format!("\"GET {prefix}");
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(&needle))
            .count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.log);
    }
}

const ORDERS: &str = r#"{"type":"record","name":"Orders","fields":[{"name":"id","type":"long"}]}"#;
const USERS: &str = r#"{"type":"record","name":"Users","fields":[{"name":"id","type":"string"}]}"#;

#[tokio::test]
async fn registers_fetches_and_caches_schemas_by_id() {
    let registry = Registry::start();
    let client = Arc::new(SchemaRegistryClient::new(&registry.config()).unwrap());

    let orders = client.register("orders-value", ORDERS).await.unwrap();
    assert_eq!(
        client.register("orders-value", ORDERS).await.unwrap(),
        orders
    );
    let users = client.register("users-value", USERS).await.unwrap();
    assert_ne!(orders, users);

    // Concurrent first fetches of one id share one request.
    let (a, b) = tokio::join!(client.schema(orders), client.schema(orders));
    assert_eq!(&*a.unwrap(), ORDERS);
    assert_eq!(&*b.unwrap(), ORDERS);
    assert_eq!(&*client.schema(orders).await.unwrap(), ORDERS);
    let path = format!("/schemas/ids/{orders} ");
    assert_eq!(
        registry.requests(&path),
        1,
        "later fetches come from the cache"
    );
    assert_eq!(client.cached(), 1);

    assert_eq!(&*client.schema(users).await.unwrap(), USERS);
    assert_eq!(client.cached(), 2);
}

#[tokio::test]
async fn an_unknown_id_is_a_typed_permanent_error_and_is_not_cached() {
    let registry = Registry::start();
    let client = SchemaRegistryClient::new(&registry.config()).unwrap();

    let err = client.schema(4_242).await.unwrap_err();
    assert!(
        matches!(err, SchemaRegistryError::UnknownSchema { id: 4_242 }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(client.cached(), 0);
    client.schema(4_242).await.unwrap_err();
    assert_eq!(
        registry.requests("/schemas/ids/4242 "),
        2,
        "errors are not cached"
    );
}

#[tokio::test]
async fn the_cache_is_bounded_by_capacity() {
    let registry = Registry::start();
    let client = SchemaRegistryClient::new(&registry.config()).unwrap();
    let third = r#"{"type":"record","name":"Third","fields":[]}"#;
    let mut ids = Vec::new();
    for (subject, schema) in [("a", ORDERS), ("b", USERS), ("c", third)] {
        let id = client.register(subject, schema).await.unwrap();
        client.schema(id).await.unwrap();
        ids.push(id);
    }
    assert_eq!(client.cached(), 2, "capacity is 2");
    // The oldest entry was evicted: fetching it again asks the registry.
    client.schema(ids[0]).await.unwrap();
    assert_eq!(registry.requests(&format!("/schemas/ids/{} ", ids[0])), 2);
}

#[tokio::test]
async fn an_unreachable_registry_is_retryable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let config = SchemaRegistryConfig {
        url: Some(format!("http://127.0.0.1:{port}")),
        timeout_ms: 500,
        ..SchemaRegistryConfig::default()
    };
    let client = SchemaRegistryClient::new(&config).unwrap();
    let err = client.schema(1).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}
