//! The configuration reference, generated from this crate's own doc comments.
//!
//! The sources of every section are compiled in, so the reference can never drift from the
//! code: [`markdown`] walks the structs from [`crate::Config`] down and prints one row
//! per key with its type, default and the field's doc comment. `docs/configuration.md` embeds the
//! output; a test fails when the two differ (run `UPDATE_DOCS=1 cargo test -p eda-config` to
//! refresh).

use crate::Config;
use std::collections::HashMap;

const SOURCES: &[&str] = &[
    include_str!("lib.rs"),
    include_str!("kafka.rs"),
    include_str!("schema_registry.rs"),
    include_str!("regions.rs"),
    include_str!("apply.rs"),
    include_str!("breaker.rs"),
    include_str!("health.rs"),
    include_str!("routing.rs"),
    include_str!("transformer.rs"),
    include_str!("jwt.rs"),
    include_str!("supervision.rs"),
    include_str!("tracing.rs"),
];

/// One documented field of one struct.
struct Field {
    name: String,
    ty: String,
    doc: String,
}

/// Fields by struct name, in source order.
fn parse_structs() -> HashMap<String, Vec<Field>> {
    let mut structs: HashMap<String, Vec<Field>> = HashMap::new();
    for source in SOURCES {
        let mut current: Option<String> = None;
        let mut doc: Vec<String> = Vec::new();
        for line in source.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("pub struct ") {
                current = rest.strip_suffix(" {").map(|name| name.trim().to_string());
                doc.clear();
            } else if line == "}" {
                current = None;
            } else if let Some(text) = line.strip_prefix("///") {
                doc.push(text.trim().to_string());
            } else if line.starts_with("#[") {
                // Attributes sit between a doc comment and its field.
            } else if let (Some(owner), Some(rest)) = (&current, line.strip_prefix("pub ")) {
                if let Some((name, ty)) = rest.split_once(": ") {
                    structs.entry(owner.clone()).or_default().push(Field {
                        name: name.to_string(),
                        ty: ty.trim_end_matches(',').to_string(),
                        doc: doc.join(" "),
                    });
                }
                doc.clear();
            } else {
                doc.clear();
            }
        }
    }
    structs
}

/// How a field's type nests another documented struct.
enum Shape<'a> {
    Leaf,
    Struct(&'a str),
    List(&'a str),
    Map(&'a str),
}

fn shape<'a>(ty: &'a str, structs: &HashMap<String, Vec<Field>>) -> Shape<'a> {
    let inner = ty
        .strip_prefix("Option<")
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(ty);
    if structs.contains_key(inner) {
        return Shape::Struct(inner);
    }
    if let Some(t) = inner.strip_prefix("Vec<").and_then(|t| t.strip_suffix('>')) {
        if structs.contains_key(t) {
            return Shape::List(t);
        }
    }
    if let Some(t) = inner
        .strip_prefix("BTreeMap<String, ")
        .and_then(|t| t.strip_suffix('>'))
    {
        if structs.contains_key(t) {
            return Shape::Map(t);
        }
    }
    Shape::Leaf
}

fn default_of(defaults: &toml::Value, path: &[String]) -> String {
    let mut value = defaults;
    for part in path {
        match value.get(part.as_str()) {
            Some(next) => value = next,
            None => return "(unset)".into(),
        }
    }
    match value {
        toml::Value::Table(t) if t.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

fn walk(
    structs: &HashMap<String, Vec<Field>>,
    defaults: &toml::Value,
    owner: &str,
    path: &mut Vec<String>,
    out: &mut String,
) {
    let Some(fields) = structs.get(owner) else {
        return;
    };
    for field in fields {
        path.push(field.name.clone());
        let key = path.join(".");
        match shape(&field.ty, structs) {
            Shape::Struct(inner) => walk(structs, defaults, inner, path, out),
            Shape::List(inner) => {
                out.push_str(&format!(
                    "| `{key}` | list of tables | `[]` | {} |\n",
                    field.doc
                ));
                path.pop();
                path.push(format!("{}[]", field.name));
                walk(structs, defaults, inner, path, out);
            }
            Shape::Map(inner) => {
                out.push_str(&format!(
                    "| `{key}` | table of tables | `{{}}` | {} |\n",
                    field.doc
                ));
                path.push("<name>".into());
                walk(structs, defaults, inner, path, out);
                path.pop();
            }
            Shape::Leaf => {
                let default = default_of(defaults, path).replace('|', "\\|");
                let ty = field.ty.replace('|', "\\|");
                out.push_str(&format!(
                    "| `{key}` | `{ty}` | `{default}` | {} |\n",
                    field.doc
                ));
            }
        }
        path.pop();
    }
}

/// The reference as a Markdown table: key, type, default, meaning.
pub fn markdown() -> String {
    let structs = parse_structs();
    let defaults = toml::Value::try_from(Config::default())
        .unwrap_or_else(|_| toml::Value::Table(Default::default()));
    let mut out = String::from("| key | type | default | meaning |\n|---|---|---|---|\n");
    walk(&structs, &defaults, "Config", &mut Vec::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_key_of_the_defaults_is_documented() {
        let table = markdown();
        let defaults = toml::Value::try_from(Config::default()).expect("defaults serialize");
        let mut missing = Vec::new();
        fn leaves(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
            match value {
                toml::Value::Table(t) if !t.is_empty() => {
                    for (k, v) in t {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        leaves(&key, v, out);
                    }
                }
                _ => out.push(prefix.to_string()),
            }
        }
        let mut keys = Vec::new();
        leaves("", &defaults, &mut keys);
        for key in keys {
            // A section whose keys are all unset serializes as an empty table: documented when
            // its keys are.
            if !table.contains(&format!("| `{key}` |")) && !table.contains(&format!("| `{key}.")) {
                missing.push(key);
            }
        }
        assert!(missing.is_empty(), "undocumented keys: {missing:?}");
    }

    #[test]
    fn rows_carry_doc_comments_and_defaults() {
        let table = markdown();
        assert!(table.contains(
            "| `kafka.drain_timeout_ms` | `u64` | `10000` | How long a graceful shutdown (SIGTERM) takes at most"
        ));
        assert!(table.contains("| `kafka.sasl.password` |"));
        assert!(table.contains("| `transformer.rules[].pattern` |"));
        assert!(table.contains("| `transformer.geo.by_key.<name>.country` |"));
    }
}

/// Keeps a generated section of a workspace document current: in `doc` (a path from the
/// workspace root, e.g. `docs/configuration.md`), the text between `<!-- {name}:start -->` and
/// `<!-- {name}:end -->` must equal `generated`. When it differs and `UPDATE_DOCS` is set, the
/// section is rewritten; otherwise the error says to run `refresh`. The tests of every generated
/// reference (this one, the metrics reference) call it.
pub fn sync_doc_section(
    doc: &str,
    name: &str,
    generated: &str,
    refresh: &str,
) -> Result<(), String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(doc);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (start_marker, end_marker) = (
        format!("<!-- {name}:start -->\n"),
        format!("<!-- {name}:end -->"),
    );
    let start = text
        .find(&start_marker)
        .ok_or_else(|| format!("{doc} has no {start_marker:?}"))?
        + start_marker.len();
    let end = text
        .find(&end_marker)
        .ok_or_else(|| format!("{doc} has no {end_marker:?}"))?;
    if text[start..end] == *generated {
        return Ok(());
    }
    if std::env::var_os("UPDATE_DOCS").is_none() {
        return Err(format!(
            "{doc}'s {name} is stale: run UPDATE_DOCS=1 {refresh}"
        ));
    }
    let updated = format!("{}{}{}", &text[..start], generated, &text[end..]);
    std::fs::write(&path, updated).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod doc {
    /// `docs/configuration.md` holds the generated reference, byte for byte.
    #[test]
    fn configuration_doc_is_current() {
        super::sync_doc_section(
            "docs/configuration.md",
            "config-reference",
            &super::markdown(),
            "cargo test -p eda-config",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
}
