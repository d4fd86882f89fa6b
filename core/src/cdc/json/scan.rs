//! A strict JSON scanner for the decoders' hot path.
//!
//! A Qlik message has to be checked as JSON and its row images indexed by column; with serde_json
//! for the first, that is two passes over every image. The scanner does both in one: the decoder
//! walks the envelope with it, and [`crate::cdc::row`] indexes the images with it, checking the
//! JSON grammar as it goes: no raw control characters in strings, only JSON's escapes, numbers as
//! JSON spells them, exact literals. Objects and arrays nested inside a value, which CDC rows
//! seldom hold, are handed to serde_json at their offset, so they are validated (and
//! depth-limited) by serde_json's own parser.
//!
//! The text is a `&str`: UTF-8 is checked once for the whole message by the caller. Errors carry
//! the byte offset of the problem; [`ScanError::line_column`] turns it into the line and column a
//! person can find.

use std::borrow::Cow;

use serde::de::Deserialize;

/// What is wrong with the JSON and where (a byte offset in the scanned text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanError {
    /// Byte offset of the problem.
    pub at: usize,
    /// What is wrong.
    pub problem: Cow<'static, str>,
}

impl ScanError {
    /// The 1-based line and column of the offset in `text`.
    pub fn line_column(&self, text: &str) -> (usize, usize) {
        line_column(text.as_bytes(), self.at)
    }
}

/// The 1-based line and column of byte `at` in `bytes` (columns count bytes, as serde_json's do).
pub(crate) fn line_column(bytes: &[u8], at: usize) -> (usize, usize) {
    let before = bytes.get(..at).unwrap_or(bytes);
    let line = 1 + memchr::memchr_iter(b'\n', before).count();
    let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
    (line, before.len() - line_start + 1)
}

/// A string literal found by [`Scanner::string`]: `text[open]` is its opening quote,
/// `text[start..end]` its content as written, `text[end]` its closing quote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonStr {
    pub open: usize,
    pub start: usize,
    pub end: usize,
    /// Whether the content holds escapes (and so must be decoded to be read).
    pub escaped: bool,
}

/// A cursor over JSON text.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Scanner<'a> {
        Scanner {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    /// The whole text being scanned.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The current byte offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// An error at the current offset.
    #[cold]
    #[inline(never)]
    pub fn fail(&self, problem: &'static str) -> ScanError {
        ScanError {
            at: self.pos,
            problem: Cow::Borrowed(problem),
        }
    }

    #[cold]
    #[inline(never)]
    fn fail_at(&mut self, at: usize, problem: &'static str) -> ScanError {
        self.pos = at;
        self.fail(problem)
    }

    /// Skips whitespace. Compact JSON has none: one test answers that.
    #[inline(always)]
    pub fn ws(&mut self) {
        if self.bytes.get(self.pos).is_some_and(|&b| b <= b' ') {
            self.skip_ws();
        }
    }

    #[inline(never)]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The byte at the current offset.
    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Checks that only whitespace is left.
    pub fn end(&mut self) -> Result<(), ScanError> {
        self.ws();
        if self.pos < self.bytes.len() {
            Err(self.fail("trailing characters"))
        } else {
            Ok(())
        }
    }

    /// Steps over the `{` of an object (the caller has seen it).
    pub fn open_object(&mut self) -> Result<(), ScanError> {
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(self.fail("expected an object")),
            None => Err(self.fail("EOF while parsing a value")),
        }
    }

    /// The byte at the current offset once whitespace is skipped. When the byte is `expected`
    /// (what compact JSON has there), that one test is all it costs.
    #[inline(always)]
    fn peek_for(&mut self, expected: u8) -> Option<u8> {
        match self.bytes.get(self.pos) {
            Some(&b) if b == expected => Some(b),
            _ => {
                self.ws();
                self.peek()
            }
        }
    }

    /// The next member's key of an object opened by [`Scanner::open_object`], leaving the offset
    /// on the member's value; `None` after the closing `}`. `first` is true until the first call.
    #[inline(always)]
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<JsonStr>, ScanError> {
        let was_first = std::mem::replace(first, false);
        let open = if was_first {
            self.peek_for(b'"')
        } else {
            match self.peek_for(b',') {
                Some(b',') => {
                    self.pos += 1;
                    self.peek_for(b'"')
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(None);
                }
                Some(_) => return Err(self.fail("expected `,` or `}` after an object member")),
                None => return Err(self.fail("EOF while parsing an object")),
            }
        };
        match open {
            Some(b'"') => {}
            Some(b'}') if was_first => {
                self.pos += 1;
                return Ok(None);
            }
            Some(_) => return Err(self.fail("expected a string as an object key")),
            None => return Err(self.fail("EOF while parsing an object")),
        }
        let key = self.string()?;
        if self.peek_for(b':') != Some(b':') {
            return Err(self.fail("expected `:` after an object key"));
        }
        self.pos += 1;
        self.ws();
        Ok(Some(key))
    }

    /// Moves the offset to `pos`, which a reader of [`Scanner::bytes`] found to be the end of
    /// what it checked.
    pub fn seek(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// The text's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// [`Scanner::next_key`] for a member in the compact form, `,"name":` (or `"name":` when
    /// `first`) with no escapes in the name: read in one step, leaving the offset on the value
    /// (whitespace skipped). Anything else answers `None` and moves nothing, for `next_key` to
    /// read.
    #[inline(always)]
    pub fn compact_key(&mut self, first: &mut bool) -> Option<JsonStr> {
        let b = self.bytes;
        let open = if *first {
            self.pos
        } else if b.get(self.pos) == Some(&b',') {
            self.pos + 1
        } else {
            return None;
        };
        if b.get(open) != Some(&b'"') {
            return None;
        }
        let end = plain_string_end(b, open)?;
        if b.get(end + 1) != Some(&b':') {
            return None;
        }
        *first = false;
        self.pos = end + 2;
        self.ws();
        Some(JsonStr {
            open,
            start: open + 1,
            end,
            escaped: false,
        })
    }

    /// The string whose opening quote is at the current offset. Checks what JSON forbids in a
    /// string (raw control characters, unknown escapes, short `\u` escapes); the content is
    /// decoded only when read ([`Scanner::decode`]).
    #[inline(always)]
    pub fn string(&mut self) -> Result<JsonStr, ScanError> {
        let open = self.pos;
        let mut i = open + 1;
        let mut escaped = false;
        loop {
            i = special_from(self.bytes, i);
            match self.bytes.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(JsonStr {
                        open,
                        start: open + 1,
                        end: i,
                        escaped,
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.bytes.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => {
                            let hex = self.bytes.get(i + 2..i + 6);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(self.fail_at(i, "invalid \\u escape in a string"));
                            }
                            i += 6;
                        }
                        _ => return Err(self.fail_at(i, "invalid escape in a string")),
                    }
                }
                Some(_) => return Err(self.fail_at(i, "control character in a string")),
                None => {
                    let end = self.bytes.len();
                    return Err(self.fail_at(end, "EOF while parsing a string"));
                }
            }
        }
    }

    /// A string's content: borrowed when it has no escapes, decoded otherwise (which also
    /// refuses what a Rust string cannot hold, such as a lone surrogate).
    #[inline(always)]
    pub fn decode(&self, s: JsonStr) -> Result<Cow<'a, str>, ScanError> {
        match self.text.get(s.start..s.end) {
            Some(plain) if !s.escaped => Ok(Cow::Borrowed(plain)),
            _ => self.unescape(s).map(Cow::Owned),
        }
    }

    /// The content of a string with escapes.
    #[inline(never)]
    pub fn unescape(&self, s: JsonStr) -> Result<String, ScanError> {
        let bad = || ScanError {
            at: s.open,
            problem: Cow::Borrowed("invalid escape in a string"),
        };
        let literal = self.text.get(s.open..=s.end).ok_or_else(bad)?;
        serde_json::from_str::<String>(literal).map_err(|_| bad())
    }

    /// The number at the current offset, as JSON spells one; returns its text's range.
    #[inline(always)]
    pub fn number(&mut self) -> Result<(usize, usize), ScanError> {
        let b = self.bytes;
        let start = self.pos;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits_from(b, i + 1),
            _ => return Err(self.fail_at(i, "invalid number")),
        }
        if b.get(i) == Some(&b'.') {
            if !matches!(b.get(i + 1), Some(b'0'..=b'9')) {
                return Err(self.fail_at(i + 1, "invalid number: a digit must follow `.`"));
            }
            i = digits_from(b, i + 1);
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if !matches!(b.get(i), Some(b'0'..=b'9')) {
                return Err(self.fail_at(i, "invalid number: a digit must follow the exponent"));
            }
            i = digits_from(b, i);
        }
        self.pos = i;
        Ok((start, i))
    }

    /// `true`, `false` or `null` at the current offset, exactly.
    pub fn literal(&mut self, word: &'static str) -> Result<(), ScanError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.fail("expected a value"))
        }
    }

    /// The value at the current offset, read by serde_json (objects and arrays nested in rows,
    /// the rare parts of the envelope); the offset moves past it.
    pub fn nested<T: Deserialize<'a>>(&mut self) -> Result<T, ScanError> {
        let rest = self
            .text
            .get(self.pos..)
            .ok_or_else(|| self.fail("EOF while parsing a value"))?;
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<T>();
        match stream.next() {
            Some(Ok(value)) => {
                self.pos += stream.byte_offset();
                Ok(value)
            }
            Some(Err(e)) => Err(self.serde_error(rest, &e)),
            None => Err(self.fail("EOF while parsing a value")),
        }
    }

    /// Skips the value at the current offset, checking it.
    pub fn skip_value(&mut self) -> Result<(), ScanError> {
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{' | b'[') => self.nested::<serde::de::IgnoredAny>().map(drop),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            Some(_) => Err(self.fail("expected a value")),
            None => Err(self.fail("EOF while parsing a value")),
        }
    }

    /// A serde_json error in `rest` (which starts at the current offset) as a [`ScanError`] at
    /// its absolute offset, without serde's own "at line .. column .." suffix.
    fn serde_error(&self, rest: &str, e: &serde_json::Error) -> ScanError {
        let line_start = match e.line() {
            0 | 1 => 0,
            line => memchr::memchr_iter(b'\n', rest.as_bytes())
                .nth(line - 2)
                .map_or(rest.len(), |i| i + 1),
        };
        let offset = (line_start + e.column().saturating_sub(1)).min(rest.len());
        let mut problem = e.to_string();
        if let Some(i) = problem.rfind(" at line ") {
            problem.truncate(i);
        }
        ScanError {
            at: self.pos + offset,
            problem: Cow::Owned(problem),
        }
    }
}

/// What a value starting with `b` is, for "expected ..., found ..." messages.
pub(crate) fn kind_at(b: Option<u8>) -> &'static str {
    match b {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'-' | b'0'..=b'9') => "a number",
        _ => "no value",
    }
}

fn digits_from(b: &[u8], mut i: usize) -> usize {
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    i
}

/// The closing quote of the string that opens at `open`, when nothing special (a backslash or a
/// control character) comes before it.
#[inline(always)]
pub(crate) fn plain_string_end(bytes: &[u8], open: usize) -> Option<usize> {
    let end = special_from(bytes, open + 1);
    (bytes.get(end) == Some(&b'"')).then_some(end)
}

/// The offset of the first byte from `i` on that ends a plain run of string content: a quote, a
/// backslash or a control character (or the end). On x86-64, sixteen bytes at a time with SSE2
/// (see [`super::simd`]); the rest, and every byte on other targets, by [`special_from_swar`].
#[inline(always)]
pub(crate) fn special_from(bytes: &[u8], i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    let i = {
        let mut i = i;
        while let Some(block) = bytes.get(i..i + 16) {
            let Ok(block) = <&[u8; 16]>::try_from(block) else {
                break;
            };
            let marks = crate::cdc::json::simd::special_marks(block);
            if marks != 0 {
                return i + marks.trailing_zeros() as usize;
            }
            i += 16;
        }
        i
    };
    special_from_swar(bytes, i)
}

/// [`special_from`] eight bytes at a time in a `u64`: for each of the three tests,
/// `(x - 0x01..) & !x & 0x80..` marks the bytes that are zero, and its lowest mark is exact (a
/// borrow only spreads upward from a marked byte).
#[inline(always)]
fn special_from_swar(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = ONES * b'"' as u64;
    const BACKSLASHES: u64 = ONES * b'\\' as u64;
    const SPACES: u64 = ONES * 0x20;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        let quote = w ^ QUOTES;
        let backslash = w ^ BACKSLASHES;
        let marks = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(SPACES) & !w);
        let marks = marks & HIGH;
        if marks != 0 {
            return i + (marks.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Skips one value and checks nothing is left, the way a decoder would.
    fn check(text: &str) -> Result<(), ScanError> {
        let mut s = Scanner::new(text);
        s.ws();
        match s.peek() {
            Some(b'{') => {
                s.open_object()?;
                let mut first = true;
                while s.next_key(&mut first)?.is_some() {
                    s.skip_value()?;
                }
            }
            _ => s.skip_value()?,
        }
        s.end()
    }

    #[test]
    fn what_json_forbids_is_refused_with_its_offset() {
        for (text, at) in [
            ("{\"a\":\"x\ny\"}", 7),
            ("{\"a\":\"\\q\"}", 6),
            ("{\"a\":\"\\u12\"}", 6),
            ("{\"a\":01}", 6),
            ("{\"a\":1.}", 7),
            ("{\"a\":1e}", 7),
            ("{\"a\":-}", 6),
            ("{\"a\":tru}", 5),
            ("{\"a\":1 \"b\":2}", 7),
            ("{\"a\" 1}", 5),
            ("{a:1}", 1),
            ("{\"a\":1,}", 7),
            ("{\"a\":\"x", 7),
            ("{\"a\":1} x", 8),
            ("{\"a\":[1,]}", 8),
        ] {
            let err = check(text).expect_err(text);
            assert_eq!(err.at, at, "{text}: {}", err.problem);
        }
    }

    #[test]
    fn lines_and_columns_count_from_one() {
        let err = check("{\n  \"a\": 1,\n  \"b\": tru\n}").expect_err("bad literal");
        assert_eq!(err.line_column("{\n  \"a\": 1,\n  \"b\": tru\n}"), (3, 8));
        let text = "{\"a\":\n[1,\n2,,]}";
        let err = check(text).expect_err("bad array");
        assert_eq!(err.line_column(text), (3, 3), "{}", err.problem);
    }

    #[test]
    fn the_special_byte_search_finds_the_first_one() {
        let text = "abcdefghijklmnop\u{e9}qrstuvwx\"";
        assert_eq!(special_from(text.as_bytes(), 0), text.len() - 1);
        for (i, special) in [b'"', b'\\', 0x01, 0x1f].into_iter().enumerate() {
            let mut bytes = b"0123456789abcdefghij".to_vec();
            bytes[9 + i] = special;
            bytes[15] = b'"';
            assert_eq!(special_from(&bytes, 0), 9 + i);
        }
        assert_eq!(special_from(b"\x7f\x80\xff ~", 0), 5);
    }

    /// The first special byte from `i`, one byte at a time.
    fn special_by_bytes(bytes: &[u8], i: usize) -> usize {
        let rest = bytes.get(i..).unwrap_or_default();
        i + rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .unwrap_or(rest.len())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Both searches (the SSE2 one on x86-64, the portable one everywhere) find the byte a
        /// byte-by-byte search finds, from any start, in text with few special bytes or many.
        #[test]
        fn the_special_byte_searches_agree_with_a_byte_loop(
            bytes in prop_oneof![
                proptest::collection::vec(prop_oneof![8 => 0x20u8..=0xff, 1 => Just(b'"'), 1 => Just(b'\\'), 1 => 0u8..0x20], 0..80),
                proptest::collection::vec(0x20u8..=0xff, 0..80),
                proptest::collection::vec(any::<u8>(), 0..80),
            ],
            start in 0usize..90,
        ) {
            let expected = special_by_bytes(&bytes, start.min(bytes.len()));
            let start = start.min(bytes.len());
            prop_assert_eq!(special_from(&bytes, start), expected);
            prop_assert_eq!(special_from_swar(&bytes, start), expected);
        }
    }

    proptest! {
        /// The scanner accepts exactly what serde_json accepts, for JSON-ish text.
        #[test]
        fn it_agrees_with_serde_json(text in "[{}\\[\\]\",:a-c0-9.eE+\\- \\\\nu\n\t]{0,24}") {
            // `IgnoredAny`: serde's own checking, without the f64 range `Value` adds.
            let serde_ok = serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
            prop_assert_eq!(check(&text).is_ok(), serde_ok, "{:?}", text);
        }

        #[test]
        fn any_value_serde_writes_is_accepted(value in crate::test_json::any_json()) {
            let text = serde_json::to_string(&value).expect("serializes");
            prop_assert!(check(&text).is_ok());
            let pretty = serde_json::to_string_pretty(&value).expect("serializes");
            prop_assert!(check(&pretty).is_ok());
        }
    }
}
