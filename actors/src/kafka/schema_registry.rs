//! A client for the Confluent Schema Registry REST API: fetch a schema by id (the partition
//! consumers, for Confluent-framed Avro) and register one under a subject (the load generator).
//!
//! Schema ids are immutable in a registry, so fetched schemas are cached by id with no expiry,
//! bounded by `schema_registry.cache_capacity` (the oldest entry is evicted first). Concurrent
//! fetches of one id share a single request: the cache holds one cell per id and the first
//! caller fills it while the others wait on it (a failed fetch leaves the cell empty for the next
//! caller to retry).
//!
//! Transport: reqwest without default features, with `json` and `rustls` (rustls on aws-lc-rs,
//! the crypto provider the AWS SDK and jsonwebtoken already build, plus the platform verifier
//! for the system's roots); HTTP/1 only. Basic auth comes from `schema_registry.username` and
//! `password`, and each request is bounded by `schema_registry.timeout_ms`.

use eda_config::{SchemaRegistryConfig, Secret};
use eda_core::failure::ErrorClass;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Response, StatusCode, Url};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::OnceCell;

/// The media type of every request and answer of the Schema Registry API.
pub const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The registry's error code for "schema id not found".
const UNKNOWN_SCHEMA_CODE: i64 = 40403;

/// The registry's error code for "subject not found".
const UNKNOWN_SUBJECT_CODE: i64 = 40401;

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum SchemaRegistryError {
    /// `schema_registry.url` is unset; Avro topics cannot be decoded.
    #[error("schema_registry.url is not set")]
    NotConfigured,
    /// `schema_registry.url` is not an http(s) base URL.
    #[error("schema_registry.url {0:?} is not a usable base URL")]
    InvalidUrl(String),
    /// The HTTP client could not be built (TLS setup).
    #[error("could not build the Schema Registry HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The id is not registered (error code 40403): the message is poison, not the registry.
    #[error("schema id {id} is not registered")]
    UnknownSchema {
        /// The id from the message.
        id: u32,
    },
    /// The subject does not exist (error code 40401).
    #[error("subject {subject} is not registered")]
    UnknownSubject {
        /// The subject asked for.
        subject: String,
    },
    /// The registry answered with an error status.
    #[error("Schema Registry answered {status} (error code {code:?}): {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The registry's `error_code`, if the body had one.
        code: Option<i64>,
        /// The registry's `message`, or the raw body.
        message: String,
    },
    /// The request did not finish within `schema_registry.timeout_ms`.
    #[error("Schema Registry request timed out after {0:?}")]
    Timeout(Duration),
    /// The registry could not be reached or the connection broke.
    #[error("could not reach the Schema Registry: {0}")]
    Transport(#[source] reqwest::Error),
    /// The answer was not the JSON the API documents.
    #[error("unreadable answer from the Schema Registry: {0}")]
    Decode(String),
}

impl SchemaRegistryError {
    /// Whether the same request may succeed later: connection failures, timeouts, 5xx and 429
    /// are the registry's trouble; an unknown id or a refused schema will not change.
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// The failure in the one error vocabulary: the registry's own trouble as `timeout`,
    /// `connect`, `server` or `throttled` (retryable: the partition waits for it), anything
    /// about the message or the configuration as `schema` (the message is dead-lettered).
    pub fn class(&self) -> ErrorClass {
        match self {
            SchemaRegistryError::Timeout(_) => ErrorClass::Timeout,
            SchemaRegistryError::Transport(_) => ErrorClass::Connect,
            SchemaRegistryError::Status { status: 429, .. } => ErrorClass::Throttled,
            SchemaRegistryError::Status { status, .. } if *status >= 500 => ErrorClass::Server,
            SchemaRegistryError::Status { .. }
            | SchemaRegistryError::NotConfigured
            | SchemaRegistryError::InvalidUrl(_)
            | SchemaRegistryError::Client(_)
            | SchemaRegistryError::UnknownSchema { .. }
            | SchemaRegistryError::UnknownSubject { .. }
            | SchemaRegistryError::Decode(_) => ErrorClass::Schema,
        }
    }
}

/// `GET /schemas/ids/{id}`.
#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
}

/// `POST /subjects/{subject}/versions` request.
#[derive(Serialize)]
struct RegisterRequest<'a> {
    schema: &'a str,
}

/// `POST /subjects/{subject}/versions` answer.
#[derive(Deserialize)]
struct RegisterBody {
    id: u32,
}

/// The registry's error body.
#[derive(Deserialize)]
struct ErrorBody {
    error_code: Option<i64>,
    message: Option<String>,
}

/// One cached schema: filled once by whichever caller fetches first.
type Cell = Arc<OnceCell<Arc<str>>>;

/// Schemas by id, oldest first for eviction.
#[derive(Debug, Default)]
struct Cache {
    cells: HashMap<u32, Cell>,
    order: VecDeque<u32>,
}

/// An async Schema Registry client, cheap to share behind an `Arc` by every partition consumer.
#[derive(Debug)]
pub struct SchemaRegistryClient {
    /// Connection pool, TLS and timeouts.
    http: reqwest::Client,
    /// The base URL; paths are appended segment by segment, so subjects are escaped.
    base_url: Url,
    /// Basic-auth user and password, if configured.
    auth: Option<(String, Option<Secret>)>,
    /// Per-request timeout (also reported in timeout errors).
    timeout: Duration,
    /// Entries kept at most.
    capacity: usize,
    /// Schemas by id.
    cache: Mutex<Cache>,
}

impl SchemaRegistryClient {
    /// A client for the configured registry. Fails when no URL is configured or TLS cannot be
    /// set up.
    pub fn new(config: &SchemaRegistryConfig) -> Result<Self, SchemaRegistryError> {
        let url = config
            .url
            .as_deref()
            .ok_or(SchemaRegistryError::NotConfigured)?;
        let base_url = Url::parse(url)
            .ok()
            .filter(|u| !u.cannot_be_a_base() && matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| SchemaRegistryError::InvalidUrl(url.to_owned()))?;
        let timeout = config.timeout();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(SchemaRegistryError::Client)?;
        Ok(Self {
            http,
            base_url,
            auth: config
                .username
                .clone()
                .map(|user| (user, config.password.clone())),
            timeout,
            capacity: config.cache_capacity.max(1),
            cache: Mutex::new(Cache::default()),
        })
    }

    /// The schema registered under `id`, from the cache or the registry.
    pub async fn schema(&self, id: u32) -> Result<Arc<str>, SchemaRegistryError> {
        let cell = self.cell(id);
        let result = cell.get_or_try_init(|| self.fetch(id)).await.cloned();
        if result.is_err() {
            // Leave no empty cell behind: a poison id must not take a cache slot.
            let mut cache = self.lock();
            if cache
                .cells
                .get(&id)
                .is_some_and(|c| Arc::ptr_eq(c, &cell) && c.get().is_none())
            {
                cache.cells.remove(&id);
                cache.order.retain(|&cached| cached != id);
            }
        }
        result
    }

    /// Registers `schema` (Avro JSON) under `subject` and returns its id; registering the same
    /// schema again returns the same id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, SchemaRegistryError> {
        let url = self.endpoint(&["subjects", subject, "versions"]);
        let body = serde_json::to_vec(&RegisterRequest { schema })
            .map_err(|e| SchemaRegistryError::Decode(e.to_string()))?;
        let request = self
            .http
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE))
            .body(body);
        let response = self.send(request).await?;
        if !response.status().is_success() {
            return Err(match error_of(response).await {
                SchemaRegistryError::Status {
                    code: Some(UNKNOWN_SUBJECT_CODE),
                    ..
                } => SchemaRegistryError::UnknownSubject {
                    subject: subject.to_owned(),
                },
                other => other,
            });
        }
        let body: RegisterBody = decode(response).await?;
        Ok(body.id)
    }

    /// Schemas currently cached.
    pub fn cached(&self) -> usize {
        self.lock()
            .cells
            .values()
            .filter(|c| c.initialized())
            .count()
    }

    /// The cache cell of `id`, created (evicting the oldest entry if full) if absent.
    fn cell(&self, id: u32) -> Cell {
        let mut cache = self.lock();
        if let Some(cell) = cache.cells.get(&id) {
            return Arc::clone(cell);
        }
        while cache.cells.len() >= self.capacity {
            let Some(oldest) = cache.order.pop_front() else {
                break;
            };
            cache.cells.remove(&oldest);
        }
        let cell = Cell::default();
        cache.cells.insert(id, Arc::clone(&cell));
        cache.order.push_back(id);
        cell
    }

    /// `GET /schemas/ids/{id}`.
    async fn fetch(&self, id: u32) -> Result<Arc<str>, SchemaRegistryError> {
        let url = self.endpoint(&["schemas", "ids", &id.to_string()]);
        let response = self.send(self.http.get(url)).await?;
        if !response.status().is_success() {
            return Err(match error_of(response).await {
                SchemaRegistryError::Status {
                    status: 404,
                    code: Some(UNKNOWN_SCHEMA_CODE) | None,
                    ..
                } => SchemaRegistryError::UnknownSchema { id },
                other => other,
            });
        }
        let body: SchemaBody = decode(response).await?;
        tracing::debug!(schema_id = id, "Fetched a schema from the Schema Registry.");
        Ok(Arc::from(body.schema))
    }

    /// The base URL with `segments` appended, each percent-encoded.
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Adds the common headers and auth, sends, and classifies transport failures.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Response, SchemaRegistryError> {
        let mut request = request.header(ACCEPT, HeaderValue::from_static(MEDIA_TYPE));
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, password.as_ref().map(Secret::expose));
        }
        request.send().await.map_err(|e| self.classify(e))
    }

    fn classify(&self, error: reqwest::Error) -> SchemaRegistryError {
        if error.is_timeout() {
            SchemaRegistryError::Timeout(self.timeout)
        } else if error.is_decode() {
            SchemaRegistryError::Decode(error.to_string())
        } else {
            SchemaRegistryError::Transport(error)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads a JSON answer.
async fn decode<T: for<'de> Deserialize<'de>>(
    response: Response,
) -> Result<T, SchemaRegistryError> {
    let bytes = response.bytes().await.map_err(|e| {
        if e.is_timeout() {
            SchemaRegistryError::Decode(format!("body timed out: {e}"))
        } else {
            SchemaRegistryError::Transport(e)
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| SchemaRegistryError::Decode(e.to_string()))
}

/// Turns an error answer into [`SchemaRegistryError::Status`], keeping the registry's code.
async fn error_of(response: Response) -> SchemaRegistryError {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => (body.error_code, body.message.unwrap_or_default()),
        Err(_) => (None, text.chars().take(200).collect()),
    };
    SchemaRegistryError::Status {
        status: status.as_u16(),
        code,
        message: if message.is_empty() {
            status
                .canonical_reason()
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR.as_str())
                .to_owned()
        } else {
            message
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_errors_are_the_registrys_trouble() {
        let status = |status| SchemaRegistryError::Status {
            status,
            code: None,
            message: String::new(),
        };
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(422).is_retryable());
        assert!(SchemaRegistryError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(!SchemaRegistryError::UnknownSchema { id: 7 }.is_retryable());
        assert!(!SchemaRegistryError::NotConfigured.is_retryable());
    }

    #[test]
    fn paths_are_appended_and_escaped() {
        let config = SchemaRegistryConfig {
            url: Some("https://registry.example.com/base/".into()),
            ..SchemaRegistryConfig::default()
        };
        let client = SchemaRegistryClient::new(&config).unwrap();
        assert_eq!(
            client
                .endpoint(&["subjects", "odd/subject name", "versions"])
                .as_str(),
            "https://registry.example.com/base/subjects/odd%2Fsubject%20name/versions"
        );
        let config = SchemaRegistryConfig {
            url: Some("not a url".into()),
            ..SchemaRegistryConfig::default()
        };
        assert!(matches!(
            SchemaRegistryClient::new(&config),
            Err(SchemaRegistryError::InvalidUrl(_))
        ));
    }

    #[test]
    fn a_url_is_required() {
        let err = SchemaRegistryClient::new(&SchemaRegistryConfig::default()).unwrap_err();
        assert!(matches!(err, SchemaRegistryError::NotConfigured));
    }
}
