//! The condition expressions eda writes, evaluated against a stored item.
//!
//! This understands **eda's conditions, not DynamoDB's language**: the sequence guard of every
//! CDC write (`attribute_not_exists(pk) OR #seq < :seq`, `eda_core::apply_plan::GUARD_EXPRESSION`)
//! and the metadata table's write-once rule (`attribute_not_exists(#pk)`), built from top-level
//! attribute names (`pk`, `#seq`), placeholders (`:seq`), `attribute_exists`,
//! `attribute_not_exists`, the comparisons `= <> < <= > >=`, `AND`, `OR`, `NOT` and parentheses.
//! Anything else (document paths, `begins_with`, `size`, `BETWEEN`, `IN`) is refused with a
//! `ValidationException` that names it, so a new shape of condition fails loudly here instead of
//! being judged wrongly. DynamoDB Local stays the reference for what DynamoDB itself does.
//!
//! Values are DynamoDB's JSON (`{"S": "..."}`). Strings and binaries compare by bytes, numbers by
//! value (as `f64`, enough for eda's numbers: its sequences are strings); a comparison with a
//! missing attribute or across types is false, as in DynamoDB.

use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `attribute_exists(path)` (true) or `attribute_not_exists(path)` (false).
    Exists(Operand, bool),
    /// `left op right`.
    Compare(Operand, Comparator, Operand),
    /// Both hold.
    And(Box<Condition>, Box<Condition>),
    /// Either holds.
    Or(Box<Condition>, Box<Condition>),
    /// It does not hold.
    Not(Box<Condition>),
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A top-level attribute, its `#name` already resolved.
    Attribute(String),
    /// A `:value` placeholder, its value already resolved.
    Value(Value),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Name(String),
    Placeholder(String),
    Op(Comparator),
    Open,
    Close,
    Comma,
}

/// Parses `expression`, resolving `#names` and `:values` from the request's
/// `ExpressionAttributeNames` and `ExpressionAttributeValues`. The error is the message of a
/// `ValidationException`.
pub fn parse(
    expression: &str,
    names: Option<&Map<String, Value>>,
    values: Option<&Map<String, Value>>,
) -> Result<Condition, String> {
    parse_with(
        expression,
        &|name| Some(names?.get(name)?.as_str()?.to_string()),
        &|value| values?.get(value).cloned(),
    )
}

/// [`parse`] with the `#names` and `:values` looked up by `names` and `values`, for a request
/// read into other shapes than a JSON tree.
pub fn parse_with(
    expression: &str,
    names: &dyn Fn(&str) -> Option<String>,
    values: &dyn Fn(&str) -> Option<Value>,
) -> Result<Condition, String> {
    let tokens = tokenize(expression)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        names,
        values,
        expression,
    };
    let condition = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err(parser.unsupported("trailing tokens"));
    }
    Ok(condition)
}

/// What a condition reads of an item: its top-level attributes by name.
pub trait Attributes {
    /// The attribute `name`, as DynamoDB's JSON (`{"S": "..."}`).
    fn attribute(&self, name: &str) -> Option<Cow<'_, Value>>;

    /// Whether the item has an attribute `name`.
    fn has(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }
}

impl Attributes for Map<String, Value> {
    fn attribute(&self, name: &str) -> Option<Cow<'_, Value>> {
        self.get(name).map(Cow::Borrowed)
    }

    fn has(&self, name: &str) -> bool {
        self.contains_key(name)
    }
}

impl Condition {
    /// Whether the condition holds for `item` (`None`: no item under the key).
    pub fn holds(&self, item: Option<&Map<String, Value>>) -> bool {
        self.holds_for(item)
    }

    /// [`Condition::holds`] for an item of any shape.
    pub fn holds_for<A: Attributes + ?Sized>(&self, item: Option<&A>) -> bool {
        match self {
            Condition::Exists(Operand::Attribute(name), wanted) => {
                item.is_some_and(|i| i.has(name)) == *wanted
            }
            Condition::Exists(Operand::Value(_), _) => false,
            Condition::Compare(left, op, right) => {
                let (Some(left), Some(right)) = (resolve(left, item), resolve(right, item)) else {
                    return false;
                };
                match (op, compare(&left, &right)) {
                    (Comparator::Ne, None) => true,
                    (_, None) => false,
                    (Comparator::Eq, Some(o)) => o == Ordering::Equal,
                    (Comparator::Ne, Some(o)) => o != Ordering::Equal,
                    (Comparator::Lt, Some(o)) => o == Ordering::Less,
                    (Comparator::Le, Some(o)) => o != Ordering::Greater,
                    (Comparator::Gt, Some(o)) => o == Ordering::Greater,
                    (Comparator::Ge, Some(o)) => o != Ordering::Less,
                }
            }
            Condition::And(a, b) => a.holds_for(item) && b.holds_for(item),
            Condition::Or(a, b) => a.holds_for(item) || b.holds_for(item),
            Condition::Not(a) => !a.holds_for(item),
        }
    }
}

fn resolve<'a, A: Attributes + ?Sized>(
    operand: &'a Operand,
    item: Option<&'a A>,
) -> Option<Cow<'a, Value>> {
    match operand {
        Operand::Attribute(name) => item?.attribute(name),
        Operand::Value(value) => Some(Cow::Borrowed(value)),
    }
}

/// How two attribute values order, when they are of one comparable type; `None` otherwise.
/// Equality of other types (BOOL, NULL, maps, lists, sets) is structural.
pub fn compare(left: &Value, right: &Value) -> Option<Ordering> {
    let (Some((lt, lv)), Some((rt, rv))) = (typed(left), typed(right)) else {
        return None;
    };
    if lt != rt {
        return None;
    }
    match (lt, lv, rv) {
        ("S" | "B", Value::String(a), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        ("N", Value::String(a), Value::String(b)) => {
            let (a, b) = (a.parse::<f64>().ok()?, b.parse::<f64>().ok()?);
            a.partial_cmp(&b)
        }
        _ => (lv == rv).then_some(Ordering::Equal),
    }
}

/// The type tag and payload of an attribute value (`{"S": "x"}` gives `("S", "x")`).
fn typed(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.iter().next().map(|(k, v)| (k.as_str(), v))
}

fn tokenize(expression: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = expression.char_indices().peekable();
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    while let Some((start, c)) = chars.next() {
        let mut take_word = |start: usize| {
            let mut end = start + c.len_utf8();
            while let Some(&(i, n)) = chars.peek() {
                if !word_char(n) {
                    break;
                }
                end = i + n.len_utf8();
                chars.next();
            }
            expression[start..end].to_string()
        };
        match c {
            ' ' | '\t' | '\n' | '\r' => {}
            '(' => tokens.push(Token::Open),
            ')' => tokens.push(Token::Close),
            ',' => tokens.push(Token::Comma),
            '#' => tokens.push(Token::Name(take_word(start))),
            ':' => tokens.push(Token::Placeholder(take_word(start))),
            '=' => tokens.push(Token::Op(Comparator::Eq)),
            '<' | '>' => {
                let op = match (c, chars.peek().map(|&(_, n)| n)) {
                    ('<', Some('>')) => Comparator::Ne,
                    ('<', Some('=')) => Comparator::Le,
                    ('>', Some('=')) => Comparator::Ge,
                    ('<', _) => Comparator::Lt,
                    _ => Comparator::Gt,
                };
                if matches!(op, Comparator::Ne | Comparator::Le | Comparator::Ge) {
                    chars.next();
                }
                tokens.push(Token::Op(op));
            }
            c if word_char(c) => tokens.push(Token::Word(take_word(start))),
            other => {
                return Err(format!(
                    "the sink does not understand {other:?} in the condition {expression:?} \
                     (it evaluates eda's conditions, not DynamoDB's whole language)"
                ))
            }
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    names: &'a dyn Fn(&str) -> Option<String>,
    values: &'a dyn Fn(&str) -> Option<Value>,
    expression: &'a str,
}

impl Parser<'_> {
    fn unsupported(&self, what: &str) -> String {
        format!(
            "the sink does not understand the condition {:?} ({what} at token {}); it evaluates \
             eda's conditions, not DynamoDB's whole language",
            self.expression,
            self.at + 1
        )
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<(), String> {
        if self.peek() == Some(token) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.unsupported(what))
        }
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            self.at += 1;
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            self.at += 1;
            left = Condition::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition, String> {
        if self.keyword("NOT") {
            self.at += 1;
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Condition, String> {
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(&Token::Close, "a missing `)`")?;
            return Ok(inner);
        }
        for (function, wanted) in [("attribute_exists", true), ("attribute_not_exists", false)] {
            if self.keyword(function) {
                self.at += 1;
                self.expect(&Token::Open, "a function without `(`")?;
                let path = self.operand()?;
                if !matches!(path, Operand::Attribute(_)) {
                    return Err(self.unsupported("a function of a value, not an attribute"));
                }
                self.expect(&Token::Close, "a function of more than one argument")?;
                return Ok(Condition::Exists(path, wanted));
            }
        }
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Token::Op(op)) => *op,
            _ => return Err(self.unsupported("an operand without a comparison")),
        };
        self.at += 1;
        let right = self.operand()?;
        Ok(Condition::Compare(left, op, right))
    }

    fn operand(&mut self) -> Result<Operand, String> {
        let operand = match self.peek().cloned() {
            Some(Token::Name(name)) => {
                let resolved = (self.names)(&name).ok_or_else(|| {
                    format!(
                        "Value provided in ExpressionAttributeNames unused in expressions or \
                             undefined: {name} is not defined"
                    )
                })?;
                Operand::Attribute(resolved)
            }
            Some(Token::Placeholder(name)) => {
                let value = (self.values)(&name).ok_or_else(|| {
                    format!(
                        "An expression attribute value used in expression is not defined; \
                         attribute value: {name}"
                    )
                })?;
                Operand::Value(value)
            }
            Some(Token::Word(word))
                if !["AND", "OR", "NOT"]
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k)) =>
            {
                Operand::Attribute(word)
            }
            _ => return Err(self.unsupported("an unexpected token where an operand belongs")),
        };
        self.at += 1;
        if matches!(self.peek(), Some(Token::Open | Token::Comma)) {
            return Err(self.unsupported("a function or path the sink does not know"));
        }
        Ok(operand)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    fn guard(seq: &str) -> Condition {
        parse(
            eda_core::apply_plan::GUARD_EXPRESSION,
            Some(&map(json!({"#seq": "_seq"}))),
            Some(&map(json!({":seq": {"S": seq}}))),
        )
        .expect("the guard parses")
    }

    #[test]
    fn the_sequence_guard_takes_a_newer_change_and_refuses_an_older_or_equal_one() {
        let stored = map(json!({"pk": {"S": "k"}, "_seq": {"S": "0002"}}));
        assert!(guard("0001").holds(None), "no item yet");
        assert!(guard("0003").holds(Some(&stored)));
        assert!(!guard("0002").holds(Some(&stored)), "the same change again");
        assert!(!guard("0001").holds(Some(&stored)), "an older change");
    }

    #[test]
    fn write_once_refuses_an_existing_item() {
        let once = parse(
            "attribute_not_exists(#pk)",
            Some(&map(json!({"#pk": "pk"}))),
            None,
        )
        .unwrap();
        assert!(once.holds(None));
        assert!(!once.holds(Some(&map(json!({"pk": {"S": "t"}})))));
    }

    #[test]
    fn numbers_compare_by_value_and_types_do_not_mix() {
        let c = parse(
            "n < :n AND NOT (s = :n) AND (attribute_exists(s) OR n <> :n)",
            None,
            Some(&map(json!({":n": {"N": "10"}}))),
        )
        .unwrap();
        assert!(c.holds(Some(&map(json!({"n": {"N": "9"}, "s": {"S": "10"}})))));
        assert!(!c.holds(Some(&map(json!({"n": {"N": "11"}, "s": {"S": "10"}})))));
        assert_eq!(compare(&json!({"N": "2"}), &json!({"S": "2"})), None);
    }

    #[test]
    fn what_the_sink_does_not_know_is_refused_by_name() {
        for expression in [
            "begins_with(pk, :p)",
            "a.b = :v",
            "pk BETWEEN :a AND :b",
            "size(pk) > :v",
            "pk = :v extra",
        ] {
            let err = parse(expression, None, Some(&map(json!({":v": {"S": "x"}})))).unwrap_err();
            assert!(err.contains("not DynamoDB's whole language"), "{err}");
        }
        let err = parse("#x = :v", None, None).unwrap_err();
        assert!(err.contains("#x"), "{err}");
    }
}
