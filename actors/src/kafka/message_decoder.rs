//! One partition's decoder: the configured wire format, with the state decoding needs across
//! messages (Qlik metadata learned from `MD` messages, Avro schemas compiled once per id).
//!
//! Avro schemas unknown to the partition are fetched from the Schema Registry client, whose
//! cache by id is shared by every partition; a fetch happens once per schema id per partition,
//! never per message.

use crate::kafka::schema_registry::SchemaRegistryClient;
use eda_config::{KafkaConfig, MessageFormat};
use eda_core::cdc::{
    decode_debezium, decode_qlik_json, AvroDecoder, CdcEvent, DecodeContext, FallbackKeys,
    KafkaCoordinates, MetadataCache, QlikMessage, TableRef,
};
use eda_core::failure::ErrorClass;
use std::sync::Arc;

/// What a message turned out to be.
#[derive(Debug)]
pub enum Decoded {
    /// A row change to apply.
    Change(Box<CdcEvent>),
    /// Nothing to apply (a Qlik metadata message, a Kafka tombstone): acknowledge it.
    Nothing,
}

/// Why a message cannot be decoded (yet). A retryable class (a dependency that is down, slow or
/// throttling: [`ErrorClass::is_retryable`]) holds the partition until it passes; any other
/// class sends the message to the DLQ with this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeFailure {
    /// `decode` or `schema` for the message's own fault; `timeout`, `connect`, `server` or
    /// `throttled` for a dependency's.
    pub class: ErrorClass,
    /// What is wrong, and where.
    pub message: String,
}

/// A partition's decoder.
pub struct MessageDecoder {
    /// The wire format of the topic.
    format: MessageFormat,
    /// Table structures from Qlik metadata messages.
    metadata: MetadataCache,
    /// Compiled Avro schemas.
    avro: AvroDecoder,
    /// Where unknown Avro schema ids are looked up.
    registry: Option<Arc<SchemaRegistryClient>>,
    /// Key columns from configuration.
    fallback: FallbackKeys,
    /// The table of messages that do not name one.
    default_table: Option<TableRef>,
}

impl MessageDecoder {
    /// A decoder for `config.format`, with key columns from `config.key_columns`.
    pub fn new(config: &KafkaConfig, registry: Option<Arc<SchemaRegistryClient>>) -> Self {
        Self {
            format: config.format,
            metadata: MetadataCache::new(),
            avro: AvroDecoder::new(),
            registry,
            fallback: fallback_keys(config),
            default_table: None,
        }
    }

    /// Decodes one message value (and key, for Debezium).
    pub async fn decode(
        &mut self,
        value: Option<&[u8]>,
        key: Option<&[u8]>,
        origin: KafkaCoordinates,
    ) -> Result<Decoded, DecodeFailure> {
        let Some(value) = value else {
            return Ok(Decoded::Nothing);
        };
        let ctx = DecodeContext {
            default_table: self.default_table.as_ref(),
            fallback_keys: &self.fallback,
        };
        let decode_error = |message: String| DecodeFailure {
            class: ErrorClass::Decode,
            message,
        };
        match self.format {
            MessageFormat::QlikJson => {
                match decode_qlik_json(value, &ctx, &mut self.metadata, Some(origin)) {
                    Ok(QlikMessage::Change(event)) => Ok(Decoded::Change(Box::new(event))),
                    Ok(QlikMessage::Metadata { .. }) => Ok(Decoded::Nothing),
                    Err(err) => Err(decode_error(err.to_string())),
                }
            }
            MessageFormat::Debezium => match decode_debezium(value, key, &ctx, Some(origin)) {
                Ok(Some(event)) => Ok(Decoded::Change(Box::new(event))),
                Ok(None) => Ok(Decoded::Nothing),
                Err(err) => Err(decode_error(err.to_string())),
            },
            MessageFormat::QlikAvro => {
                let id =
                    AvroDecoder::peek_schema_id(value).map_err(|e| decode_error(e.to_string()))?;
                if !self.avro.has_schema(id) {
                    let registry = self.registry.as_ref().ok_or_else(|| DecodeFailure {
                        class: ErrorClass::Schema,
                        message: format!("schema id {id}: no schema_registry.url is configured"),
                    })?;
                    // A registry that is down, slow or throttling says so in the class: the
                    // partition waits for it instead of dead-lettering good data.
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
                let ctx = DecodeContext {
                    default_table: self.default_table.as_ref(),
                    fallback_keys: &self.fallback,
                };
                self.avro
                    .decode_cached(value, &ctx, Some(&self.metadata), Some(origin))
                    .map(|event| Decoded::Change(Box::new(event)))
                    .map_err(|e| decode_error(e.to_string()))
            }
        }
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
