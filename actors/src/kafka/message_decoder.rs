//! One partition's decoder: the configured wire format, with the state decoding needs across
//! messages (Qlik table structures, Avro schemas compiled once per id).
//!
//! Qlik table structures come from the process's [`TableStructures`]: a metadata (`MD`) message
//! is recorded there (durably, before the decoder answers for it), and a data message whose key
//! the known structures cannot give is looked up in the store before it fails
//! (`kafka/table_structures.rs` says why and how).
//!
//! Avro schemas unknown to the partition are fetched from the Schema Registry client, whose
//! cache by id is shared by every partition; a fetch happens once per schema id per partition,
//! never per message.
//!
//! A message that does not name its table (Qlik's default with one topic per table) belongs to
//! the table its Kafka headers name (`kafka.table_header`, `kafka.schema_header`: see
//! [`MessageDecoder::header_table`]), else to the one `kafka.topic_tables` gives its topic
//! (worked out once per topic); a message's own `schema`/`table` always wins.
//!
//! The trace a message's producer gave it (`kafka.traceparent_header`, ...) is read from its
//! headers too ([`MessageDecoder::header_trace`]): see [`eda_core::trace`].

use crate::kafka::schema_registry::SchemaRegistryClient;
use crate::kafka::table_structures::TableStructures;
use crate::ports::SinkError;
use eda_config::{KafkaConfig, MessageFormat, TopicTables};
use eda_core::cdc::{
    decode_debezium, decode_qlik_json, AvroDecoder, AvroError, CdcEvent, DecodeContext,
    FallbackKeys, KafkaCoordinates, KeyError, MetadataCache, QlikJsonError, QlikMessage,
    TableMetadata, TableRef,
};
use eda_core::failure::ErrorClass;
use eda_core::trace::{HeaderTrace, MessageTrace, TraceHeaderNames};
use std::sync::Arc;

/// What a message turned out to be.
#[derive(Debug)]
// Not boxed: nearly every message is a change, and a box would be one more allocation per
// message (`docs/perf/hops.md`); the value is moved once, into the applier's batch.
#[allow(clippy::large_enum_variant)]
pub enum Decoded {
    /// A row change to apply.
    Change(CdcEvent),
    /// Nothing to apply (a Qlik metadata message, recorded; a Kafka tombstone): acknowledge it.
    Nothing,
}

/// Why a message cannot be decoded (yet). A retryable class (a dependency that is down, slow or
/// throttling: [`ErrorClass::is_retryable`]; here the Schema Registry or the table-structure
/// store) holds the partition until it passes; any other class sends the message to the DLQ with
/// this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeFailure {
    /// `decode` or `schema` for the message's own fault; `timeout`, `connect`, `server` or
    /// `throttled` for a dependency's.
    pub class: ErrorClass,
    /// What is wrong, and where.
    pub message: String,
}

impl DecodeFailure {
    /// The table-structure store failed; the class is the store's.
    fn store(structures: &TableStructures, err: SinkError) -> Self {
        Self {
            class: err.class,
            message: format!("table structure store {}: {err}", structures.store_name()),
        }
    }
}

/// A partition's decoder.
pub struct MessageDecoder {
    /// The wire format of the topic.
    format: MessageFormat,
    /// Table structures shared by every partition and made durable, for the Qlik formats.
    structures: Option<Arc<TableStructures>>,
    /// This decoder's copy of what is known (from `structures`, or, without them, from the
    /// metadata messages of this partition alone).
    metadata: Arc<MetadataCache>,
    /// The generation of `structures` that `metadata` is a copy of.
    generation: u64,
    /// Compiled Avro schemas.
    avro: AvroDecoder,
    /// Where unknown Avro schema ids are looked up.
    registry: Option<Arc<SchemaRegistryClient>>,
    /// Key columns from configuration.
    fallback: FallbackKeys,
    /// The table of the message being decoded, when it does not name one: from its headers,
    /// else from `topic_tables`.
    default_table: Option<TableRef>,
    /// `kafka.topic_tables`, parsed.
    topic_tables: TopicTables,
    /// What `topic_tables` gives `topic`, worked out when the topic changes.
    topic_table: Option<TableRef>,
    /// `kafka.table_header` (empty: headers are not read).
    table_header: String,
    /// `kafka.schema_header`.
    schema_header: String,
    /// `kafka.traceparent_header`, `kafka.tracestate_header`, `kafka.correlation_id_header`
    /// (empty: not read).
    trace_headers: [String; 3],
    /// The topic of the last message, to stamp a message decoded a second time (after a look-up
    /// in the store) without copying its coordinates for every message.
    topic: Arc<str>,
}

impl MessageDecoder {
    /// A decoder for `config.format`, with key columns from `config.key_columns` and, for the
    /// Qlik formats, the process's `structures` (without them, metadata messages teach this
    /// decoder only, and only until it is dropped).
    pub fn new(
        config: &KafkaConfig,
        registry: Option<Arc<SchemaRegistryClient>>,
        structures: Option<Arc<TableStructures>>,
    ) -> Self {
        Self {
            format: config.format,
            structures,
            metadata: Arc::new(MetadataCache::new()),
            generation: u64::MAX,
            avro: AvroDecoder::new(),
            registry,
            fallback: fallback_keys(config),
            default_table: None,
            // Validation has parsed the map already; an unvalidated one maps nothing.
            topic_tables: TopicTables::parse(&config.topic_tables).unwrap_or_default(),
            topic_table: None,
            table_header: config.table_header.clone(),
            schema_header: config.schema_header.clone(),
            trace_headers: [
                config.traceparent_header.clone(),
                config.tracestate_header.clone(),
                config.correlation_id_header.clone(),
            ],
            topic: "".into(),
        }
    }

    /// The table a message's Kafka headers name, as `(name, value)` pairs: the
    /// `kafka.table_header` as `SCHEMA.TABLE`, or as the bare table name with the schema in
    /// `kafka.schema_header`. `None` without such headers (or with headers that are not UTF-8, or
    /// a bare name without a schema).
    pub fn header_table<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    ) -> Option<TableRef> {
        if self.table_header.is_empty() {
            return None;
        }
        let (mut table, mut schema) = (None, None);
        for (name, value) in headers {
            let value = value.and_then(|v| std::str::from_utf8(v).ok());
            if name == self.table_header {
                table = value.filter(|v| !v.is_empty());
            } else if name == self.schema_header {
                schema = value.filter(|v| !v.is_empty());
            }
        }
        match (schema, table?) {
            (Some(schema), table) => Some(TableRef::new(schema, table)),
            (None, qualified) => qualified
                .split_once('.')
                .filter(|(s, t)| !s.is_empty() && !t.is_empty())
                .map(|(s, t)| TableRef::new(s, t)),
        }
    }

    /// The trace a message's Kafka headers (`(name, value)` pairs) give its changes
    /// (`kafka.traceparent_header`, `kafka.tracestate_header`, `kafka.correlation_id_header`),
    /// strictly read; malformed headers are reported for counting, never refused.
    pub fn header_trace<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    ) -> HeaderTrace {
        let [traceparent, tracestate, correlation_id] = &self.trace_headers;
        MessageTrace::from_headers(
            TraceHeaderNames {
                traceparent,
                tracestate,
                correlation_id,
            },
            headers,
        )
    }

    /// Decodes one message value (and key, for Debezium); `header_table` is the table its Kafka
    /// headers name ([`Self::header_table`]).
    pub async fn decode(
        &mut self,
        value: Option<&[u8]>,
        key: Option<&[u8]>,
        origin: KafkaCoordinates,
        header_table: Option<TableRef>,
    ) -> Result<Decoded, DecodeFailure> {
        let Some(value) = value else {
            return Ok(Decoded::Nothing);
        };
        self.remember_topic(&origin.topic);
        self.default_table = header_table.or_else(|| self.topic_table.clone());
        match self.format {
            MessageFormat::QlikJson => self.qlik_json(value, origin).await,
            MessageFormat::Debezium => {
                let ctx = DecodeContext {
                    default_table: self.default_table.as_ref(),
                    fallback_keys: &self.fallback,
                };
                match decode_debezium(value, key, &ctx, Some(origin)) {
                    Ok(Some(event)) => Ok(Decoded::Change(event)),
                    Ok(None) => Ok(Decoded::Nothing),
                    Err(err) => Err(decode_error(err.to_string())),
                }
            }
            MessageFormat::QlikAvro => self.qlik_avro(value, origin).await,
        }
    }

    async fn qlik_json(
        &mut self,
        value: &[u8],
        origin: KafkaCoordinates,
    ) -> Result<Decoded, DecodeFailure> {
        self.catch_up().await?;
        let (partition, offset) = (origin.partition, origin.offset);
        self.remember_topic(&origin.topic);
        match self.qlik_json_once(value, origin) {
            Err(QlikJsonError::Key { table, source }) if is_key_gap(&source) => {
                // Another pod may have recorded the table since this one looked.
                if !self.look_up(&table).await? {
                    return Err(decode_error(
                        QlikJsonError::Key { table, source }.to_string(),
                    ));
                }
                let origin = self.coordinates(partition, offset);
                match self.qlik_json_once(value, origin) {
                    Ok(message) => self.settle_qlik(message).await,
                    Err(err) => Err(decode_error(err.to_string())),
                }
            }
            Ok(message) => self.settle_qlik(message).await,
            Err(err) => Err(decode_error(err.to_string())),
        }
    }

    fn qlik_json_once(
        &self,
        value: &[u8],
        origin: KafkaCoordinates,
    ) -> Result<QlikMessage, QlikJsonError> {
        let ctx = DecodeContext {
            default_table: self.default_table.as_ref(),
            fallback_keys: &self.fallback,
        };
        decode_qlik_json(value, &ctx, &self.metadata, Some(origin))
    }

    async fn settle_qlik(&mut self, message: QlikMessage) -> Result<Decoded, DecodeFailure> {
        match message {
            QlikMessage::Change(event) => Ok(Decoded::Change(event)),
            QlikMessage::Metadata(structure) => {
                self.learn(structure).await?;
                Ok(Decoded::Nothing)
            }
        }
    }

    async fn qlik_avro(
        &mut self,
        value: &[u8],
        origin: KafkaCoordinates,
    ) -> Result<Decoded, DecodeFailure> {
        let id = AvroDecoder::peek_schema_id(value).map_err(|e| decode_error(e.to_string()))?;
        if !self.avro.has_schema(id) {
            let registry = self.registry.as_ref().ok_or_else(|| DecodeFailure {
                class: ErrorClass::Schema,
                message: format!("schema id {id}: no schema_registry.url is configured"),
            })?;
            // A registry that is down, slow or throttling says so in the class: the partition
            // waits for it instead of dead-lettering good data.
            let text = registry.schema(id).await.map_err(|e| DecodeFailure {
                class: e.class(),
                message: e.to_string(),
            })?;
            self.avro
                .insert_schema(id, &text)
                .map_err(|e| DecodeFailure {
                    class: ErrorClass::Schema,
                    message: e.to_string(),
                })?;
        }
        self.catch_up().await?;
        let (partition, offset) = (origin.partition, origin.offset);
        self.remember_topic(&origin.topic);
        match self.qlik_avro_once(value, origin) {
            Err(AvroError::Key { table, source }) if is_key_gap(&source) => {
                if !self.look_up(&table).await? {
                    return Err(decode_error(AvroError::Key { table, source }.to_string()));
                }
                let origin = self.coordinates(partition, offset);
                self.qlik_avro_once(value, origin)
                    .map(Decoded::Change)
                    .map_err(|e| decode_error(e.to_string()))
            }
            decoded => decoded
                .map(Decoded::Change)
                .map_err(|e| decode_error(e.to_string())),
        }
    }

    fn qlik_avro_once(
        &self,
        value: &[u8],
        origin: KafkaCoordinates,
    ) -> Result<CdcEvent, AvroError> {
        let ctx = DecodeContext {
            default_table: self.default_table.as_ref(),
            fallback_keys: &self.fallback,
        };
        self.avro
            .decode_cached(value, &ctx, Some(&self.metadata), Some(origin))
    }

    /// Takes in what other partitions (or the store) taught the process since the last message.
    async fn catch_up(&mut self) -> Result<(), DecodeFailure> {
        let Some(structures) = &self.structures else {
            return Ok(());
        };
        if !structures.is_loaded() {
            structures
                .ensure_loaded()
                .await
                .map_err(|err| DecodeFailure::store(structures, err))?;
        }
        if structures.generation() != self.generation {
            (self.generation, self.metadata) = structures.snapshot();
        }
        Ok(())
    }

    /// Records a structure from a metadata message: durably and for every partition when the
    /// decoder has the process's structures, else for this decoder alone.
    async fn learn(&mut self, structure: TableMetadata) -> Result<(), DecodeFailure> {
        match &self.structures {
            Some(structures) => {
                structures
                    .record(structure)
                    .await
                    .map_err(|err| DecodeFailure::store(structures, err))?;
                self.catch_up().await
            }
            None => {
                Arc::make_mut(&mut self.metadata).insert(structure);
                Ok(())
            }
        }
    }

    /// Asks the store about the table `qualified`; whether anything new was learned.
    async fn look_up(&mut self, qualified: &str) -> Result<bool, DecodeFailure> {
        let Some(structures) = &self.structures else {
            return Ok(false);
        };
        let learned = structures
            .look_up(qualified)
            .await
            .map_err(|err| DecodeFailure::store(structures, err))?;
        // Another partition may have learned it meanwhile: what counts is whether this
        // decoder's copy changes.
        let before = self.generation;
        self.catch_up().await?;
        Ok(learned || self.generation != before)
    }

    fn remember_topic(&mut self, topic: &Arc<str>) {
        if *self.topic != **topic {
            self.topic = Arc::clone(topic);
            self.topic_table = self
                .topic_tables
                .table_for(topic)
                .map(|(schema, table)| TableRef::new(schema, table));
        }
    }

    fn coordinates(&self, partition: i32, offset: i64) -> KafkaCoordinates {
        KafkaCoordinates {
            topic: Arc::clone(&self.topic),
            partition,
            offset,
        }
    }
}

/// A key the structures known here could not provide, but a structure recorded elsewhere might.
fn is_key_gap(error: &KeyError) -> bool {
    matches!(
        error,
        KeyError::UnknownKey { .. } | KeyError::MissingKeyColumn { .. }
    )
}

/// The message itself does not decode.
fn decode_error(message: String) -> DecodeFailure {
    DecodeFailure {
        class: ErrorClass::Decode,
        message,
    }
}

/// The configured key columns (`kafka.key_columns`, `"SCHEMA.TABLE" = [columns]`).
pub fn fallback_keys(config: &KafkaConfig) -> FallbackKeys {
    let mut fallback = FallbackKeys::none();
    for (table, columns) in &config.key_columns {
        if let Some((schema, name)) = table.split_once('.') {
            fallback = fallback.with_table(&TableRef::new(schema, name), columns.clone());
        }
    }
    fallback
}
