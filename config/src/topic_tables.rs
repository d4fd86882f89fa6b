//! `kafka.topic_tables`: which source table a topic's messages belong to, for messages that do
//! not say (Qlik Replicate's default with one topic per table).
//!
//! A key is a topic name, or a pattern in which `{schema}` and `{table}` stand for parts of the
//! topic's name; the value is `SCHEMA.TABLE`, where the same placeholders stand for what the
//! pattern captured. So `"qlik.{schema}.{table}" = "{schema}.{table}"` maps every topic
//! `qlik.SALES.ORDERS` to `SALES.ORDERS` in one line, and `"orders-cdc" = "SALES.ORDERS"` one
//! topic. A placeholder captures at least one character, as few as it can when text follows it
//! (up to the first occurrence of that text) and the rest of the name when it ends the pattern.
//! A topic's own line wins over patterns; among patterns, the first in key order that matches.

use std::collections::BTreeMap;

/// The two placeholders.
const SCHEMA: &str = "{schema}";
const TABLE: &str = "{table}";

/// One piece of a pattern or a value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Text as it is.
    Text(String),
    /// `{schema}`.
    Schema,
    /// `{table}`.
    Table,
}

/// A key or value split into text and placeholders; an error says what is wrong.
fn pieces(text: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let at = rest.find('{').unwrap_or(rest.len());
        if at > 0 {
            out.push(Piece::Text(rest[..at].to_string()));
            rest = &rest[at..];
            continue;
        }
        let piece = if rest.starts_with(SCHEMA) {
            Piece::Schema
        } else if rest.starts_with(TABLE) {
            Piece::Table
        } else {
            return Err(format!(
                "{:?} is neither {{schema}} nor {{table}}",
                rest.split_inclusive('}').next().unwrap_or(rest)
            ));
        };
        if out.contains(&piece) {
            return Err("names a placeholder twice".into());
        }
        rest = &rest[if piece == Piece::Schema {
            SCHEMA.len()
        } else {
            TABLE.len()
        }..];
        out.push(piece);
    }
    Ok(out)
}

/// A topic's table, or a pattern of topic names and the table it derives from each.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// The key split into pieces (only text for a topic's own line).
    topic: Vec<Piece>,
    /// The value's schema part (before its first `.` outside placeholders).
    schema: Vec<Piece>,
    /// The value's table part.
    table: Vec<Piece>,
}

impl Rule {
    fn parse(key: &str, value: &str) -> Result<Self, String> {
        let topic = pieces(key).map_err(|e| format!("the topic {e}"))?;
        if topic.is_empty() {
            return Err("the topic is empty".into());
        }
        if topic
            .windows(2)
            .any(|w| !matches!(w[0], Piece::Text(_)) && !matches!(w[1], Piece::Text(_)))
        {
            return Err("two placeholders need text between them".into());
        }
        let value_pieces = pieces(value).map_err(|e| format!("the table {e}"))?;
        for piece in &value_pieces {
            if !matches!(piece, Piece::Text(_)) && !topic.contains(piece) {
                return Err(format!(
                    "the table uses {} but the topic does not capture it",
                    if *piece == Piece::Schema {
                        SCHEMA
                    } else {
                        TABLE
                    }
                ));
            }
        }
        // Split the value at its first `.` outside a placeholder.
        let mut schema = Vec::new();
        let mut table = Vec::new();
        let mut split = false;
        for piece in value_pieces {
            match piece {
                Piece::Text(text) if !split && text.contains('.') => {
                    let (before, after) = text.split_once('.').unwrap_or((&text, ""));
                    if !before.is_empty() {
                        schema.push(Piece::Text(before.to_string()));
                    }
                    if !after.is_empty() {
                        table.push(Piece::Text(after.to_string()));
                    }
                    split = true;
                }
                other if split => table.push(other),
                other => schema.push(other),
            }
        }
        if !split || schema.is_empty() || table.is_empty() {
            return Err("the table must be SCHEMA.TABLE".into());
        }
        Ok(Self {
            topic,
            schema,
            table,
        })
    }

    /// Whether the key is a topic's own name (no placeholder).
    fn is_exact(&self) -> bool {
        self.topic.iter().all(|p| matches!(p, Piece::Text(_)))
    }

    /// The table of `topic`, when the pattern matches it.
    fn resolve(&self, topic: &str) -> Option<(String, String)> {
        let mut captured: [Option<&str>; 2] = [None, None];
        let mut rest = topic;
        for (i, piece) in self.topic.iter().enumerate() {
            match piece {
                Piece::Text(text) => rest = rest.strip_prefix(text.as_str())?,
                placeholder => {
                    let end = match self.topic.get(i + 1) {
                        // At least one character, up to the first occurrence of the text.
                        Some(Piece::Text(next)) => 1 + rest.get(1..)?.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    if end == 0 {
                        return None;
                    }
                    let slot = usize::from(*placeholder == Piece::Table);
                    captured[slot] = Some(&rest[..end]);
                    rest = &rest[end..];
                }
            }
        }
        if !rest.is_empty() {
            return None;
        }
        let fill = |pieces: &[Piece]| -> String {
            pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(text) => text.as_str(),
                    Piece::Schema => captured[0].unwrap_or_default(),
                    Piece::Table => captured[1].unwrap_or_default(),
                })
                .collect()
        };
        Some((fill(&self.schema), fill(&self.table)))
    }
}

/// `kafka.topic_tables`, parsed: asks which table a topic's messages belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicTables {
    /// Topics' own lines.
    exact: BTreeMap<String, Rule>,
    /// Patterns, in key order.
    patterns: Vec<Rule>,
}

impl TopicTables {
    /// Parses the configured map; an error names the key and what is wrong with its line.
    pub fn parse(map: &BTreeMap<String, String>) -> Result<Self, (String, String)> {
        let mut parsed = Self::default();
        for (key, value) in map {
            let rule = Rule::parse(key, value).map_err(|e| (key.clone(), e))?;
            if rule.is_exact() {
                parsed.exact.insert(key.clone(), rule);
            } else {
                parsed.patterns.push(rule);
            }
        }
        Ok(parsed)
    }

    /// `(schema, table)` for messages of `topic` that do not name their table, if a line
    /// gives one.
    pub fn table_for(&self, topic: &str) -> Option<(String, String)> {
        if let Some(rule) = self.exact.get(topic) {
            return rule.resolve(topic);
        }
        self.patterns.iter().find_map(|rule| rule.resolve(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(lines: &[(&str, &str)]) -> TopicTables {
        let map = lines
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TopicTables::parse(&map).expect("valid")
    }

    fn table(t: &TopicTables, topic: &str) -> Option<String> {
        t.table_for(topic).map(|(s, n)| format!("{s}.{n}"))
    }

    #[test]
    fn one_pattern_line_covers_every_per_table_topic() {
        let t = tables(&[("qlik.{schema}.{table}", "{schema}.{table}")]);
        assert_eq!(
            table(&t, "qlik.SALES.ORDERS").as_deref(),
            Some("SALES.ORDERS")
        );
        assert_eq!(
            table(&t, "qlik.HR.EMP.LOYEES").as_deref(),
            Some("HR.EMP.LOYEES")
        );
        assert_eq!(table(&t, "other.SALES.ORDERS"), None);
        assert_eq!(table(&t, "qlik.SALES"), None);
        assert_eq!(table(&t, "qlik..ORDERS"), None);
    }

    #[test]
    fn a_topics_own_line_wins_and_fixed_schemas_work() {
        let t = tables(&[
            ("erp-{table}", "SALES.{table}"),
            ("erp-special", "OPS.SPECIAL"),
            ("{table}", "DBO.{table}"),
        ]);
        assert_eq!(table(&t, "erp-special").as_deref(), Some("OPS.SPECIAL"));
        assert_eq!(table(&t, "erp-ORDERS").as_deref(), Some("SALES.ORDERS"));
        assert_eq!(table(&t, "anything").as_deref(), Some("DBO.anything"));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let bad = |k: &str, v: &str| {
            TopicTables::parse(&BTreeMap::from([(k.to_string(), v.to_string())]))
                .expect_err("invalid")
                .1
        };
        assert!(bad("t", "NODOT").contains("SCHEMA.TABLE"));
        assert!(bad("t", ".T").contains("SCHEMA.TABLE"));
        assert!(bad("t-{table}", "{schema}.{table}").contains("does not capture"));
        assert!(bad("{schema}{table}", "{schema}.{table}").contains("text between"));
        assert!(bad("t-{tbl}", "S.T").contains("neither"));
        assert!(bad("{table}-{table}", "S.{table}").contains("twice"));
    }
}
