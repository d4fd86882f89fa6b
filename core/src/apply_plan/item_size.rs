//! An item's size as DynamoDB counts it against its 400 KB item limit, so the plan knows before
//! the write whether DynamoDB will take it.
//!
//! DynamoDB adds up, for every attribute, the UTF-8 bytes of its name and the size of its value:
//!
//! - a string: its UTF-8 bytes; a binary: its bytes; a boolean or a null: 1 byte;
//! - a number: 1 byte, plus 1 byte per pair of digits of its mantissa counted in base 100 (the
//!   pairs aligned on the decimal point, leading and trailing zero pairs dropped), plus 1 byte if
//!   it is negative: `1` and `100` take 2 bytes, `1.5` and `123` take 3, zero takes 1;
//! - a list or a map: 3 bytes, plus for each element 1 byte and its value's size (and, in a map,
//!   its name's bytes).
//!
//! These rules were checked against DynamoDB Local, AWS's own implementation, by finding for
//! each kind of value the largest string attribute the same item still takes at the limit
//! (`daemon/tests/it/oversize.rs` keeps the check at the boundary: exactly 409,600 bytes are
//! written, one more is refused).

use super::{AttrValue, Item};

/// DynamoDB's item size limit: 400 KB.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The size of `item` as DynamoDB counts it.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| attribute_size(name, value))
        .sum()
}

/// The size one attribute adds to its item: its name's bytes and its value's size.
pub fn attribute_size(name: &str, value: &AttrValue) -> usize {
    name.len() + value_size(value)
}

/// The size of a value, as it counts inside an item, a list or a map.
pub fn value_size(value: &AttrValue) -> usize {
    match value {
        AttrValue::S(s) => s.len(),
        AttrValue::N(n) => number_size(n),
        AttrValue::B(b) => b.len(),
        AttrValue::Bool(_) | AttrValue::Null => 1,
        AttrValue::L(items) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttrValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
    }
}

/// The size of a number written as `text` (decimal, optionally signed, with a fraction and an
/// exponent): 1 byte, one per base-100 digit pair of its significant digits, and one more when
/// it is negative. Text that is no number is counted as its bytes (DynamoDB refuses it anyway).
pub fn number_size(text: &str) -> usize {
    let Some(n) = Decimal::parse(text) else {
        return text.len();
    };
    let Some((first, last)) = n.significant_powers() else {
        // Zero, signed or not.
        return 1;
    };
    // The pair of the digit of power p (p = 0 for units) is floor(p / 2).
    let pairs = first.div_euclid(2) - last.div_euclid(2) + 1;
    1 + usize::try_from(pairs).unwrap_or(0) + usize::from(n.negative)
}

/// A decimal number's digits and where its decimal point stands.
struct Decimal<'t> {
    negative: bool,
    /// Integer and fraction digits, the point left out.
    integer: &'t str,
    fraction: &'t str,
    /// The exponent written after `e`/`E`.
    exponent: i64,
}

impl<'t> Decimal<'t> {
    fn parse(text: &'t str) -> Option<Self> {
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], rest[at + 1..].parse().ok()?),
            None => (rest, 0),
        };
        let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if integer.is_empty() && fraction.is_empty() || !digits(integer) || !digits(fraction) {
            return None;
        }
        Some(Self {
            negative,
            integer,
            fraction,
            exponent,
        })
    }

    /// The powers of ten of the first and the last non-zero digit; `None` for zero.
    fn significant_powers(&self) -> Option<(i64, i64)> {
        let digits = self.integer.bytes().chain(self.fraction.bytes());
        // The power of the digit at position i of integer ++ fraction.
        let top = self.integer.len() as i64 - 1 + self.exponent;
        let mut first = None;
        let mut last = None;
        for (i, d) in digits.enumerate() {
            if d != b'0' {
                let power = top - i as i64;
                first.get_or_insert(power);
                last = Some(power);
            }
        }
        Some((first?, last?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn numbers_count_base_100_digit_pairs_as_dynamodb_local_does() {
        // Each figure is what DynamoDB Local charged for the value (its item's limit moved by
        // that many bytes).
        for (text, size) in [
            ("0", 1),
            ("-0", 1),
            ("1", 2),
            ("12", 2),
            ("99", 2),
            ("100", 2),
            ("123", 3),
            ("1234", 3),
            ("12345", 4),
            ("-1", 3),
            ("-12", 3),
            ("1.5", 3),
            ("0.5", 2),
            ("-1.5", 4),
            ("12.345", 4),
            ("100.01", 4),
            ("0.001", 2),
            ("-0.001", 3),
            ("1e3", 2),
            ("1E+3", 2),
            ("1.5e-3", 2),
            ("10000000000", 2),
            ("5E-130", 2),
            ("11111111111111111111111111111111111111", 20),
            ("123456789012345678901234567890123456.78", 20),
            ("9.9999999999999999999999999999999999999E+125", 20),
        ] {
            assert_eq!(number_size(text), size, "{text}");
        }
    }

    #[test]
    fn an_item_is_its_names_and_values() {
        let mut item: Item = BTreeMap::new();
        item.insert("pk".into(), AttrValue::S("k".into()));
        item.insert("é".into(), AttrValue::S("é".into()));
        item.insert("b".into(), AttrValue::Bool(true));
        item.insert("z".into(), AttrValue::Null);
        item.insert("y".into(), AttrValue::B(b"12345".to_vec()));
        item.insert(
            "l".into(),
            AttrValue::L(vec![AttrValue::S("ab".into()), AttrValue::S("c".into())]),
        );
        let mut inner = BTreeMap::new();
        inner.insert("ab".into(), AttrValue::S("cd".into()));
        inner.insert("e".into(), AttrValue::N("1".into()));
        item.insert("m".into(), AttrValue::M(inner));
        // pk 2+1, é 2+2, b 1+1, z 1+1, y 1+5, l 1+(3+3+2), m 1+(3+5+4): the figures DynamoDB
        // Local charged for each.
        assert_eq!(item_size(&item), 3 + 4 + 2 + 2 + 6 + 9 + 13);
    }
}
