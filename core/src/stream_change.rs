//! From a DynamoDB Streams record back to the [`CdcEvent`] it records, so the `stream-processor`
//! Lambda describes a change with the same [`BaseEvent`](super::transform::BaseEvent) (and the
//! same event id) as the daemon's publisher did when it applied it.
//!
//! An item the CDC applier wrote carries its source in metadata attributes (see
//! [`apply_plan`](super::apply_plan)): `_table`, `_op`, `_seq`, `_ts`, `_deleted`. From those the
//! change is rebuilt exactly: table, operation, change sequence, source timestamp, and the row
//! image without the metadata (escaped `_col_` columns get their names back). The key columns are
//! the ones the item's `_key` attribute names, in its order: the key the daemon used, whether
//! Qlik's metadata or configuration told it, so both paths derive the same event id. Items
//! written before `_key` existed fall back on the configured `kafka.key_columns` of the table,
//! else a tombstone's own columns, else the record's `Keys`.
//!
//! An item whose row was over DynamoDB's item limit keeps its largest columns zstd-compressed in
//! `_zcols` (see [`apply_plan`](super::apply_plan)); they are unpacked here, so the row comes back
//! whole, as the daemon published it.
//!
//! A REMOVE that DynamoDB's TTL made (`userIdentity` type `Service`, principal
//! `dynamodb.amazonaws.com`) of an eda item is a tombstone expiring, not a change: no source
//! change stands behind it, so [`record_to_change`] answers `Ok(None)` and nothing is published.
//!
//! Any other table's records (no metadata) become changes of `dynamodb.<table>`: INSERT, MODIFY
//! and REMOVE map to INSERT, UPDATE and DELETE, the stream sequence number is the sequence.
//!
//! The item's `_trace` (the `traceparent` the daemon published the change's event under) becomes
//! the change's trace, so this path publishes under the same trace id and parent.
//!
//! What the stream cannot give back: Qlik's before image (the old image is the previous *item*,
//! which is what goes in `before`), the transaction id, and the Kafka coordinates.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value};
use thiserror::Error;

use super::apply_plan::{
    unpack, PackedError, DELETED_ATTR, ESCAPED_COLUMN_PREFIX, KEY_ATTR, OP_ATTR, PACKED_ATTR,
    PK_ATTR, SEQ_ATTR, TABLE_ATTR, TRACE_ATTR, TS_ATTR,
};
use super::cdc::{CdcEvent, KeyColumn, Operation, RowImage, TableRef};
use super::stream_record::{image_to_plain, AttributeValue, EventRecord, Image, StreamEventName};
use super::trace::{MessageTrace, TraceContext};
use std::borrow::Cow;
use std::sync::Arc;

/// Schema given to tables that eda did not write (no `_table` attribute).
pub const FOREIGN_SCHEMA: &str = "dynamodb";

/// Why a record cannot be read as a change; the record is reported as a batch item failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StreamChangeError {
    /// `_table` is not `schema.table`.
    #[error("attribute _table = {0:?} is not SCHEMA.TABLE")]
    BadTable(String),
    /// `_op` is not an operation eda writes.
    #[error("attribute _op = {0:?} is not INSERT, UPDATE, DELETE or REFRESH")]
    BadOperation(String),
    /// A metadata attribute has the wrong DynamoDB type.
    #[error("attribute {0} is not a string")]
    NotAString(&'static str),
    /// A configured key column is missing from the image.
    #[error("key column {column} of {table} is not in the record")]
    MissingKey {
        /// `schema.table`.
        table: String,
        /// The configured column.
        column: String,
    },
    /// Neither the record's ARN nor `_table` names a table.
    #[error("the record names no table (no eventSourceARN and no _table)")]
    NoTable,
    /// `_key` is not a list of column names.
    #[error("attribute _key is not a list of strings")]
    BadKeyNames,
    /// `_zcols` does not unpack.
    #[error(transparent)]
    Packed(#[from] PackedError),
}

/// `image` with the columns its `_zcols` holds unpacked into it (the image itself when it has
/// none).
pub(crate) fn expanded(image: &Image) -> Result<Cow<'_, Image>, StreamChangeError> {
    let Some(AttributeValue::B(frame)) = image.get(PACKED_ATTR) else {
        return Ok(Cow::Borrowed(image));
    };
    let mut whole: Image = image
        .iter()
        .filter(|(name, _)| name.as_str() != PACKED_ATTR)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    whole.extend(unpack(frame)?);
    Ok(Cow::Owned(whole))
}

/// Rebuilds the change `record` records; `None` for a tombstone that DynamoDB's TTL reaped,
/// which records no change. `key_columns` is `kafka.key_columns` (`"SCHEMA.TABLE" -> [column,
/// ...]`), for items without `_key`.
pub fn record_to_change(
    record: &EventRecord,
    key_columns: &BTreeMap<String, Vec<String>>,
) -> Result<Option<CdcEvent>, StreamChangeError> {
    let dynamodb = &record.dynamodb;
    let new_image = dynamodb.new_image.as_ref().map(expanded).transpose()?;
    let old_image = dynamodb.old_image.as_ref().map(expanded).transpose()?;
    // The image that describes the item's metadata: the new one, else (REMOVE) the old one.
    let meta_image = new_image
        .as_deref()
        .or(old_image.as_deref())
        .unwrap_or(&dynamodb.keys);
    let written_by_eda = meta_image.contains_key(SEQ_ATTR) && meta_image.contains_key(TABLE_ATTR);
    let stream_position = Some(dynamodb.sequence_number.clone());
    let timestamp = dynamodb.approximate_creation_date_time.and_then(epoch_text);

    if !written_by_eda {
        let table = TableRef::new(
            FOREIGN_SCHEMA,
            record.table_name().ok_or(StreamChangeError::NoTable)?,
        );
        let operation = match record.event_name {
            StreamEventName::Insert => Operation::Insert,
            StreamEventName::Modify => Operation::Update,
            StreamEventName::Remove => Operation::Delete,
        };
        return Ok(Some(CdcEvent {
            key: keys_of(&table, &dynamodb.keys, &dynamodb.keys, key_columns, false)?,
            table,
            operation,
            after: dynamodb
                .new_image
                .as_ref()
                .map(|i| RowImage::from(image_to_plain(i))),
            before: dynamodb
                .old_image
                .as_ref()
                .map(|i| RowImage::from(image_to_plain(i))),
            change_sequence: dynamodb.sequence_number.clone(),
            source_timestamp: timestamp,
            transaction_id: None,
            stream_position,
            kafka: None,
            trace: None,
        }));
    }
    if record.is_ttl_expiry() {
        // The tombstone's own DELETE was published when it was written.
        return Ok(None);
    }

    let table_text = string_attr(meta_image, TABLE_ATTR)?.unwrap_or_default();
    let (schema, name) = table_text
        .split_once('.')
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
        .ok_or_else(|| StreamChangeError::BadTable(table_text.to_owned()))?;
    let table = TableRef::new(schema, name);
    let op_text = string_attr(meta_image, OP_ATTR)?.unwrap_or("");
    let operation = match op_text {
        "INSERT" => Operation::Insert,
        "UPDATE" => Operation::Update,
        "DELETE" => Operation::Delete,
        "REFRESH" => Operation::Refresh,
        other => return Err(StreamChangeError::BadOperation(other.to_owned())),
    };
    // A REMOVE of an eda item is DynamoDB's TTL reaping a tombstone, or a manual delete: the
    // change it records is still the one in the old image's metadata.
    let tombstone = matches!(
        meta_image.get(DELETED_ATTR),
        Some(AttributeValue::Bool(true))
    );
    let after = (!tombstone && record.event_name != StreamEventName::Remove)
        .then(|| new_image.as_deref().map(|i| RowImage::from(row_of(i))))
        .flatten();
    Ok(Some(CdcEvent {
        key: keys_of(&table, meta_image, &dynamodb.keys, key_columns, tombstone)?,
        table,
        operation,
        after,
        before: old_image
            .as_deref()
            .filter(|_| record.event_name != StreamEventName::Remove || !tombstone)
            .map(|i| RowImage::from(row_of(i))),
        change_sequence: string_attr(meta_image, SEQ_ATTR)?
            .unwrap_or_default()
            .to_owned(),
        source_timestamp: string_attr(meta_image, TS_ATTR)?.map(str::to_owned),
        transaction_id: None,
        stream_position,
        kafka: None,
        trace: trace_of(meta_image),
    }))
}

/// The key columns: the names `_key` lists, else the configured ones, read from `image`; else a
/// tombstone's own columns; else the record's `Keys` (minus eda's `pk`, unless it is all there
/// is).
fn keys_of(
    table: &TableRef,
    image: &Image,
    keys: &Image,
    key_columns: &BTreeMap<String, Vec<String>>,
    tombstone: bool,
) -> Result<Vec<KeyColumn>, StreamChangeError> {
    let qualified = table.qualified();
    let recorded = match image.get(KEY_ATTR) {
        None => None,
        Some(AttributeValue::List(names)) => Some(
            names
                .iter()
                .map(|name| match name {
                    AttributeValue::S(name) => Ok(name.clone()),
                    _ => Err(StreamChangeError::BadKeyNames),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(StreamChangeError::BadKeyNames),
    };
    if let Some(columns) = recorded.as_ref().or_else(|| key_columns.get(&qualified)) {
        return columns
            .iter()
            .map(|column| {
                let value = image.get(stored_name(column).as_str()).ok_or_else(|| {
                    StreamChangeError::MissingKey {
                        table: qualified.clone(),
                        column: column.clone(),
                    }
                })?;
                Ok(KeyColumn {
                    name: column.as_str().into(),
                    value: value.to_plain(),
                })
            })
            .collect();
    }
    let source = if tombstone { image } else { keys };
    let mut columns: Vec<KeyColumn> = row_of(source)
        .into_iter()
        .map(|(name, value)| KeyColumn {
            name: name.into(),
            value,
        })
        .collect();
    if columns.is_empty() {
        columns = image_to_plain(keys)
            .into_iter()
            .map(|(name, value)| KeyColumn {
                name: name.into(),
                value,
            })
            .collect();
    }
    Ok(columns)
}

/// An image as the source row: eda's metadata and `pk` dropped, escaped columns renamed back.
pub(crate) fn row_of(image: &Image) -> Map<String, Value> {
    image
        .iter()
        .filter_map(|(name, value)| {
            if let Some(original) = name.strip_prefix(ESCAPED_COLUMN_PREFIX) {
                Some((original.to_owned(), value.to_plain()))
            } else if name == PK_ATTR || name.starts_with('_') {
                None
            } else {
                Some((name.clone(), value.to_plain()))
            }
        })
        .collect()
}

/// The trace the daemon published the change under, from the item's `_trace`. Advisory, like
/// every trace context: a value that does not parse is left out, never a failure.
fn trace_of(image: &Image) -> Option<Arc<MessageTrace>> {
    let Some(AttributeValue::S(text)) = image.get(TRACE_ATTR) else {
        return None;
    };
    let context = TraceContext::parse(text).ok()?;
    Some(Arc::new(MessageTrace {
        context: Some(context),
        ..MessageTrace::default()
    }))
}

/// The attribute name a source column is stored under (see `apply_plan`'s item layout).
fn stored_name(column: &str) -> String {
    if column == PK_ATTR || column.starts_with('_') {
        format!("{ESCAPED_COLUMN_PREFIX}{column}")
    } else {
        column.to_owned()
    }
}

fn string_attr<'a>(
    image: &'a Image,
    name: &'static str,
) -> Result<Option<&'a str>, StreamChangeError> {
    match image.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(s)) => Ok(Some(s)),
        Some(_) => Err(StreamChangeError::NotAString(name)),
    }
}

/// `ApproximateCreationDateTime` (epoch seconds) as RFC 3339 UTC with milliseconds.
fn epoch_text(secs: f64) -> Option<String> {
    let millis = (secs * 1000.0).round() as i64;
    DateTime::from_timestamp_millis(millis).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply_plan::{plan, AttrValue, PlanOptions, TableRouting};
    use crate::change_event::into_base_event;
    use crate::stream_record::{DynamoDbStreamEvent, StreamRecord};
    use serde_json::json;

    const LAMBDA_SAMPLE: &str = include_str!("../tests/fixtures/stream_lambda_sample.json");

    fn typed(v: &AttrValue) -> AttributeValue {
        match v {
            AttrValue::S(s) => AttributeValue::S(s.clone()),
            AttrValue::N(n) => AttributeValue::N(n.clone()),
            AttrValue::Bool(b) => AttributeValue::Bool(*b),
            AttrValue::Null => AttributeValue::Null(true),
            AttrValue::M(m) => {
                AttributeValue::Map(m.iter().map(|(k, v)| (k.clone(), typed(v))).collect())
            }
            AttrValue::L(l) => AttributeValue::List(l.iter().map(typed).collect()),
            AttrValue::B(b) => AttributeValue::B(b.clone()),
        }
    }

    fn change(op: Operation, seq: &str) -> CdcEvent {
        let mut after = Map::new();
        after.insert("CUSTOMER_ID".into(), json!("7"));
        after.insert("EMAIL".into(), json!("a@b.com"));
        after.insert("_hidden".into(), json!(1));
        CdcEvent {
            table: TableRef::new("SALES", "CUSTOMERS"),
            operation: op,
            key: vec![KeyColumn {
                name: "CUSTOMER_ID".into(),
                value: json!("7"),
            }],
            after: (op != Operation::Delete).then_some(after.into()),
            before: None,
            change_sequence: seq.into(),
            source_timestamp: Some("2024-05-01T12:00:00.000".into()),
            transaction_id: None,
            stream_position: None,
            kafka: None,
            trace: None,
        }
    }

    /// The stream record DynamoDB would emit for the item the applier writes for `event`.
    fn record_of(event: &CdcEvent, name: StreamEventName) -> EventRecord {
        let options = PlanOptions {
            now_epoch_secs: 1_714_564_800,
            tombstone_ttl_secs: 86_400,
            refresh_started_at: None,
        };
        let planned = plan(
            std::slice::from_ref(event),
            &TableRouting::new("eda-cdc"),
            &options,
        );
        let item: Image = planned.writes[0]
            .item
            .iter()
            .map(|(k, v)| (k.clone(), typed(v)))
            .collect();
        let mut keys = Image::new();
        keys.insert(PK_ATTR.into(), item[PK_ATTR].clone());
        EventRecord {
            event_id: "e1".into(),
            event_name: name,
            event_version: Some("1.1".into()),
            event_source: "aws:dynamodb".into(),
            aws_region: "us-west-2".into(),
            event_source_arn: Some(
                "arn:aws:dynamodb:us-west-2:123456789012:table/eda-cdc/stream/2024".into(),
            ),
            user_identity: None,
            dynamodb: StreamRecord {
                approximate_creation_date_time: Some(1_714_564_800.0),
                keys,
                new_image: Some(item),
                old_image: None,
                sequence_number: "100".into(),
                size_bytes: 10,
                stream_view_type: None,
            },
        }
    }

    fn configured() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([("SALES.CUSTOMERS".into(), vec!["CUSTOMER_ID".into()])])
    }

    #[test]
    fn a_traced_change_comes_back_under_the_same_trace_and_only_its_item_says_so() {
        let seq = "20240501120000000000000000000000001";
        let context = crate::trace::TraceContext::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .unwrap();
        for op in [Operation::Update, Operation::Delete] {
            let mut daemon = change(op, seq);
            daemon.trace = Some(Arc::new(MessageTrace {
                context: Some(context),
                tracestate: Some("vendor=1".into()),
                correlation_id: Some("order-42".into()),
            }));
            let record = record_of(&daemon, StreamEventName::Modify);
            let image = record.dynamodb.new_image.as_ref().unwrap();
            assert_eq!(
                image.get(TRACE_ATTR),
                Some(&AttributeValue::S(context.traceparent()))
            );
            let back = record_to_change(&record, &configured()).unwrap().unwrap();
            assert_eq!(back.trace.as_ref().and_then(|t| t.context), Some(context));
            let (a, b) = (
                into_base_event(daemon, "us-west-2"),
                into_base_event(back, "us-west-2"),
            );
            assert_eq!(a.metadata["trace_id"], b.metadata["trace_id"]);
            assert_eq!(a.metadata["traceparent"], b.metadata["traceparent"]);
            // `_trace` is eda's, never a column of the row.
            assert!(b.payload.to_value()["after"].get("_trace").is_none());
        }
        // An untraced change's item has no `_trace`, and a broken one is no trace.
        let mut record = record_of(&change(Operation::Update, seq), StreamEventName::Modify);
        let image = record.dynamodb.new_image.as_mut().unwrap();
        assert!(!image.contains_key(TRACE_ATTR));
        image.insert(TRACE_ATTR.into(), AttributeValue::S("00-bad".into()));
        let back = record_to_change(&record, &configured()).unwrap().unwrap();
        assert_eq!(back.trace, None);
    }

    #[test]
    fn an_applied_change_comes_back_as_the_same_business_event() {
        let seq = "20240501120000000000000000000000001";
        let daemon = change(Operation::Update, seq);
        let record = record_of(&daemon, StreamEventName::Modify);
        let back = record_to_change(&record, &configured()).unwrap().unwrap();
        let (a, b) = (
            into_base_event(daemon, "us-west-2"),
            into_base_event(back, "us-west-2"),
        );
        assert_eq!(a.event_id, b.event_id);
        assert_eq!(a.event_type, b.event_type);
        assert_eq!(a.timestamp, b.timestamp);
        assert_eq!(a.payload.to_value()["key"], b.payload.to_value()["key"]);
        assert_eq!(a.payload.to_value()["after"], b.payload.to_value()["after"]);
        assert_eq!(
            b.payload.to_value()["after"]["_hidden"],
            1,
            "escaped column renamed back"
        );
    }

    #[test]
    fn a_row_stored_with_compressed_columns_comes_back_whole() {
        let seq = "20240501120000000000000000000000006";
        let mut daemon = change(Operation::Update, seq);
        let notes = "backorder shipped to Lisbon ".repeat(20_000);
        if let Some(after) = daemon.after.as_mut() {
            after.set("NOTES", &json!(notes));
        }
        let record = record_of(&daemon, StreamEventName::Modify);
        let image = record.dynamodb.new_image.as_ref().unwrap();
        assert!(image.contains_key(PACKED_ATTR), "stored compressed");
        assert!(!image.contains_key("NOTES"));
        let back = record_to_change(&record, &configured()).unwrap().unwrap();
        assert_eq!(
            into_base_event(back, "x").payload.to_value()["after"],
            into_base_event(daemon, "x").payload.to_value()["after"]
        );
    }

    #[test]
    fn a_tombstone_names_its_key_without_configuration() {
        let seq = "20240501120000000000000000000000002";
        let daemon = change(Operation::Delete, seq);
        let record = record_of(&daemon, StreamEventName::Insert);
        let back = record_to_change(&record, &BTreeMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(back.operation, Operation::Delete);
        assert!(back.after.is_none());
        assert_eq!(
            into_base_event(back, "x").event_id,
            into_base_event(daemon, "x").event_id
        );
    }

    #[test]
    fn a_composite_key_is_named_in_key_order_without_configuration() {
        let mut daemon = change(Operation::Update, "20240501120000000000000000000000004");
        daemon.key = vec![
            KeyColumn {
                name: "EMAIL".into(),
                value: json!("a@b.com"),
            },
            KeyColumn {
                name: "CUSTOMER_ID".into(),
                value: json!("7"),
            },
        ];
        let record = record_of(&daemon, StreamEventName::Modify);
        let back = record_to_change(&record, &BTreeMap::new())
            .unwrap()
            .unwrap();
        let names: Vec<&str> = back.key.iter().map(|k| &*k.name).collect();
        assert_eq!(names, ["EMAIL", "CUSTOMER_ID"]);
        assert_eq!(
            into_base_event(back, "x").event_id,
            into_base_event(daemon, "x").event_id
        );
    }

    #[test]
    fn a_tombstone_reaped_by_ttl_is_no_change() {
        let daemon = change(Operation::Delete, "20240501120000000000000000000000005");
        let mut record = record_of(&daemon, StreamEventName::Remove);
        record.dynamodb.old_image = record.dynamodb.new_image.take();
        record.user_identity = Some(crate::stream_record::UserIdentity {
            kind: "Service".into(),
            principal_id: "dynamodb.amazonaws.com".into(),
        });
        assert_eq!(record_to_change(&record, &BTreeMap::new()), Ok(None));
        // A REMOVE someone made by hand still records the item's last change.
        record.user_identity = None;
        assert!(record_to_change(&record, &BTreeMap::new())
            .unwrap()
            .is_some());
    }

    #[test]
    fn foreign_tables_map_stream_event_names() {
        let event: DynamoDbStreamEvent = serde_json::from_str(LAMBDA_SAMPLE).unwrap();
        let ops: Vec<_> = event
            .records
            .iter()
            .map(|r| record_to_change(r, &BTreeMap::new()).unwrap().unwrap())
            .map(|c| (c.table.qualified(), c.operation, c.change_sequence))
            .collect();
        assert_eq!(ops[0].0, "dynamodb.ExampleTableWithStream");
        assert_eq!(
            ops.iter().map(|o| o.1).collect::<Vec<_>>(),
            [Operation::Insert, Operation::Update, Operation::Delete]
        );
        assert_eq!(ops[1].2, "222");
    }

    #[test]
    fn bad_metadata_is_an_error_naming_it() {
        let mut record = record_of(
            &change(Operation::Insert, "20240501120000000000000000000000003"),
            StreamEventName::Insert,
        );
        let image = record.dynamodb.new_image.as_mut().unwrap();
        image.insert(OP_ATTR.into(), AttributeValue::S("TRUNCATE".into()));
        assert_eq!(
            record_to_change(&record, &configured()),
            Err(StreamChangeError::BadOperation("TRUNCATE".into()))
        );
    }
}
