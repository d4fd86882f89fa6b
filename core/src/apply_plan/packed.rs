//! Rows over DynamoDB's 400 KB item limit: the largest columns are stored zstd-compressed in one
//! binary attribute, [`PACKED_ATTR`] (`_zcols`), so the item fits and the row is still whole.
//!
//! The rule, applied by the plan to every item it builds (tombstones keep only the key, so they
//! never need it):
//!
//! - an item within [`MAX_ITEM_BYTES`](super::MAX_ITEM_BYTES) as DynamoDB counts it is written as
//!   it is;
//! - else its row columns, the key columns excepted, are moved into `_zcols` largest first (ties
//!   by name), until the item with `_zcols` fits; what stays keeps its own attributes, so small
//!   columns (and any index on them) are unaffected;
//! - an item that does not fit even with every column moved is refused
//!   ([`PlanError::RowTooLarge`](super::PlanError::RowTooLarge), with both sizes), and its
//!   change is dead-lettered: no object store is configured to hold it.
//!
//! `_zcols` holds one zstd frame (level [`PACK_LEVEL`], no dictionary) of a JSON object mapping
//! each moved attribute's name to its value in DynamoDB's typed JSON (`{"S": "..."}`,
//! `{"N": "1.5"}`, `{"M": {...}}`, as the low-level API and a stream record write them), so any
//! reader with zstd and a DynamoDB unmarshaller gets the attributes back: the row is the item's
//! own columns plus those. eda's readers do it with [`unpack`] (the `stream-processor`, the
//! claim-check resolution, the tests' table comparison).

use std::collections::BTreeMap;

use super::item_size::{attribute_size, item_size, MAX_ITEM_BYTES};
use super::{AttrValue, Item};
use crate::stream_record::{AttributeValue, Image};

/// The binary attribute holding an oversize row's compressed columns.
pub const PACKED_ATTR: &str = "_zcols";

/// zstd level of `_zcols`: oversize rows are rare, so this favours size over speed.
pub const PACK_LEVEL: i32 = 9;

/// Largest `_zcols` content [`unpack`] inflates, whatever the frame claims: far above what an
/// item can pack (a 400 KB frame of repeated bytes can claim more, but no row does).
pub const MAX_UNPACKED_BYTES: usize = 64 * 1024 * 1024;

/// Why `_zcols` cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackedError {
    /// The bytes are no zstd frame, or inflate past `MAX_UNPACKED_BYTES` (64 MiB).
    #[error("attribute _zcols does not decompress: {0}")]
    Decompress(String),
    /// The frame holds no typed-JSON object.
    #[error("attribute _zcols does not hold typed JSON attributes: {0}")]
    NotAttributes(String),
}

/// An item that does not fit even with every column compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DoesNotFit {
    /// The item's size as built.
    pub item_bytes: usize,
    /// Its size with every movable column in `_zcols`.
    pub packed_bytes: usize,
}

/// Makes `item` fit DynamoDB's item limit by moving columns other than `keep` (the key columns,
/// eda's metadata) into `_zcols`, largest first; `item` is unchanged when it already fits.
pub(super) fn fit_item(item: &mut Item, keep: impl Fn(&str) -> bool) -> Result<(), DoesNotFit> {
    let item_bytes = item_size(item);
    if item_bytes <= MAX_ITEM_BYTES {
        return Ok(());
    }
    let mut movable: Vec<(usize, String)> = item
        .iter()
        .filter(|(name, _)| !keep(name))
        .map(|(name, value)| (attribute_size(name, value), name.clone()))
        .collect();
    movable.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let room = MAX_ITEM_BYTES - PACKED_ATTR.len().min(MAX_ITEM_BYTES);
    let mut left = item_bytes;
    let mut moved = Item::new();
    let mut moved_bytes = 0usize;
    // What the last frame achieved (compressed bytes per item byte), to move enough before the
    // next try rather than compress once per column.
    let mut ratio: Option<f64> = None;
    let mut packed_bytes = item_bytes;
    let mut next = movable.into_iter().peekable();
    while let Some((size, name)) = next.next() {
        if let Some(value) = item.remove(&name) {
            moved.insert(name, value);
            left -= size;
            moved_bytes += size;
        }
        let expected = ratio.map_or(0.0, |r| r * moved_bytes as f64) as usize;
        if left + expected > room && next.peek().is_some() {
            continue;
        }
        let frame = pack(&moved);
        packed_bytes = left + PACKED_ATTR.len() + frame.len();
        if packed_bytes <= MAX_ITEM_BYTES {
            item.insert(PACKED_ATTR.to_owned(), AttrValue::B(frame));
            return Ok(());
        }
        ratio = Some(frame.len() as f64 / moved_bytes.max(1) as f64);
    }
    // Nothing fitted: the item goes back as it was built.
    item.append(&mut moved);
    Err(DoesNotFit {
        item_bytes,
        packed_bytes,
    })
}

/// The `_zcols` frame of `attributes`.
pub fn pack(attributes: &Item) -> Vec<u8> {
    let typed: Image = attributes
        .iter()
        .map(|(name, value)| (name.clone(), typed(value)))
        .collect();
    // Typed JSON of plain strings, numbers and maps cannot fail to serialize, nor can level 9
    // of zstd refuse a buffer.
    let json = serde_json::to_vec(&typed).unwrap_or_default();
    zstd::bulk::compress(&json, PACK_LEVEL).unwrap_or_default()
}

/// The attributes a `_zcols` frame holds, in DynamoDB's typed form.
pub fn unpack(frame: &[u8]) -> Result<Image, PackedError> {
    let json = zstd::bulk::decompress(frame, MAX_UNPACKED_BYTES)
        .map_err(|e| PackedError::Decompress(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| PackedError::NotAttributes(e.to_string()))
}

/// `item` with its `_zcols` (if any) replaced by the attributes it holds: the item as it would
/// be without the limit.
pub fn unpacked(item: &Item) -> Result<Item, PackedError> {
    let Some(AttrValue::B(frame)) = item.get(PACKED_ATTR) else {
        return Ok(item.clone());
    };
    let mut whole: Item = item
        .iter()
        .filter(|(name, _)| name.as_str() != PACKED_ATTR)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    for (name, value) in unpack(frame)? {
        whole.insert(name, untyped(&value));
    }
    Ok(whole)
}

/// A value in DynamoDB's typed form.
pub fn typed(value: &AttrValue) -> AttributeValue {
    match value {
        AttrValue::S(s) => AttributeValue::S(s.clone()),
        AttrValue::N(n) => AttributeValue::N(n.clone()),
        AttrValue::Bool(b) => AttributeValue::Bool(*b),
        AttrValue::Null => AttributeValue::Null(true),
        AttrValue::B(b) => AttributeValue::B(b.clone()),
        AttrValue::L(items) => AttributeValue::List(items.iter().map(typed).collect()),
        AttrValue::M(map) => AttributeValue::Map(
            map.iter()
                .map(|(name, value)| (name.clone(), typed(value)))
                .collect(),
        ),
    }
}

/// A typed value back as the plan's value (sets, which eda never writes, become lists).
pub fn untyped(value: &AttributeValue) -> AttrValue {
    match value {
        AttributeValue::S(s) => AttrValue::S(s.clone()),
        AttributeValue::N(n) => AttrValue::N(n.clone()),
        AttributeValue::B(b) => AttrValue::B(b.clone()),
        AttributeValue::Bool(b) => AttrValue::Bool(*b),
        AttributeValue::Null(_) => AttrValue::Null,
        AttributeValue::StringSet(items) => {
            AttrValue::L(items.iter().map(|s| AttrValue::S(s.clone())).collect())
        }
        AttributeValue::NumberSet(items) => {
            AttrValue::L(items.iter().map(|n| AttrValue::N(n.clone())).collect())
        }
        AttributeValue::BinarySet(items) => {
            AttrValue::L(items.iter().map(|b| AttrValue::B(b.clone())).collect())
        }
        AttributeValue::List(items) => AttrValue::L(items.iter().map(untyped).collect()),
        AttributeValue::Map(map) => AttrValue::M(
            map.iter()
                .map(|(name, value)| (name.clone(), untyped(value)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply_plan::tests::filler;

    fn item(columns: &[(&str, String)]) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), AttrValue::S("S.T#1".into()));
        item.insert("ID".into(), AttrValue::S("1".into()));
        item.insert("_seq".into(), AttrValue::S("1".repeat(35)));
        for (name, value) in columns {
            item.insert((*name).into(), AttrValue::S(value.clone()));
        }
        item
    }

    fn keep(name: &str) -> bool {
        name == "pk" || name == "ID" || name.starts_with('_')
    }

    #[test]
    fn an_item_within_the_limit_is_left_alone() {
        let mut small = item(&[("NOTES", filler(MAX_ITEM_BYTES - 100, false))]);
        let before = small.clone();
        assert!(item_size(&small) <= MAX_ITEM_BYTES);
        fit_item(&mut small, keep).expect("fits");
        assert_eq!(small, before);
    }

    #[test]
    fn the_largest_columns_move_into_zcols_until_the_item_fits() {
        let mut big = item(&[
            ("NOTES", filler(500 * 1024, true)),
            ("BODY", filler(100 * 1024, true)),
            ("NAME", "Ada".into()),
        ]);
        let whole = big.clone();
        fit_item(&mut big, keep).expect("fits compressed");
        assert!(item_size(&big) <= MAX_ITEM_BYTES, "{}", item_size(&big));
        assert!(big.contains_key(PACKED_ATTR));
        assert!(!big.contains_key("NOTES"), "the largest column moved");
        assert_eq!(big["BODY"], whole["BODY"], "what fits beside it stays");
        assert_eq!(big["NAME"], whole["NAME"]);
        assert_eq!(big["ID"], whole["ID"], "key columns never move");
        assert_eq!(unpacked(&big).expect("unpacks"), whole);
    }

    #[test]
    fn an_item_that_cannot_fit_even_compressed_is_refused_with_both_sizes() {
        let mut huge = item(&[("BLOB", filler(900 * 1024, false))]);
        let whole = huge.clone();
        let err = fit_item(&mut huge, keep).expect_err("random letters do not shrink enough");
        assert_eq!(err.item_bytes, item_size(&whole));
        assert!(err.packed_bytes > MAX_ITEM_BYTES, "{err:?}");
        assert_eq!(huge, whole, "left as it was built");
    }

    #[test]
    fn typed_values_go_and_come_back_whole() {
        let mut nested = BTreeMap::new();
        nested.insert("a".into(), AttrValue::N("1.5".into()));
        nested.insert(
            "b".into(),
            AttrValue::L(vec![AttrValue::Null, AttrValue::Bool(false)]),
        );
        let mut attributes = Item::new();
        attributes.insert("M".into(), AttrValue::M(nested));
        attributes.insert("S".into(), AttrValue::S("é\"".into()));
        let frame = pack(&attributes);
        let back: Item = unpack(&frame)
            .expect("unpacks")
            .iter()
            .map(|(k, v)| (k.clone(), untyped(v)))
            .collect();
        assert_eq!(back, attributes);
        // The frame is zstd over DynamoDB's typed JSON, readable without eda.
        let json = zstd::bulk::decompress(&frame, 1 << 20).expect("a zstd frame");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&json).expect("JSON")["S"],
            serde_json::json!({"S": "é\""})
        );
        assert!(matches!(
            unpack(b"not zstd"),
            Err(PackedError::Decompress(_))
        ));
    }
}
