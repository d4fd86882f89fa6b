//! The row image against serde_json: reading, writing and indexing agree with it.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn row(text: &str) -> RowImage {
    let raw = RawValue::from_string(text.to_owned()).expect("valid JSON");
    RowImage::from_raw(&raw).expect("an object")
}

#[test]
fn columns_read_back_in_source_order_with_their_types() {
    let r = row(r#" { "B" : "x" , "A":12.5e1,"C":true,"D":null,"E":{"f":[1,"}"]},"F":-3 } "#);
    let names: Vec<&str> = r.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["B", "A", "C", "D", "E", "F"]);
    assert_eq!(r.get("B"), Some(Cell::Str("x")));
    assert_eq!(r.get("A"), Some(Cell::Number("12.5e1")));
    assert_eq!(r.get("C"), Some(Cell::Bool(true)));
    assert_eq!(r.get("D"), Some(Cell::Null));
    assert_eq!(
        r.get("E").map(|c| c.to_value()),
        Some(json!({"f": [1, "}"]}))
    );
    assert_eq!(r.get("F").map(|c| c.to_value()), Some(json!(-3)));
    assert_eq!(r.get("G"), None);
}

#[test]
fn escaped_names_and_values_are_decoded() {
    let r = row(r#"{"na\"me":"a\\b\u00e9\n","plain":"ok"}"#);
    assert_eq!(r.get("na\"me"), Some(Cell::Str("a\\bé\n")));
    assert_eq!(r.get("plain"), Some(Cell::Str("ok")));
}

#[test]
fn a_repeated_name_reads_as_its_last_value_like_a_map() {
    let r = row(r#"{"A":"1","A":"2"}"#);
    assert_eq!(r.get("A"), Some(Cell::Str("2")));
    assert_eq!(
        r.to_map(),
        json!({"A": "2"}).as_object().cloned().unwrap_or_default()
    );
}

#[test]
fn what_is_not_an_object_is_refused() {
    for (text, found) in [
        ("[1]", "an array"),
        ("\"x\"", "a string"),
        ("3", "a number"),
    ] {
        let raw = RawValue::from_string(text.to_owned()).expect("valid JSON");
        assert_eq!(
            RowImage::from_raw(&raw).err(),
            Some(RowError::NotAnObject { found })
        );
    }
}

#[test]
fn serializing_writes_what_the_rows_map_would() {
    let text = r#"{"Z":"1","A":2.5,"B":{"c":[true,null]},"D":"q\"uote","Z":"2"}"#;
    let map: Map<String, Value> = serde_json::from_str(text).expect("an object");
    assert_eq!(
        serde_json::to_string(&row(text)).expect("serializes"),
        serde_json::to_string(&map).expect("serializes")
    );
}

#[test]
fn rows_know_whether_a_string_may_need_trimming() {
    assert!(!row(r#"{"A":"x","B":1,"C":"q\"r"}"#).may_have_padded_strings());
    assert!(row(r#"{"A":"x","B":"y "}"#).may_have_padded_strings());
    assert!(row(r#"{"A":"\tx"}"#).may_have_padded_strings());
    assert!(row(r#"{"A":"caf\u00e9"}"#).may_have_padded_strings());
    let clean = row(r#"{"A":"x","B":2}"#);
    assert!(!clean.may_have_padded_strings());
    let mut set = clean.clone();
    set.set("C", &json!(" y"));
    assert!(set.may_have_padded_strings());
}

#[test]
fn rewriting_changes_only_what_it_answers_for() {
    let r = row(r#"{"A":" x ","B":1,"C":"Y@Z.COM"}"#);
    assert!(r.rewrite_strings(|_, _| None).is_none());
    let out = r
        .rewrite_strings(|name, v| (name == "A").then(|| v.trim().to_owned()))
        .expect("changed");
    assert_eq!(out.as_json(), r#"{"A":"x","B":1,"C":"Y@Z.COM"}"#);
    assert_eq!(out.get("A"), Some(Cell::Str("x")));
}

#[test]
fn rewriting_one_column_edits_each_of_its_string_occurrences_only() {
    // "A" twice, an escaped name that decodes to "A", a number under the name "A", and a
    // column whose name only shares the length.
    let r = row(r#"{"A":"a","B":"a","\u0041":"b","A":7,"Z":"a","A":"c"}"#);
    let out = r
        .rewrite_column("A", |v| Some(v.to_uppercase()))
        .expect("changed");
    assert_eq!(
        out.as_json(),
        r#"{"A":"A","B":"a","A":"B","A":7,"Z":"a","A":"C"}"#
    );
    assert!(r.rewrite_column("A", |_| None).is_none());
    assert!(r.rewrite_column("Q", |_| Some(String::new())).is_none());
}

proptest! {
    #[test]
    fn any_object_round_trips_through_the_index(
        map in proptest::collection::btree_map(
            "[a-zA-Z_\"\\\\é ]{0,8}",
            prop_oneof![
                any::<i64>().prop_map(Value::from),
                any::<bool>().prop_map(Value::from),
                "[ -~é\n\"\\\\]{0,12}".prop_map(Value::from),
                Just(Value::Null),
                Just(json!({"n": [1, {"x": "]"}]})),
            ],
            0..8,
        )
    ) {
        let map: Map<String, Value> = map.into_iter().collect();
        let text = serde_json::to_string(&map).expect("serializes");
        let indexed = row(&text);
        prop_assert_eq!(indexed.to_map(), map.clone());
        prop_assert_eq!(serde_json::to_string(&indexed).ok(), Some(text.clone()));
        let built = RowImage::from_map(&map);
        prop_assert_eq!(built.to_map(), map.clone());
        // Trimming may skip a row only when no string of it would change.
        let untrimmed = |r: &RowImage| r.iter().any(|(_, c)| matches!(c, Cell::Str(v) if v.trim() != v));
        for r in [&indexed, &built] {
            prop_assert!(!untrimmed(r) || r.may_have_padded_strings());
        }
        // The writer's index is the one a scan of its text builds.
        let scanned = RowImage::parse(built.as_json()).expect("the writer writes JSON");
        prop_assert_eq!(built.iter().collect::<Vec<_>>(), scanned.iter().collect::<Vec<_>>());
        prop_assert_eq!(serde_json::from_str::<Map<String, Value>>(built.as_json()).ok(), Some(map.clone()));
        // Rebuilt rows too: every string trimmed of "a", and one column set.
        let rewritten = indexed.rewrite_strings(|_, v| v.contains('a').then(|| v.replace('a', "")));
        if let Some(rewritten) = rewritten {
            let scanned = RowImage::parse(rewritten.as_json()).expect("JSON");
            prop_assert_eq!(rewritten.iter().collect::<Vec<_>>(), scanned.iter().collect::<Vec<_>>());
        }
        let mut set = indexed.clone();
        set.set("é\"", &json!({"k": ["\u{1}"]}));
        let scanned = RowImage::parse(set.as_json()).expect("JSON");
        prop_assert_eq!(set.iter().collect::<Vec<_>>(), scanned.iter().collect::<Vec<_>>());
    }

    /// Rows as Qlik writes them (compact, plain strings: the indexer's one-step path), with
    /// one byte changed, removed or added: the index takes exactly the text serde_json takes
    /// as an object, and reads the same columns from it.
    #[test]
    fn a_damaged_compact_row_is_refused_or_read_as_serde_reads_it(
        map in proptest::collection::btree_map(
            "[A-Z_]{1,6}",
            prop_oneof![
                4 => "[a-z .@-]{0,20}".prop_map(Value::from),
                1 => any::<i32>().prop_map(Value::from),
                1 => Just(Value::Null),
            ],
            1..6,
        ),
        at in any::<prop::sample::Index>(),
        edit in 0u8..3,
        byte in prop::sample::select(b"\"\\:,{}[] \x01\ta0nu".to_vec()),
    ) {
        let map: Map<String, Value> = map.into_iter().collect();
        let mut text = serde_json::to_string(&map).expect("serializes").into_bytes();
        let i = at.index(text.len());
        match edit {
            0 => text[i] = byte,
            1 => { text.remove(i); }
            _ => text.insert(i, byte),
        }
        let Ok(text) = String::from_utf8(text) else { return Ok(()) };
        let serde = serde_json::from_str::<Map<String, Value>>(&text);
        match RowImage::parse(&text) {
            Ok(indexed) => prop_assert_eq!(Some(indexed.to_map()), serde.ok(), "{:?}", text),
            Err(e) => prop_assert!(serde.is_err(), "{:?} refused: {}", text, e),
        }
    }

    #[test]
    fn a_string_from_bytes_is_written_as_the_same_text_or_refused_whole(
        bytes in proptest::collection::vec(
            prop_oneof![3 => 0x20u8..0x7f, 1 => any::<u8>()],
            0..24,
        )
    ) {
        let mut from_bytes = RowWriter::with_capacity(32);
        from_bytes.push_str("A", "x");
        let pushed = from_bytes.push_utf8("B", &bytes);
        let from_bytes = from_bytes.finish();
        match std::str::from_utf8(&bytes) {
            Ok(text) => {
                prop_assert!(pushed.is_ok());
                let mut from_str = RowWriter::with_capacity(32);
                from_str.push_str("A", "x");
                from_str.push_str("B", text);
                let from_str = from_str.finish();
                prop_assert_eq!(from_bytes.as_json(), from_str.as_json());
                prop_assert_eq!(from_bytes.get("B"), Some(Cell::Str(text)));
                prop_assert_eq!(from_bytes.may_have_padded_strings(), from_str.may_have_padded_strings());
                let scanned = RowImage::parse(from_bytes.as_json()).expect("JSON");
                prop_assert_eq!(from_bytes.iter().collect::<Vec<_>>(), scanned.iter().collect::<Vec<_>>());
            }
            // Not UTF-8: an error, and the row keeps only what came before.
            Err(_) => {
                prop_assert!(pushed.is_err());
                prop_assert_eq!(from_bytes.as_json(), r#"{"A":"x"}"#);
            }
        }
    }
}
