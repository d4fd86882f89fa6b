//! The few JSON writers the lean calls need: a quoted, escaped string and a DynamoDB attribute
//! value, appended to a byte buffer.

use base64::Engine;
use eda_core::apply_plan::AttrValue;

/// Appends `text` as a JSON string: quoted, escaped once, the same bytes serde_json writes
/// ([`eda_core::json_string`]).
pub(crate) fn string(out: &mut Vec<u8>, text: &str) {
    eda_core::json_string::write(out, text);
}

/// Appends `"name":` (a key that needs no escaping: the protocol's own member names).
pub(crate) fn key(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends `value` in DynamoDB's JSON form: `{"S":"…"}`, `{"N":"…"}`, `{"BOOL":true}`,
/// `{"NULL":true}`, `{"M":{…}}`, `{"L":[…]}`, `{"B":"<base64>"}`.
pub(crate) fn attribute(out: &mut Vec<u8>, value: &AttrValue) {
    match value {
        AttrValue::S(s) => {
            out.extend_from_slice(b"{\"S\":");
            string(out, s);
        }
        AttrValue::N(n) => {
            out.extend_from_slice(b"{\"N\":");
            string(out, n);
        }
        AttrValue::Bool(b) => {
            out.extend_from_slice(if *b {
                b"{\"BOOL\":true".as_slice()
            } else {
                b"{\"BOOL\":false".as_slice()
            });
        }
        AttrValue::Null => out.extend_from_slice(b"{\"NULL\":true"),
        AttrValue::M(map) => {
            out.extend_from_slice(b"{\"M\":");
            attribute_map(out, map.iter());
        }
        AttrValue::L(list) => {
            out.extend_from_slice(b"{\"L\":[");
            for (i, item) in list.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                attribute(out, item);
            }
            out.push(b']');
        }
        AttrValue::B(bytes) => {
            out.extend_from_slice(b"{\"B\":");
            string(
                out,
                &base64::engine::general_purpose::STANDARD.encode(bytes),
            );
        }
    }
    out.push(b'}');
}

/// Appends a map of attribute values: `{"name":{…},…}`.
pub(crate) fn attribute_map<'a>(
    out: &mut Vec<u8>,
    entries: impl Iterator<Item = (&'a String, &'a AttrValue)>,
) {
    out.push(b'{');
    for (i, (name, value)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, name);
        out.push(b':');
        attribute(out, value);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn attribute_values_are_written_as_dynamodb_json() {
        let value = AttrValue::M(BTreeMap::from([
            ("b".to_string(), AttrValue::B(vec![0, 255, 1])),
            (
                "l".to_string(),
                AttrValue::L(vec![AttrValue::N("1.5".into()), AttrValue::Null]),
            ),
            (
                "s".to_string(),
                AttrValue::S("line\n\"quoted\" é \u{1}".into()),
            ),
            ("t".to_string(), AttrValue::Bool(true)),
        ]));
        let mut out = Vec::new();
        attribute(&mut out, &value);
        let parsed: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!({"M": {
                "b": {"B": "AP8B"},
                "l": {"L": [{"N": "1.5"}, {"NULL": true}]},
                "s": {"S": "line\n\"quoted\" é \u{1}"},
                "t": {"BOOL": true},
            }})
        );
    }
}
