//! The PartiQL statements eda sends in `BatchExecuteStatement`, read for the sink.
//!
//! Like [`condition`](super::condition), this understands **eda's statements, not the
//! language**: `INSERT INTO "T" VALUE {'a': ?, …}` and `UPDATE "T" SET "a"=?, … WHERE "k"=? [AND
//! "x" <op> ?]…` (`actors/src/aws/dynamodb/batch.rs` writes them), with `"…"` identifiers and
//! `'…'` strings whose quote is doubled inside, `?` parameters bound in order, and the
//! comparisons `= <> < <= > >=`. Anything else is refused with a `ValidationError` that names
//! it. DynamoDB Local stays the reference for what DynamoDB does with them.

use super::condition::{Comparator, Condition, Operand};
use serde_json::{Map, Value};

/// A statement, its parameters bound.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement<P = Value> {
    /// `INSERT INTO table VALUE {…}`: the whole item; refused where one exists.
    Insert {
        /// The table.
        table: String,
        /// The item's attributes, in the statement's order (no name twice).
        item: Vec<(String, P)>,
    },
    /// `UPDATE table SET … WHERE …`: where an item exists under the key and the rest of the
    /// `WHERE` holds, each `SET` attribute takes its value.
    Update {
        /// The table.
        table: String,
        /// The key attribute and its value (the `WHERE`'s equality on the table's hash key).
        key: Map<String, Value>,
        /// The attributes set.
        set: Vec<(String, P)>,
        /// The `WHERE` (the key's equality included).
        condition: Condition,
    },
}

impl<P> Statement<P> {
    /// The statement's table.
    pub fn table(&self) -> &str {
        match self {
            Statement::Insert { table, .. } | Statement::Update { table, .. } => table,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A keyword or bare word, upper-cased.
    Word(String),
    /// `"…"`.
    Identifier(String),
    /// `'…'`.
    Text(String),
    /// `?`.
    Parameter,
    Op(Comparator),
    Punct(char),
}

/// Reads `text` with `parameters` bound in order; `hash` is the table's hash key attribute
/// (the `UPDATE`'s `WHERE` must bind it with `=`). The error is a `ValidationError`'s message.
pub fn parse(
    text: &str,
    parameters: &[Value],
    hash: impl Fn(&str) -> String,
) -> Result<Statement, String> {
    parse_with(text, parameters, |value| Ok(value.clone()), hash)
}

/// [`parse`] with parameters of any form (the sink's fast path keeps them as their JSON text):
/// a `SET` or `VALUE` parameter is kept as it is, and `value` reads the ones the `WHERE`
/// compares or keys by.
pub fn parse_with<P: Clone>(
    text: &str,
    parameters: &[P],
    value: impl Fn(&P) -> Result<Value, String>,
    hash: impl Fn(&str) -> String,
) -> Result<Statement<P>, String> {
    let mut reader = Reader {
        tokens: tokenize(text)?,
        at: 0,
        parameters,
        value: &value,
        bound: 0,
        text,
    };
    let statement = match reader.word()?.as_str() {
        "INSERT" => reader.insert()?,
        "UPDATE" => reader.update(&hash)?,
        other => return Err(reader.unsupported(&format!("a statement starting {other}"))),
    };
    if reader.at != reader.tokens.len() {
        return Err(reader.unsupported("trailing tokens"));
    }
    if reader.bound != parameters.len() {
        return Err(format!(
            "Number of parameters in request and statement don't match: {} given, {} used",
            parameters.len(),
            reader.bound
        ));
    }
    Ok(statement)
}

struct Reader<'a, P> {
    tokens: Vec<Token>,
    at: usize,
    parameters: &'a [P],
    /// Reads a parameter the `WHERE` compares.
    value: &'a dyn Fn(&P) -> Result<Value, String>,
    bound: usize,
    text: &'a str,
}

impl<P: Clone> Reader<'_, P> {
    fn unsupported(&self, what: &str) -> String {
        format!(
            "the sink reads eda's PartiQL statements only; {what} in {:?}",
            self.text
        )
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn word(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(word)) => Ok(word),
            _ => Err(self.unsupported("a keyword expected")),
        }
    }

    fn expect_word(&mut self, wanted: &str) -> Result<(), String> {
        match self.next() {
            Some(Token::Word(word)) if word == wanted => Ok(()),
            _ => Err(self.unsupported(&format!("{wanted} expected"))),
        }
    }

    fn expect(&mut self, wanted: char) -> Result<(), String> {
        match self.next() {
            Some(Token::Punct(c)) if c == wanted => Ok(()),
            _ => Err(self.unsupported(&format!("{wanted:?} expected"))),
        }
    }

    fn identifier(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Identifier(name)) => Ok(name),
            _ => Err(self.unsupported("a \"quoted\" name expected")),
        }
    }

    fn parameter(&mut self) -> Result<P, String> {
        match self.next() {
            Some(Token::Parameter) => {
                let value = self.parameters.get(self.bound).cloned().ok_or_else(|| {
                    "Number of parameters in request and statement don't match".to_string()
                })?;
                self.bound += 1;
                Ok(value)
            }
            _ => Err(self.unsupported("a ? parameter expected")),
        }
    }

    fn peek_punct(&self, c: char) -> bool {
        self.tokens.get(self.at) == Some(&Token::Punct(c))
    }

    fn insert(&mut self) -> Result<Statement<P>, String> {
        self.expect_word("INTO")?;
        let table = self.identifier()?;
        self.expect_word("VALUE")?;
        self.expect('{')?;
        let mut item: Vec<(String, P)> = Vec::new();
        loop {
            let name = match self.next() {
                Some(Token::Text(name)) => name,
                _ => return Err(self.unsupported("a 'quoted' attribute name expected")),
            };
            self.expect(':')?;
            let value = self.parameter()?;
            if item.iter().any(|(n, _)| *n == name) {
                return Err(format!("Duplicate attribute name {name} in the tuple"));
            }
            item.push((name, value));
            if self.peek_punct('}') {
                self.at += 1;
                break;
            }
            self.expect(',')?;
        }
        Ok(Statement::Insert { table, item })
    }

    fn update(&mut self, hash: &impl Fn(&str) -> String) -> Result<Statement<P>, String> {
        let table = self.identifier()?;
        self.expect_word("SET")?;
        let mut set = Vec::new();
        loop {
            let name = self.identifier()?;
            match self.next() {
                Some(Token::Op(Comparator::Eq)) => {}
                _ => return Err(self.unsupported("= expected after a SET name")),
            }
            set.push((name, self.parameter()?));
            if !self.peek_punct(',') {
                break;
            }
            self.at += 1;
        }
        self.expect_word("WHERE")?;
        let hash = hash(&table);
        let mut key = Map::new();
        let mut condition: Option<Condition> = None;
        loop {
            let name = self.identifier()?;
            let op = match self.next() {
                Some(Token::Op(op)) => op,
                _ => return Err(self.unsupported("a comparison expected in WHERE")),
            };
            let value = (self.value)(&self.parameter()?)?;
            if name == hash && op == Comparator::Eq {
                key.insert(name.clone(), value.clone());
            }
            let compared = Condition::Compare(Operand::Attribute(name), op, Operand::Value(value));
            condition = Some(match condition {
                Some(before) => Condition::And(Box::new(before), Box::new(compared)),
                None => compared,
            });
            if self.at == self.tokens.len() {
                break;
            }
            self.expect_word("AND")?;
        }
        if key.is_empty() {
            return Err(format!(
                "Where clause does not contain a mandatory equality on all key attributes ({hash})"
            ));
        }
        if set.iter().any(|(name, _)| *name == hash) {
            return Err(format!(
                "Cannot update attribute {hash}. This attribute is part of the key"
            ));
        }
        Ok(Statement::Update {
            table,
            key,
            set,
            condition: condition.expect("the WHERE has a comparison"),
        })
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '"' | '\'' => {
                let mut content = String::new();
                loop {
                    match chars.next() {
                        Some(q) if q == c => {
                            if chars.peek() == Some(&c) {
                                chars.next();
                                content.push(c);
                            } else {
                                break;
                            }
                        }
                        Some(other) => content.push(other),
                        None => return Err(format!("unterminated {c}…{c} in {text:?}")),
                    }
                }
                tokens.push(if c == '"' {
                    Token::Identifier(content)
                } else {
                    Token::Text(content)
                });
            }
            '?' => tokens.push(Token::Parameter),
            '=' => tokens.push(Token::Op(Comparator::Eq)),
            '<' => tokens.push(Token::Op(match chars.peek() {
                Some('=') => {
                    chars.next();
                    Comparator::Le
                }
                Some('>') => {
                    chars.next();
                    Comparator::Ne
                }
                _ => Comparator::Lt,
            })),
            '>' => tokens.push(Token::Op(if chars.peek() == Some(&'=') {
                chars.next();
                Comparator::Ge
            } else {
                Comparator::Gt
            })),
            '{' | '}' | ',' | ':' => tokens.push(Token::Punct(c)),
            c if c.is_ascii_alphabetic() => {
                let mut word = String::from(c);
                while let Some(&next) = chars.peek() {
                    if next.is_ascii_alphanumeric() || next == '_' {
                        word.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(word.to_ascii_uppercase()));
            }
            other => {
                return Err(format!(
                    "the sink reads eda's PartiQL statements only; {other:?} in {text:?}"
                ))
            }
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pk(_: &str) -> String {
        "pk".into()
    }

    #[test]
    fn eda_s_update_and_insert_are_read_with_their_parameters_bound_in_order() {
        let update = parse(
            r#"UPDATE "cdc" SET "it's"=?, "q""d"=? WHERE "pk"=? AND "_seq"<? AND "_shape"=?"#,
            &[
                json!({"S": "a"}),
                json!({"N": "2"}),
                json!({"S": "k"}),
                json!({"S": "9"}),
                json!({"S": "h"}),
            ],
            pk,
        )
        .expect("eda's UPDATE");
        let Statement::Update {
            table,
            key,
            set,
            condition,
        } = update
        else {
            panic!("an UPDATE")
        };
        assert_eq!(table, "cdc");
        assert_eq!(Value::Object(key), json!({"pk": {"S": "k"}}));
        assert_eq!(
            set,
            vec![
                ("it's".into(), json!({"S": "a"})),
                ("q\"d".into(), json!({"N": "2"}))
            ]
        );
        let stored = |seq: &str, shape: &str| {
            json!({"pk": {"S": "k"}, "_seq": {"S": seq}, "_shape": {"S": shape}})
                .as_object()
                .cloned()
        };
        assert!(condition.holds(stored("8", "h").as_ref()));
        assert!(!condition.holds(stored("9", "h").as_ref()));
        assert!(!condition.holds(stored("8", "other").as_ref()));
        assert!(!condition.holds(None));

        let insert = parse(
            "INSERT INTO \"cdc\" VALUE {'pk': ?, 'it''s': ?}",
            &[json!({"S": "k"}), json!({"NULL": true})],
            pk,
        )
        .expect("eda's INSERT");
        assert_eq!(
            insert,
            Statement::Insert {
                table: "cdc".into(),
                item: vec![
                    ("pk".into(), json!({"S": "k"})),
                    ("it's".into(), json!({"NULL": true}))
                ],
            }
        );
    }

    #[test]
    fn other_statements_and_miscounted_parameters_are_refused_by_name() {
        let refused =
            |text: &str, n: usize| parse(text, &vec![json!({"S": "x"}); n], pk).expect_err(text);
        assert!(refused(r#"SELECT * FROM "cdc""#, 0).contains("SELECT"));
        assert!(refused(r#"DELETE FROM "cdc" WHERE "pk"=?"#, 1).contains("DELETE"));
        assert!(refused(r#"UPDATE "cdc" SET "a"=? WHERE "pk"=?"#, 3).contains("don't match"));
        assert!(refused(r#"UPDATE "cdc" SET "a"=? WHERE "b"=?"#, 2).contains("key attributes"));
        assert!(refused(r#"UPDATE "cdc" SET "pk"=? WHERE "pk"=?"#, 2).contains("part of the key"));
        assert!(
            refused(r#"UPDATE "cdc" SET "a"=? WHERE "pk"=? OR "b"=?"#, 3).contains("AND expected")
        );
    }
}
