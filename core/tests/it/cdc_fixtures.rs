//! The CDC decoders against fixtures in the documented shapes (Qlik Replicate's Kafka messages,
//! Debezium's tutorial events, Qlik Avro records built with apache-avro's encoder), malformed
//! variants of them, and the path from decoded events to the DynamoDB table.

use std::cell::Cell;
use std::collections::HashMap;

use eda_core::apply_plan::{plan, simulate, AttrValue, PlanOptions, SimTable, TableRouting};
use eda_core::cdc::{
    decode_debezium, decode_qlik_json, AvroDecoder, AvroError, CdcEvent, DebeziumError,
    DecodeContext, FallbackKeys, KafkaCoordinates, KeyError, MetadataCache, Operation,
    QlikJsonError, QlikMessage, SchemaSource, SchemaSourceError, TableRef,
};
use serde::Serialize;
use serde_json::json;

use crate::avro_support;

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {full}: {e}"))
}

fn orders() -> TableRef {
    TableRef::new("dbo", "ORDERS")
}

fn coords(offset: i64) -> Option<KafkaCoordinates> {
    Some(KafkaCoordinates {
        topic: "dbo.ORDERS".into(),
        partition: 0,
        offset,
    })
}

/// Decodes a Qlik fixture with the ORDERS metadata already seen.
fn qlik(path: &str) -> Result<QlikMessage, QlikJsonError> {
    qlik_after_metadata(&fixture(path))
}

/// Decodes a Qlik message with the ORDERS metadata already seen.
fn qlik_after_metadata(message: &[u8]) -> Result<QlikMessage, QlikJsonError> {
    let table = orders();
    let none = FallbackKeys::none();
    let ctx = DecodeContext {
        default_table: Some(&table),
        fallback_keys: &none,
    };
    let mut cache = MetadataCache::new();
    match decode_qlik_json(&fixture("qlik/metadata_envelope.json"), &ctx, &cache, None) {
        Ok(QlikMessage::Metadata(meta)) => cache.insert(meta),
        other => panic!("the fixture is a metadata message: {other:?}"),
    };
    decode_qlik_json(message, &ctx, &cache, coords(7))
}

fn change(m: QlikMessage) -> CdcEvent {
    match m {
        QlikMessage::Change(e) => e,
        other => panic!("expected a change, got {other:?}"),
    }
}

#[test]
fn qlik_metadata_message_teaches_the_key_in_primary_key_order() {
    let none = FallbackKeys::none();
    let ctx = DecodeContext {
        default_table: None,
        fallback_keys: &none,
    };
    let cache = MetadataCache::new();
    let m = decode_qlik_json(
        &fixture("qlik/metadata_envelope.json"),
        &ctx,
        &cache,
        coords(3),
    );
    let meta = match m {
        Ok(QlikMessage::Metadata(meta)) => meta,
        other => panic!("expected a metadata message, got {other:?}"),
    };
    assert_eq!(meta.table, orders());
    assert_eq!(meta.table_version, 2);
    assert_eq!(meta.origin, coords(3), "where the structure was read");
    assert!(
        cache.is_empty(),
        "decoding records nothing; the caller does"
    );
    let names: Vec<&str> = meta.key_columns.iter().map(|n| &**n).collect();
    assert_eq!(names, ["ORDER_ID", "REGION"]);
    assert_eq!(meta.columns.len(), 5);
}

#[test]
fn qlik_insert_envelope_decodes_every_header() {
    let e = change(qlik("qlik/insert_envelope.json").expect("decodes"));
    assert_eq!(e.table, orders());
    assert_eq!(e.operation, Operation::Insert);
    let key: Vec<(&str, &serde_json::Value)> = e.key.iter().map(|k| (&*k.name, &k.value)).collect();
    assert_eq!(
        key,
        vec![("ORDER_ID", &json!("1001")), ("REGION", &json!("us-west"))]
    );
    assert_eq!(e.change_sequence, "20230911032325000000000000000000005");
    assert_eq!(
        e.source_timestamp.as_deref(),
        Some("2023-09-11T03:23:25.000")
    );
    assert_eq!(
        e.transaction_id.as_deref(),
        Some("00000000000000000000000000060008")
    );
    assert_eq!(
        e.stream_position.as_deref(),
        Some("00000000.00bb2531.00000001.0000.02.0000:154.6963.16")
    );
    assert_eq!(e.kafka, coords(7));
    assert_eq!(
        e.after.as_ref().map(|a| a.to_map()["TOTAL"].clone()),
        Some(json!("125.50"))
    );
    assert!(e.before.is_none());
}

#[test]
fn qlik_update_keeps_both_images_and_round_trips_through_serde() {
    let e = change(qlik("qlik/update_envelope.json").expect("decodes"));
    assert_eq!(e.operation, Operation::Update);
    assert_eq!(
        e.before.as_ref().map(|b| b.to_map()["STATUS"].clone()),
        Some(json!("NEW"))
    );
    assert_eq!(
        e.after.as_ref().map(|a| a.to_map()["STATUS"].clone()),
        Some(json!("SHIPPED"))
    );
    let text = serde_json::to_string(&e).expect("serializes");
    let back: CdcEvent = serde_json::from_str(&text).expect("deserializes");
    assert_eq!(back, e);
}

/// Whitespace where JSON allows it (a pretty-printed message, or a space after each colon)
/// changes nothing in the change decoded: the compact form Qlik writes is read by shortcuts that
/// must step aside for it.
#[test]
fn qlik_messages_with_whitespace_decode_as_the_compact_ones() {
    for path in [
        "qlik/insert_envelope.json",
        "qlik/update_envelope.json",
        "qlik/delete_unwrapped.json",
        "qlik/refresh_envelope.json",
        "qlik/bench_update_1kb.json",
    ] {
        let compact = fixture(path);
        let parsed: serde_json::Value = serde_json::from_slice(&compact).expect("fixture is JSON");
        let pretty = serde_json::to_vec_pretty(&parsed).expect("serializes");
        // Compact but for a space after each `:`, where the shortcuts are tempted the most.
        let mut spaced = Vec::new();
        parsed
            .serialize(&mut serde_json::Serializer::with_formatter(
                &mut spaced,
                SpaceAfterColon,
            ))
            .expect("serializes");
        let decode = |bytes: &[u8]| match qlik_after_metadata(bytes) {
            Ok(QlikMessage::Change(e)) => Ok(serde_json::to_value(e).expect("serializes")),
            other => Err(format!("{other:?}")),
        };
        let expected = decode(&compact);
        assert!(expected.is_ok(), "{path}: {expected:?}");
        assert_eq!(decode(&pretty), expected, "{path} pretty");
        assert_eq!(decode(&spaced), expected, "{path} spaced");
    }
}

/// JSON written compact except for `": "` between a key and its value.
struct SpaceAfterColon;

impl serde_json::ser::Formatter for SpaceAfterColon {
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

#[test]
fn qlik_unwrapped_delete_takes_its_key_from_before_data() {
    let e = change(qlik("qlik/delete_unwrapped.json").expect("decodes"));
    assert_eq!(e.operation, Operation::Delete);
    assert!(e.after.is_none());
    assert_eq!(e.key[0].value, json!("1001"));
}

#[test]
fn qlik_refresh_row_has_no_sequence_until_planned() {
    let e = change(qlik("qlik/refresh_envelope.json").expect("decodes"));
    assert_eq!(e.operation, Operation::Refresh);
    assert_eq!(e.change_sequence, "");
    assert_eq!(e.stream_position, None);
}

#[test]
fn qlik_table_without_metadata_uses_the_fallback_or_fails_typed() {
    let kit = TableRef::new("dbo", "kit");
    let fallback = FallbackKeys::none().with_table(&kit, vec!["ID".into()]);
    let ctx = DecodeContext {
        default_table: Some(&kit),
        fallback_keys: &fallback,
    };
    let cache = MetadataCache::new();
    let bytes = fixture("qlik/update_with_table_name.json");
    let e = change(decode_qlik_json(&bytes, &ctx, &cache, None).expect("decodes"));
    assert_eq!(e.key[0].value, json!("2"));

    let none = FallbackKeys::none();
    let ctx = DecodeContext {
        default_table: Some(&kit),
        fallback_keys: &none,
    };
    assert_eq!(
        decode_qlik_json(&bytes, &ctx, &cache, None),
        Err(QlikJsonError::Key {
            table: "dbo.kit".into(),
            source: KeyError::UnknownKey {
                table: "dbo.kit".into()
            }
        })
    );
    let ctx = DecodeContext {
        default_table: None,
        fallback_keys: &fallback,
    };
    assert_eq!(
        decode_qlik_json(&bytes, &ctx, &cache, None),
        Err(QlikJsonError::NoTable)
    );
}

#[test]
fn qlik_malformed_inputs_fail_with_what_and_where() {
    let truncated = qlik("qlik/malformed/truncated.json");
    assert!(matches!(
        truncated,
        Err(QlikJsonError::Syntax { line: 1, .. })
    ));
    says_its_place_once(truncated.err());
    assert_eq!(
        qlik("qlik/malformed/wrong_magic.json"),
        Err(QlikJsonError::BadMagic {
            found: "atMSX".into()
        })
    );
    assert_eq!(
        qlik("qlik/malformed/bad_type.json"),
        Err(QlikJsonError::BadMessageType { found: "XX".into() })
    );
    assert!(matches!(
        qlik("qlik/malformed/bad_operation.json"),
        Err(QlikJsonError::Invalid {
            path: "message.headers.operation",
            ..
        })
    ));
    assert!(matches!(
        qlik("qlik/malformed/bad_sequence.json"),
        Err(QlikJsonError::Invalid {
            path: "message.headers.changeSequence",
            ..
        })
    ));
    assert!(matches!(
        qlik("qlik/malformed/bad_counter_type.json"),
        Err(QlikJsonError::Invalid {
            path: "message.headers.transactionEventCounter",
            ..
        })
    ));
    assert_eq!(
        qlik("qlik/malformed/missing_headers.json"),
        Err(QlikJsonError::Missing {
            path: "message.headers"
        })
    );
    assert!(matches!(
        qlik("qlik/malformed/missing_key_column.json"),
        Err(QlikJsonError::Key {
            source: KeyError::MissingKeyColumn { .. },
            ..
        })
    ));
    // Checked by the decoder's own scanner: where, and what.
    for (text, column, problem) in [
        (
            &b"{\"data\":{\"A\":\"x\ty\"}}"[..],
            16,
            "control character in a string",
        ),
        (
            b"{\"data\":{\"A\":1.}}",
            16,
            "invalid number: a digit must follow `.`",
        ),
        (
            b"{\"type\":\"DT\",\"type\":\"MD\"}",
            14,
            "duplicate field `type`",
        ),
        (b"{\"headers\":{}} x", 16, "trailing characters"),
    ] {
        assert_eq!(
            qlik_bytes(text),
            Err(QlikJsonError::Syntax {
                message: problem.into(),
                line: 1,
                column
            }),
            "{}",
            String::from_utf8_lossy(text)
        );
    }
    assert!(matches!(
        qlik_bytes(b"{\"magic\":1}"),
        Err(QlikJsonError::Invalid { path: "magic", .. })
    ));
    for junk in [&b""[..], b"[]", b"null", b"{\"magic\":1}", b"\xff\xfe"] {
        assert!(qlik_bytes(junk).is_err(), "{junk:?} must be rejected");
    }
}

/// A decode error's text names its line and column once.
fn says_its_place_once(error: Option<impl std::fmt::Display>) {
    let text = error.map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        text.matches(" line ").count(),
        1,
        "the place is said once: {text}"
    );
}

fn qlik_bytes(b: &[u8]) -> Result<QlikMessage, QlikJsonError> {
    let none = FallbackKeys::none();
    let ctx = DecodeContext {
        default_table: None,
        fallback_keys: &none,
    };
    decode_qlik_json(b, &ctx, &MetadataCache::new(), None)
}

/// A schema source that counts how often it is asked.
struct CountingSource {
    schemas: HashMap<u32, String>,
    calls: Cell<usize>,
}

impl SchemaSource for CountingSource {
    fn schema(&self, id: u32) -> Result<String, SchemaSourceError> {
        self.calls.set(self.calls.get() + 1);
        self.schemas.schema(id)
    }
}

fn avro_ctx_keys() -> FallbackKeys {
    FallbackKeys::none().with_table(&orders(), vec!["ORDER_ID".into(), "REGION".into()])
}

#[test]
fn avro_round_trip_against_apache_avro_with_natural_logical_types() {
    let seq = "20230911032410000000000000000000017";
    let bytes = avro_support::update_message(42, seq);
    assert_eq!(AvroDecoder::peek_schema_id(&bytes), Ok(42));
    let source = CountingSource {
        schemas: HashMap::from([(42, avro_support::SCHEMA.to_string())]),
        calls: Cell::new(0),
    };
    let table = orders();
    let keys = avro_ctx_keys();
    let ctx = DecodeContext {
        default_table: Some(&table),
        fallback_keys: &keys,
    };
    let mut decoder = AvroDecoder::new();
    let e = decoder
        .decode(&bytes, &source, &ctx, None, coords(9))
        .expect("decodes");
    decoder
        .decode(&bytes, &source, &ctx, None, coords(10))
        .expect("decodes again");
    assert_eq!(source.calls.get(), 1, "the schema is fetched once per id");
    assert!(decoder.has_schema(42));

    assert_eq!(e.operation, Operation::Update);
    assert_eq!(e.change_sequence, seq);
    assert_eq!(
        e.source_timestamp.as_deref(),
        Some("2023-09-11T03:24:10.000")
    );
    assert_eq!(e.key[0].value, json!(1001));
    assert_eq!(e.key[1].value, json!("us-west"));
    let after = e.after.as_ref().expect("after image").to_map();
    assert_eq!(after["TOTAL"], json!("125.50"));
    assert_eq!(after["SHIP_DATE"], json!("2023-09-11"));
    assert_eq!(after["CREATED_AT"], json!("2023-09-11T03:23:21.123Z"));
    assert_eq!(after["UPDATED_AT"], json!("2023-09-11T03:24:10.004521Z"));
    assert_eq!(
        after["EXTERNAL_ID"],
        json!("67e55044-10b1-426f-9247-bb680e5fe0c8")
    );
    assert_eq!(after["ACTIVE"], json!(true));
    assert_eq!(after["SCORE"], json!(0.875));
    assert_eq!(after["ITEM_COUNT"], json!(3));
    assert_eq!(after["NOTES"], json!("shipped"));
    assert_eq!(
        e.before.as_ref().map(|b| b.to_map()["NOTES"].clone()),
        Some(json!("packed"))
    );
}

#[test]
fn avro_failures_are_typed_with_ids_and_offsets() {
    let table = orders();
    let keys = avro_ctx_keys();
    let ctx = DecodeContext {
        default_table: Some(&table),
        fallback_keys: &keys,
    };
    let mut decoder = AvroDecoder::new();
    let empty: HashMap<u32, String> = HashMap::new();
    let bytes = avro_support::update_message(7, "20230911032410000000000000000000017");
    assert_eq!(
        decoder.decode(&bytes, &empty, &ctx, None, None),
        Err(AvroError::SchemaSource {
            id: 7,
            source: SchemaSourceError::NotFound { id: 7 }
        })
    );
    assert_eq!(
        decoder.decode(&[1, 0, 0, 0, 7, 0], &empty, &ctx, None, None),
        Err(AvroError::BadMagic { found: 1 })
    );
    assert_eq!(
        decoder.decode(&[0, 0, 7], &empty, &ctx, None, None),
        Err(AvroError::TooShort { len: 3 })
    );
    assert!(matches!(
        decoder.insert_schema(8, "{\"type\":\"record\""),
        Err(AvroError::SchemaParse { id: 8, .. })
    ));
    assert!(matches!(
        decoder.insert_schema(9, "{\"type\":\"record\",\"name\":\"X\",\"fields\":[]}"),
        Err(AvroError::SchemaShape { id: 9, .. })
    ));
    decoder
        .insert_schema(7, avro_support::SCHEMA)
        .expect("fixture schema compiles");
    for cut in [6, bytes.len() / 2, bytes.len() - 1] {
        match decoder.decode_cached(&bytes[..cut], &ctx, None, None) {
            Err(AvroError::Body { id: 7, offset, .. }) => assert!(offset <= cut),
            other => panic!("truncated at {cut}: {other:?}"),
        }
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        decoder.decode_cached(&trailing, &ctx, None, None),
        Err(AvroError::Body { .. })
    ));
}

fn dbz(path: &str, key: Option<&[u8]>) -> Result<Option<CdcEvent>, DebeziumError> {
    let keys = FallbackKeys::none().with_default(vec!["id".into()]);
    let ctx = DecodeContext {
        default_table: None,
        fallback_keys: &keys,
    };
    decode_debezium(&fixture(path), key, &ctx, None)
}

#[test]
fn debezium_events_map_ops_tables_and_positions() {
    let key = fixture("debezium/postgres_key_wrapped.json");
    let u = dbz("debezium/postgres_update_wrapped.json", Some(&key))
        .expect("decodes")
        .expect("not a tombstone");
    assert_eq!(u.operation, Operation::Update);
    assert_eq!(u.table, TableRef::new("inventory", "customers"));
    assert_eq!(&*u.key[0].name, "id");
    assert_eq!(u.key[0].value, json!(1004));
    assert_eq!(u.change_sequence, format!("{:020}{:015}", 24_023_128u64, 0));
    assert_eq!(
        u.source_timestamp.as_deref(),
        Some("2019-05-28T08:58:24.863Z")
    );
    assert_eq!(u.transaction_id.as_deref(), Some("556"));

    let c = dbz("debezium/mysql_insert.json", None)
        .expect("decodes")
        .expect("event");
    assert_eq!(c.operation, Operation::Insert);
    assert_eq!(c.table, TableRef::new("inventory", "customers"));
    assert_eq!(c.change_sequence, format!("{:010}{:015}{:010}", 3, 484, 0));
    assert_eq!(c.stream_position.as_deref(), Some("mysql-bin.000003:484:0"));

    let d = dbz("debezium/sqlserver_delete.json", None)
        .expect("decodes")
        .expect("event");
    assert_eq!(d.operation, Operation::Delete);
    assert!(d.after.is_none());
    assert_eq!(d.key[0].value, json!(1005));
    assert_eq!(
        d.change_sequence,
        format!("{:025}{:010}", 10_977_524_272_070_658u64, 1)
    );

    let r = dbz("debezium/postgres_snapshot_read.json", None)
        .expect("decodes")
        .expect("event");
    assert_eq!(r.operation, Operation::Refresh);
    assert!(
        r.change_sequence < u.change_sequence,
        "a snapshot sorts below later changes"
    );

    let o = dbz("debezium/oracle_update.json", None);
    assert!(
        matches!(o, Err(DebeziumError::Key { .. })),
        "oracle columns are upper case: {o:?}"
    );

    assert_eq!(dbz("debezium/tombstone.json", None), Ok(None));
}

#[test]
fn debezium_malformed_inputs_fail_typed() {
    let truncated = dbz("debezium/malformed/truncated.json", None);
    assert!(matches!(
        truncated,
        Err(DebeziumError::Syntax { line: 1, .. })
    ));
    says_its_place_once(truncated.err());
    assert!(matches!(
        dbz("debezium/malformed/bad_op.json", None),
        Err(DebeziumError::Invalid {
            path: "payload.op",
            ..
        })
    ));
    assert!(matches!(
        dbz("debezium/malformed/bad_pos.json", None),
        Err(DebeziumError::Invalid {
            path: "payload.source.pos",
            ..
        })
    ));
    assert_eq!(
        dbz("debezium/malformed/missing_op.json", None),
        Err(DebeziumError::Missing { path: "payload.op" })
    );
    assert!(matches!(
        dbz("debezium/malformed/no_position.json", None),
        Err(DebeziumError::NoPosition { .. })
    ));
}

#[test]
fn decoded_history_lands_in_the_table_whatever_the_delivery_order() {
    let paths = [
        "qlik/refresh_envelope.json",
        "qlik/insert_envelope.json",
        "qlik/update_envelope.json",
        "qlik/delete_unwrapped.json",
    ];
    let events: Vec<CdcEvent> = paths
        .iter()
        .map(|p| change(qlik(p).expect("decodes")))
        .collect();
    let opts = PlanOptions {
        now_epoch_secs: 1_700_000_000,
        tombstone_ttl_secs: 7 * 86_400,
        refresh_started_at: None,
    };
    let routing = TableRouting::new("eda-cdc");
    let mut in_order = SimTable::new();
    simulate(&mut in_order, &plan(&events, &routing, &opts));
    // Redelivered backwards, one at a time.
    let mut reversed = SimTable::new();
    for e in events.iter().rev() {
        simulate(
            &mut reversed,
            &plan(std::slice::from_ref(e), &routing, &opts),
        );
    }
    assert_eq!(in_order, reversed);
    let order = &in_order[&("eda-cdc".to_string(), "dbo.ORDERS#1001|us-west".to_string())];
    assert_eq!(order["_deleted"], AttrValue::Bool(true));
    assert_eq!(order["_ttl"], AttrValue::N("1700604800".into()));
    let loaded = &in_order[&("eda-cdc".to_string(), "dbo.ORDERS#77|us-east".to_string())];
    assert_eq!(loaded["_op"], AttrValue::S("REFRESH".into()));
    assert_eq!(
        loaded["_seq"],
        AttrValue::S(format!("20230911031000{:021}", 0))
    );
}
