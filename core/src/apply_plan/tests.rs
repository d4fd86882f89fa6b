//! Unit tests of the apply plan: item layout, coalescing, REFRESH and key changes.

use super::*;
use crate::cdc::KeyColumn;
use serde_json::{json, Map};

pub(super) fn event(op: Operation, id: i64, seq: &str, name: &str) -> CdcEvent {
    let mut after = Map::new();
    after.insert("ID".into(), json!(id));
    after.insert("NAME".into(), json!(name));
    CdcEvent {
        table: TableRef::new("dbo", "users"),
        operation: op,
        key: vec![KeyColumn {
            name: "ID".into(),
            value: json!(id),
        }],
        after: (op != Operation::Delete).then_some(after.clone().into()),
        before: (op == Operation::Delete).then_some(after.into()),
        change_sequence: seq.into(),
        source_timestamp: Some("2023-09-11T03:23:25.000".into()),
        transaction_id: None,
        stream_position: None,
        kafka: None,
        trace: None,
    }
}

pub(super) fn seq(n: u64) -> String {
    format!("20230911032325{n:021}")
}

pub(super) const OPTS: PlanOptions = PlanOptions {
    now_epoch_secs: 1_700_000_000,
    tombstone_ttl_secs: 86_400,
    refresh_started_at: None,
};

#[test]
fn item_layout_matches_the_module_doc() {
    let mut e = event(Operation::Insert, 7, &seq(1), "a|b");
    if let Some(after) = e.after.as_mut() {
        after.set("_seq", &json!("evil"));
        after.set("pk", &json!("evil"));
    }
    let p = plan(&[e], &TableRouting::new("cdc"), &OPTS);
    let w = &p.writes[0];
    assert_eq!(w.table_name, "cdc");
    assert_eq!(w.pk(), "dbo.users#7");
    assert_eq!(w.item["_seq"], AttrValue::S(seq(1)));
    assert_eq!(w.item["_col__seq"], AttrValue::S("evil".into()));
    assert_eq!(w.item["_col_pk"], AttrValue::S("evil".into()));
    assert_eq!(w.item["NAME"], AttrValue::S("a|b".into()));
    assert_eq!(w.item["ID"], AttrValue::N("7".into()));
    assert_eq!(w.item["_deleted"], AttrValue::Bool(false));
    assert_eq!(w.item["_op"], AttrValue::S("INSERT".into()));
    assert_eq!(w.item["_table"], AttrValue::S("dbo.users".into()));
    assert!(!w.item.contains_key("_ttl"));
}

#[test]
fn the_shape_fingerprints_the_attribute_names_and_not_the_values() {
    let update = |id, n, name| {
        let p = plan(
            &[event(Operation::Update, id, &seq(n), name)],
            &TableRouting::new("cdc"),
            &OPTS,
        );
        p.writes[0].item.clone()
    };
    let a = update(7, 1, "a");
    // Other values, another key: the same names, so the same shape.
    assert_eq!(a[SHAPE_ATTR], update(8, 2, "something longer")[SHAPE_ATTR]);
    assert_eq!(a[SHAPE_ATTR], AttrValue::S(shape_of(&a)));
    // A dropped column, a tombstone, an added column: other names, other shapes.
    let mut dropped = a.clone();
    dropped.remove("NAME");
    let tombstone = plan(
        &[event(Operation::Delete, 7, &seq(3), "a")],
        &TableRouting::new("cdc"),
        &OPTS,
    )
    .writes[0]
        .item
        .clone();
    let mut added = a.clone();
    added.insert("EMAIL".into(), AttrValue::Null);
    let shapes = [&a, &dropped, &tombstone, &added].map(shape_of);
    for (i, x) in shapes.iter().enumerate() {
        for y in &shapes[i + 1..] {
            assert_ne!(x, y);
        }
    }
    // Stored in tables and compared by later writes: it must not change between versions.
    let pinned: Item = [
        ("ID", AttrValue::N("1".into())),
        ("pk", AttrValue::S("x".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(shape_of(&pinned), "756bf70f38fd61b3");
}

#[test]
fn key_values_are_escaped_so_distinct_keys_stay_distinct() {
    let t = TableRef::new("s", "t");
    let a = render_pk(&t, [json!("a|b"), json!("c")].iter());
    let b = render_pk(&t, [json!("a"), json!("b|c")].iter());
    assert_ne!(a, b);
    assert_eq!(a, "s.t#a\\|b|c");
    assert_eq!(
        render_pk(&t, [json!("1")].iter()),
        render_pk(&t, [json!(1)].iter())
    );
    assert_ne!(
        render_pk(&t, [Value::Null].iter()),
        render_pk(&t, [json!("\\N")].iter())
    );
}

#[test]
fn delete_is_a_tombstone_with_ttl_and_key() {
    let p = plan(
        &[event(Operation::Delete, 7, &seq(2), "x")],
        &TableRouting::new("cdc"),
        &OPTS,
    );
    let w = &p.writes[0];
    assert!(w.tombstone);
    assert_eq!(w.item["_deleted"], AttrValue::Bool(true));
    assert_eq!(w.item["_ttl"], AttrValue::N("1700086400".into()));
    assert_eq!(w.item["ID"], AttrValue::N("7".into()));
    assert!(!w.item.contains_key("NAME"));
}

#[test]
fn highest_sequence_wins_even_when_it_arrives_first() {
    let events = [
        event(Operation::Update, 1, &seq(5), "newest"),
        event(Operation::Update, 1, &seq(3), "older redelivery"),
        event(Operation::Insert, 2, &seq(4), "other key"),
    ];
    let p = plan(&events, &TableRouting::new("cdc"), &OPTS);
    assert_eq!(p.writes.len(), 2);
    assert_eq!(p.writes[0].winner, 0);
    assert_eq!(p.writes[0].covers, vec![0, 1]);
    assert_eq!(p.writes[0].item["NAME"], AttrValue::S("newest".into()));
    assert_eq!(p.writes[1].covers, vec![2]);
}

#[test]
fn equal_sequences_go_to_the_later_position() {
    let events = [
        event(Operation::Update, 1, &seq(5), "first"),
        event(Operation::Update, 1, &seq(5), "second"),
    ];
    let p = plan(&events, &TableRouting::new("cdc"), &OPTS);
    assert_eq!(p.writes[0].winner, 1);
}

#[test]
fn bad_sequences_are_rejected_not_misordered() {
    let events = [
        event(Operation::Update, 1, "123", "short"),
        event(Operation::Insert, 1, &seq(1), "ok"),
    ];
    let p = plan(&events, &TableRouting::new("cdc"), &OPTS);
    assert_eq!(p.rejected.len(), 1);
    assert_eq!(p.rejected[0].index, 0);
    assert!(matches!(p.rejected[0].error, PlanError::BadSequence { .. }));
    assert_eq!(p.writes.len(), 1);
}

#[test]
fn refresh_gets_a_synthetic_sequence_below_later_changes() {
    let mut r = event(Operation::Refresh, 1, "", "loaded");
    r.source_timestamp = Some("2023-09-11T03:23:25.123".into());
    let s = effective_sequence(&r, &OPTS).expect("has a time");
    assert_eq!(s, format!("20230911032325{:021}", 0));
    assert!(s < seq(1));
    r.source_timestamp = None;
    assert_eq!(
        effective_sequence(&r, &OPTS),
        Err(PlanError::RefreshWithoutTime)
    );
    let opts = PlanOptions {
        refresh_started_at: Some(0),
        ..OPTS
    };
    assert_eq!(
        effective_sequence(&r, &opts),
        Ok(format!("19700101000000{:021}", 0))
    );
}

#[test]
fn routing_overrides_pick_the_table() {
    let users = TableRef::new("dbo", "users");
    let routing = TableRouting::new("default").with_override(&users, "users-table");
    assert_eq!(routing.target(&users), "users-table");
    assert_eq!(routing.target(&TableRef::new("dbo", "x")), "default");
}

#[test]
fn a_key_changing_update_split_first_tombstones_the_old_key() {
    let mut e = event(Operation::Update, 2, &seq(9), "moved");
    let mut before = Map::new();
    before.insert("ID".into(), json!(1));
    e.before = Some(before.into());
    let p = plan(
        &split_key_changes(vec![e]),
        &TableRouting::new("cdc"),
        &OPTS,
    );
    assert_eq!(p.writes.len(), 2);
    assert_eq!(p.writes[0].pk(), "dbo.users#1");
    assert!(p.writes[0].tombstone);
    assert_eq!(p.writes[0].covers, [0]);
    assert_eq!(p.writes[1].pk(), "dbo.users#2");
    assert!(!p.writes[1].tombstone);
    assert_eq!(p.writes[1].covers, [1]);
}

/// Text of `len` bytes: repeated words (zstd shrinks it a lot) or pseudo-random letters (it
/// does not).
pub(super) fn filler(len: usize, compressible: bool) -> String {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|i| {
            if compressible {
                b"invoice paid in full "[i % 21] as char
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (b'a' + (x % 26) as u8) as char
            }
        })
        .collect()
}

#[test]
fn a_row_over_the_item_limit_is_written_with_its_columns_compressed() {
    let e = event(Operation::Update, 7, &seq(2), &filler(600 * 1024, true));
    let p = plan(&[e], &TableRouting::new("cdc"), &OPTS);
    assert!(p.rejected.is_empty(), "{:?}", p.rejected);
    let item = &p.writes[0].item;
    assert!(item_size(item) <= MAX_ITEM_BYTES);
    assert!(matches!(item.get(PACKED_ATTR), Some(AttrValue::B(_))));
    assert!(!item.contains_key("NAME"));
    assert_eq!(
        item["ID"],
        AttrValue::N("7".into()),
        "the key stays readable"
    );
    let whole = unpacked(item).expect("unpacks");
    assert_eq!(
        whole["NAME"],
        AttrValue::S(filler(600 * 1024, true)),
        "the row is whole"
    );
}

#[test]
fn a_row_too_large_even_compressed_is_refused_and_the_change_before_it_still_written() {
    let small = event(Operation::Insert, 7, &seq(1), "small");
    let huge = event(Operation::Update, 7, &seq(2), &filler(900 * 1024, false));
    let p = plan(&[small, huge], &TableRouting::new("cdc"), &OPTS);
    assert_eq!(p.rejected.len(), 1);
    assert_eq!(p.rejected[0].index, 1);
    assert!(matches!(
        p.rejected[0].error,
        PlanError::RowTooLarge { item_bytes, packed_bytes }
            if item_bytes > MAX_ITEM_BYTES && packed_bytes > MAX_ITEM_BYTES
    ));
    assert_eq!(p.rejected[0].error.class(), ErrorClass::TooLarge);
    assert!(p.rejected[0]
        .error
        .to_string()
        .contains("409600-byte item limit"));
    // Planned again without it: the INSERT before it is written, as if applied alone.
    assert_eq!(p.writes.len(), 1);
    assert_eq!(p.writes[0].winner, 0);
    assert_eq!(p.writes[0].covers, [0]);
    assert_eq!(p.writes[0].item["NAME"], AttrValue::S("small".into()));
}

/// A column becomes the attribute it became through its `serde_json` value, for every kind of
/// column: strings with escapes and non-ASCII text, numbers serde_json writes back differently
/// (`1.50`, `1e3`, `-0`, beyond `u64`), booleans, null, objects and arrays.
#[test]
fn a_cell_converts_as_its_json_value_did() {
    let row = crate::cdc::RowImage::parse(
        r#"{"S":"plain","E":"quote \" back \\ tab \t é ✓","I":42,"NEG":-7,"F":1.50,"EXP":1e3,
            "Z":-0,"BIG":123456789012345678901234567890,"T":true,"FALSE":false,"N":null,
            "O":{"a":[1,"x",{"b":null}]},"A":[1.0,"y",false],"S":"again"}"#,
    )
    .expect("a JSON object");
    let mut seen = 0;
    for (name, cell) in row.iter() {
        assert_eq!(
            AttrValue::from_cell(cell),
            AttrValue::from_json(&cell.to_value()),
            "column {name}"
        );
        seen += 1;
    }
    assert_eq!(seen, 14);
}
