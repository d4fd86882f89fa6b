//! Qlik Replicate's Avro data records for the generated table, in the Confluent wire format
//! (`0x00`, the 4-byte schema id, the Avro body), encoded with apache-avro's own writer.
//!
//! The schema is Qlik's data-record layout with the optional top-level `schema`/`table` fields,
//! so messages name their table as the JSON ones do.

use crate::history::{SCHEMA, TABLE};
use apache_avro::types::Value as Av;
use apache_avro::Schema;
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// Subject the schema is registered under (Confluent's `<topic>-value` naming).
pub fn subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// The writer's schema of the generated `SALES.CUSTOMERS` rows.
pub const CUSTOMERS_SCHEMA: &str = r#"{
  "type": "record", "name": "DataRecord", "namespace": "com.attunity.queue.msg.eda.SALES.CUSTOMERS",
  "fields": [
    {"name": "schema", "type": "string"},
    {"name": "table", "type": "string"},
    {"name": "data", "type": {"type": "record", "name": "Data", "fields": [
      {"name": "CUSTOMER_ID", "type": ["null", "string"], "default": null},
      {"name": "NAME", "type": ["null", "string"], "default": null},
      {"name": "EMAIL", "type": ["null", "string"], "default": null},
      {"name": "VERSION", "type": ["null", "string"], "default": null},
      {"name": "BALANCE", "type": ["null", "string"], "default": null},
      {"name": "NOTES", "type": ["null", "string"], "default": null}
    ]}},
    {"name": "beforeData", "type": ["null", "Data"], "default": null},
    {"name": "headers", "type": {"type": "record", "name": "Headers", "namespace": "com.attunity.queue.msg", "fields": [
      {"name": "operation", "type": {"type": "enum", "name": "operation", "symbols": ["INSERT", "UPDATE", "DELETE", "REFRESH"]}},
      {"name": "changeSequence", "type": "string"},
      {"name": "timestamp", "type": "string"},
      {"name": "streamPosition", "type": "string"},
      {"name": "transactionId", "type": "string"},
      {"name": "changeMask", "type": ["null", "bytes"], "default": null},
      {"name": "columnMask", "type": ["null", "bytes"], "default": null},
      {"name": "transactionEventCounter", "type": ["null", "long"], "default": null},
      {"name": "transactionLastEvent", "type": ["null", "boolean"], "default": null}
    ]}}
  ]
}"#;

const COLUMNS: [&str; 6] = [
    "CUSTOMER_ID",
    "NAME",
    "EMAIL",
    "VERSION",
    "BALANCE",
    "NOTES",
];

fn schema() -> &'static Schema {
    static SCHEMA_PARSED: OnceLock<Schema> = OnceLock::new();
    SCHEMA_PARSED.get_or_init(|| Schema::parse_str(CUSTOMERS_SCHEMA).expect("the schema parses"))
}

fn nullable(value: Option<&Value>) -> Av {
    match value.and_then(Value::as_str) {
        Some(s) => Av::Union(1, Box::new(Av::String(s.to_string()))),
        None => Av::Union(0, Box::new(Av::Null)),
    }
}

fn data(row: &Map<String, Value>) -> Av {
    Av::Record(
        COLUMNS
            .iter()
            .map(|c| (c.to_string(), nullable(row.get(*c))))
            .collect(),
    )
}

/// A framed change message for `schema_id`.
pub fn qlik_avro_message(
    schema_id: u32,
    operation: &str,
    seq: &str,
    row: &Map<String, Value>,
    before: Option<&Map<String, Value>>,
) -> Vec<u8> {
    let op_index = ["INSERT", "UPDATE", "DELETE", "REFRESH"]
        .iter()
        .position(|o| *o == operation)
        .unwrap_or(0);
    let record = Av::Record(vec![
        ("schema".into(), Av::String(SCHEMA.into())),
        ("table".into(), Av::String(TABLE.into())),
        ("data".into(), data(row)),
        (
            "beforeData".into(),
            match before {
                Some(b) => Av::Union(1, Box::new(data(b))),
                None => Av::Union(0, Box::new(Av::Null)),
            },
        ),
        (
            "headers".into(),
            Av::Record(vec![
                (
                    "operation".into(),
                    Av::Enum(op_index as u32, operation.into()),
                ),
                ("changeSequence".into(), Av::String(seq.into())),
                (
                    "timestamp".into(),
                    Av::String("2026-01-01T00:00:00.000".into()),
                ),
                (
                    "streamPosition".into(),
                    Av::String(format!("00000000.{}", &seq[20..])),
                ),
                (
                    "transactionId".into(),
                    Av::String(format!("{:0>32}", &seq[20..])),
                ),
                ("changeMask".into(), Av::Union(0, Box::new(Av::Null))),
                ("columnMask".into(), Av::Union(0, Box::new(Av::Null))),
                (
                    "transactionEventCounter".into(),
                    Av::Union(1, Box::new(Av::Long(1))),
                ),
                (
                    "transactionLastEvent".into(),
                    Av::Union(1, Box::new(Av::Boolean(true))),
                ),
            ]),
        ),
    ]);
    let body = apache_avro::to_avro_datum(schema(), record).expect("the record matches the schema");
    let mut framed = Vec::with_capacity(5 + body.len());
    framed.push(0);
    framed.extend_from_slice(&schema_id.to_be_bytes());
    framed.extend_from_slice(&body);
    framed
}

#[cfg(test)]
mod tests {
    use super::*;
    use eda_core::cdc::{AvroDecoder, DecodeContext, FallbackKeys, Operation, TableRef};
    use serde_json::json;

    #[test]
    fn the_daemons_decoder_reads_what_the_generator_writes() {
        let mut row = Map::new();
        row.insert("CUSTOMER_ID".into(), json!("C000001"));
        row.insert("NAME".into(), json!("Customer C000001"));
        let seq = crate::history::sequence(9);
        let bytes = qlik_avro_message(42, "UPDATE", &seq, &row, Some(&row));
        let mut decoder = AvroDecoder::new();
        decoder
            .insert_schema(42, CUSTOMERS_SCHEMA)
            .expect("schema compiles");
        let keys = FallbackKeys::none()
            .with_table(&TableRef::new(SCHEMA, TABLE), vec!["CUSTOMER_ID".into()]);
        let ctx = DecodeContext {
            default_table: None,
            fallback_keys: &keys,
        };
        let event = decoder
            .decode_cached(&bytes, &ctx, None, None)
            .expect("decodes");
        assert_eq!(event.operation, Operation::Update);
        assert_eq!(event.change_sequence, seq);
        assert_eq!(event.key[0].value, json!("C000001"));
        assert_eq!(
            event.after.expect("after").to_map()["NAME"],
            json!("Customer C000001")
        );
    }
}
