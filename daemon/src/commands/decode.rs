//! `eda-daemon decode`: what would eda do with this message?

use super::{read_input, EXIT_BAD_INPUT};
use crate::cli::{DecodeArgs, DecodeFormat};
use eda_actors::kafka::message_decoder::fallback_keys;
use eda_actors::kafka::schema_registry::SchemaRegistryClient;
use eda_actors::settings::table_routing;
use eda_core::apply_plan::{self, PlanOptions, GUARD_EXPRESSION};
use eda_core::cdc::{
    decode_debezium, decode_qlik_json, AvroDecoder, CdcEvent, DecodeContext, MetadataCache,
    QlikMessage, TableRef,
};
use serde_json::json;
use std::process::ExitCode;

/// Decodes one message and prints the `CdcEvent` and its apply plan as JSON, or the decode
/// error and exit 2.
pub fn decode(req: &DecodeArgs) -> ExitCode {
    let config = match req.config.as_deref() {
        Some(path) => match super::load_config(path) {
            Ok(config) => config,
            Err(code) => return code,
        },
        None => eda_config::Config::default(),
    };
    let raw = match read_input(req.file.as_deref()) {
        Ok(raw) => raw,
        Err(code) => return code,
    };
    let default_table = req.table.as_deref().map(|t| match t.split_once('.') {
        Some((schema, table)) => TableRef::new(schema, table),
        None => TableRef::new("", t),
    });
    let mut fallback = fallback_keys(&config.kafka);
    if !req.keys.is_empty() {
        fallback = fallback.with_default(req.keys.to_vec());
    }
    let ctx = DecodeContext {
        default_table: default_table.as_ref(),
        fallback_keys: &fallback,
    };

    let decoded: Result<Option<CdcEvent>, String> = match req.format {
        DecodeFormat::QlikJson => match decode_qlik_json(&raw, &ctx, &MetadataCache::new(), None) {
            Ok(QlikMessage::Change(event)) => Ok(Some(event)),
            Ok(QlikMessage::Metadata(structure)) => {
                let printed = json!({
                    "message": "metadata",
                    "table": structure.table,
                    "table_version": structure.table_version,
                    "key_columns": structure.key_columns,
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&printed).unwrap_or_default()
                );
                return ExitCode::SUCCESS;
            }
            Err(err) => Err(err.to_string()),
        },
        DecodeFormat::Debezium => {
            decode_debezium(&raw, None, &ctx, None).map_err(|e| e.to_string())
        }
        DecodeFormat::QlikAvro => decode_avro(&raw, req.schema_registry.as_deref(), &config, &ctx),
    };

    let event = match decoded {
        Ok(Some(event)) => event,
        Ok(None) => {
            println!("{}", json!({ "message": "tombstone" }));
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("error: the message does not decode: {err}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };

    let routing = table_routing(&config);
    let opts = PlanOptions {
        now_epoch_secs: chrono::Utc::now().timestamp(),
        tombstone_ttl_secs: i64::try_from(config.apply.tombstone_ttl_secs).unwrap_or(i64::MAX),
        refresh_started_at: None,
    };
    // A key-changing UPDATE is applied as the old key's DELETE and the new key's INSERT.
    let changes = apply_plan::split_key_changes(vec![event.clone()]);
    let plan = apply_plan::plan(&changes, &routing, &opts);
    let printed = json!({
        "message": "change",
        "event": event,
        "condition": GUARD_EXPRESSION,
        "plan": plan,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&printed).unwrap_or_default()
    );
    if plan.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_BAD_INPUT)
    }
}

/// Avro needs the writer's schema: fetched from the registry named on the command line (or in
/// the configuration) by the id in the message's header.
fn decode_avro(
    raw: &[u8],
    url: Option<&str>,
    config: &eda_config::Config,
    ctx: &DecodeContext<'_>,
) -> Result<Option<CdcEvent>, String> {
    let id = AvroDecoder::peek_schema_id(raw).map_err(|e| e.to_string())?;
    let mut registry = config.schema_registry.clone();
    if let Some(url) = url {
        registry.url = Some(url.to_string());
    }
    if registry.url.is_none() {
        return Err("Avro needs --schema-registry URL (or schema_registry.url)".into());
    }
    let client = SchemaRegistryClient::new(&registry).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let schema = runtime
        .block_on(client.schema(id))
        .map_err(|e| e.to_string())?;
    let mut decoder = AvroDecoder::new();
    decoder
        .insert_schema(id, &schema)
        .map_err(|e| e.to_string())?;
    decoder
        .decode_cached(raw, ctx, None, None)
        .map(Some)
        .map_err(|e| e.to_string())
}
