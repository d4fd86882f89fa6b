//! A JSON string written straight into a byte buffer: quoted and escaped exactly as serde_json
//! escapes it, so a body written here is byte for byte the body serde_json would write.
//!
//! The lean AWS client writes every string of a `PutItem` and `PutEvents` body with it, the
//! event's `Detail` (itself JSON, so dense with quotes) included. serde_json's escaper looks at
//! one byte at a time through its `Formatter`; this one tests eight bytes at once for a byte
//! that needs escaping, escapes every one the word holds, copies the runs between them whole,
//! and writes each escape as one slice (`make bench-ir`'s `entry` path: 24.0K → 18.0K
//! instructions for a 1 KB change event's `PutEvents` entry).
//!
//! [`Quoting`] writes a JSON document and, in the same pass, that document as a JSON string:
//! an event's `Detail` is made in the form the `PutEvents` body carries it, so the body copies
//! it instead of escaping ~1.4 KB of JSON a second time.

/// What a byte is escaped to: `0` copied as it is, `u` as `\u00xx`, any other byte `b` as
/// the two bytes `\b` (serde_json's forms, byte for byte).
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// The high bit set in each byte of `word` that is `"`, `\` or below 0x20. A borrow can mark a
/// byte above a real hit too, never one below it, so the lowest mark (in memory order) is
/// always a byte that needs escaping; `0` means none of the eight does.
#[inline]
fn marks(word: u64) -> u64 {
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | quote | backslash) & HIGHS
}

/// Appends `text` to `out` as a JSON string: quoted, with `"`, `\` and the control bytes
/// escaped (`\b \f \n \r \t` in their short form, the others as `\u00xx`, lowercase hex);
/// everything else, multi-byte UTF-8 and U+2028/U+2029 included, is copied as it is.
pub fn write(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    write_contents(out, text.as_bytes());
    out.push(b'"');
}

/// Appends `bytes` escaped as the contents of a JSON string, without the quotes: what
/// [`write()`] writes between them.
pub fn write_contents(out: &mut Vec<u8>, bytes: &[u8]) {
    let run = for_each_escape(bytes, |run, byte| escape(out, run, byte));
    out.extend_from_slice(run);
}

/// Calls `on_escape` with each run of plain bytes of `bytes` and the byte that ends it, a byte
/// that needs escaping, in order; returns the plain bytes after the last one.
#[inline(always)]
fn for_each_escape<'a>(bytes: &'a [u8], mut on_escape: impl FnMut(&'a [u8], u8)) -> &'a [u8] {
    // `run` is where the bytes not yet handed over start; `at` is the next byte to look at.
    let mut run = 0;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let mut found = marks(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        // Little-endian: the first byte in memory is the lowest one. A mark above a real one
        // may be a borrow's: the table has the last word.
        while found != 0 {
            let here = at + (found.trailing_zeros() / 8) as usize;
            if ESCAPE[usize::from(bytes[here])] != 0 {
                on_escape(&bytes[run..here], bytes[here]);
                run = here + 1;
            }
            found &= found - 1;
        }
        at += 8;
    }
    for (here, &byte) in bytes.iter().enumerate().skip(at) {
        if ESCAPE[usize::from(byte)] != 0 {
            on_escape(&bytes[run..here], byte);
            run = here + 1;
        }
    }
    &bytes[run..]
}

/// Appends the plain bytes `before`, then `byte` escaped.
#[inline]
fn escape(out: &mut Vec<u8>, before: &[u8], byte: u8) {
    out.extend_from_slice(before);
    let (form, len) = escaped(byte);
    out.extend_from_slice(&form[..len]);
}

/// `byte`'s escape as serde_json writes it (`\"`, `\n`, `\u001f`, ...) and its length.
#[inline]
fn escaped(byte: u8) -> ([u8; 6], usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match ESCAPE[usize::from(byte)] {
        b'u' => (
            [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ],
            6,
        ),
        short => ([b'\\', short, 0, 0, 0, 0], 2),
    }
}

/// A JSON document and, written in the same pass, the same document as a JSON string: what
/// [`write()`] would make of it, without a second pass over it.
///
/// An EventBridge entry's `Detail` is JSON that the `PutEvents` body carries as a string, so it
/// is written twice over: once as JSON, and once escaped into the request. Writing both forms
/// while the document is made costs one more copy of each run of plain bytes instead of a
/// second scan of the whole document (an escape inside the document's own strings is
/// escaped again at once: `"` is `\"` in the document and `\\\"` in its string).
#[derive(Debug)]
pub struct Quoting {
    /// The document.
    text: Vec<u8>,
    /// The document as a JSON string, quotes included.
    quoted: Vec<u8>,
}

impl Quoting {
    /// An empty document with room for `capacity` bytes (its string gets a little more).
    pub fn with_capacity(capacity: usize) -> Self {
        let mut quoted = Vec::with_capacity(capacity + capacity / 4);
        quoted.push(b'"');
        Self {
            text: Vec::with_capacity(capacity),
            quoted,
        }
    }

    /// Starts a new document, keeping the buffers: the string's opening quote.
    pub fn clear(&mut self) {
        self.text.clear();
        self.quoted.clear();
        self.quoted.push(b'"');
    }

    /// Appends bytes with nothing to escape in a JSON string (structure such as `{` `,` `:`
    /// `null`, a number), to both forms.
    ///
    /// # Panics
    ///
    /// In debug builds, when `bytes` holds a byte that would need escaping.
    #[inline]
    pub fn plain(&mut self, bytes: &[u8]) {
        debug_assert!(bytes.iter().all(|&b| ESCAPE[usize::from(b)] == 0));
        self.text.extend_from_slice(bytes);
        self.quoted.extend_from_slice(bytes);
    }

    /// Appends `text` as a JSON string (see [`write()`]), to the document; to its string, that
    /// string escaped.
    pub fn string(&mut self, text: &str) {
        let bytes = text.as_bytes();
        self.text.reserve(bytes.len() + 2);
        self.quoted.reserve(bytes.len() + 4);
        self.text.push(b'"');
        self.quoted.extend_from_slice(b"\\\"");
        let (doc, quoted) = (&mut self.text, &mut self.quoted);
        let rest = for_each_escape(bytes, |run, byte| {
            doc.extend_from_slice(run);
            quoted.extend_from_slice(run);
            let (form, len) = escaped(byte);
            doc.extend_from_slice(&form[..len]);
            // The escape escaped again: its backslash doubled, and a `"` or `\\` after it
            // escaped too.
            quoted.extend_from_slice(b"\\\\");
            if matches!(form[1], b'"' | b'\\') {
                quoted.push(b'\\');
            }
            quoted.extend_from_slice(&form[1..len]);
        });
        doc.extend_from_slice(rest);
        quoted.extend_from_slice(rest);
        self.text.push(b'"');
        self.quoted.extend_from_slice(b"\\\"");
    }

    /// Appends an object member's name: `lead` (`{` or `,`), `name` as a JSON string, then `:`.
    pub fn member(&mut self, lead: u8, name: &str) {
        self.plain(&[lead]);
        self.string(name);
        self.plain(b":");
    }

    /// Appends an object member whose value is a string: `lead`, `"name":`, `value` as a JSON
    /// string.
    pub fn string_member(&mut self, lead: u8, name: &str, value: &str) {
        self.member(lead, name);
        self.string(value);
    }

    /// Appends what `write` puts into the document, bytes with nothing to escape in a JSON
    /// string (a number as serde_json writes it), to both forms.
    ///
    /// # Panics
    ///
    /// In debug builds, when `write` wrote a byte that would need escaping.
    pub fn plain_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.text.len();
        write(&mut self.text);
        let written = &self.text[start..];
        debug_assert!(written.iter().all(|&b| ESCAPE[usize::from(b)] == 0));
        self.quoted.extend_from_slice(written);
    }

    /// The bytes the two buffers hold room for.
    pub fn capacity(&self) -> usize {
        self.text.capacity() + self.quoted.capacity()
    }

    /// Appends JSON that `write` puts into the document (a value serde_json writes); its bytes
    /// are escaped into the string after it.
    pub fn json(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.text.len();
        write(&mut self.text);
        write_contents(&mut self.quoted, &self.text[start..]);
    }

    /// Closes the document's string and returns both forms: the document, and the document as
    /// a JSON string, quotes included (what [`write()`] writes of it). [`Self::clear`] starts the
    /// next one.
    pub fn finish(&mut self) -> (&[u8], &[u8]) {
        self.quoted.push(b'"');
        (&self.text, &self.quoted)
    }
}

impl Default for Quoting {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(text: &str) -> String {
        let mut out = b"prefix ".to_vec();
        write(&mut out, text);
        String::from_utf8(out).expect("valid UTF-8")
    }

    fn serde_jsons(text: &str) -> String {
        format!(
            "prefix {}",
            serde_json::to_string(text).expect("a string serializes")
        )
    }

    #[test]
    fn every_ascii_and_control_byte_is_escaped_as_serde_json_escapes_it() {
        for byte in 0u8..=0x7f {
            let c = char::from(byte);
            // Alone, and at every offset of an eight-byte word, with plain bytes around it.
            assert_eq!(
                ours(&c.to_string()),
                serde_jsons(&c.to_string()),
                "byte {byte:#04x}"
            );
            for offset in 0..17 {
                let text = format!("{}{c}{}", "a".repeat(offset), "z".repeat(9));
                assert_eq!(
                    ours(&text),
                    serde_jsons(&text),
                    "byte {byte:#04x} at {offset}"
                );
            }
        }
    }

    #[test]
    fn tricky_strings_are_written_as_serde_json_writes_them() {
        let cases = [
            "",
            "plain text, longer than one word of eight bytes",
            r#"{"before":{"id":"1","name":"O\"Brien \\ co"},"after":null}"#,
            "\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"",
            "\\\\\\\\\\\\\\\\\\",
            "\u{0}\u{1}\u{1f}\u{7f}\u{8}\u{c}\n\r\t",
            "é café ünïcödé 😀 𝄞 日本語",
            "line\u{2028}separator\u{2029}paragraph \u{85} \u{feff} \u{ffff}",
            // UTF-8 bytes whose low bits match `"` (0x22), `\` (0x5c) or a control byte.
            "\u{a2}\u{dc}\u{422}\u{45c}\u{2022}\u{205c}\u{101}\u{10}",
            "ends with a quote\"",
            "\"starts with a quote",
        ];
        for text in cases {
            assert_eq!(ours(text), serde_jsons(text), "{text:?}");
        }
    }

    #[test]
    fn a_change_event_detail_round_trips_through_the_body() {
        let detail = serde_json::json!({
            "id": "e-1", "data": {"after": {"note": "say \"hi\"\n\\path", "n": 1.5}},
            "metadata": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
        })
        .to_string();
        let mut out = Vec::new();
        write(&mut out, &detail);
        let back: String = serde_json::from_slice(&out).expect("a JSON string");
        assert_eq!(back, detail);
    }

    /// `texts` as a JSON array written through [`Quoting`] (a string, then a number and a
    /// nested value serde_json writes, per text), checked against serde_json: the document is
    /// serde_json's, and its string form is serde_json's string of that document.
    fn assert_both_forms(texts: &[&str]) {
        let mut out = Quoting::default();
        // Twice, so a second document after `clear` is checked too.
        for _ in 0..2 {
            out.clear();
            out.plain(b"[");
            let mut expected = Vec::new();
            for (i, text) in texts.iter().enumerate() {
                if i > 0 {
                    out.plain(b",");
                }
                out.string(text);
                out.plain(b",");
                out.plain_with(|doc| serde_json::to_writer(doc, &1.5).expect("a number"));
                out.plain(b",");
                let nested = serde_json::json!({ "k\"": [text, null] });
                out.json(|doc| serde_json::to_writer(doc, &nested).expect("a value"));
                expected.extend([serde_json::json!(text), serde_json::json!(1.5), nested]);
            }
            out.plain(b"]");
            let (text, quoted) = out.finish();
            let document = serde_json::to_string(&expected).expect("serializes");
            assert_eq!(std::str::from_utf8(text).expect("UTF-8"), document);
            assert_eq!(
                std::str::from_utf8(quoted).expect("UTF-8"),
                serde_json::to_string(&document).expect("serializes"),
                "{texts:?}"
            );
        }
    }

    #[test]
    fn a_document_and_its_string_are_written_in_one_pass_as_serde_json_writes_them() {
        assert_both_forms(&[]);
        for byte in 0u8..=0x7f {
            let c = char::from(byte);
            for offset in 0..17 {
                let text = format!("{}{c}{}", "a".repeat(offset), "z".repeat(9));
                assert_both_forms(&[&c.to_string(), &text]);
            }
        }
        assert_both_forms(&[
            "",
            r#"{"before":{"id":"1","name":"O\"Brien \\ co"},"after":null}"#,
            "\"\\\"\\\\\"",
            "\u{0}\u{1}\u{1f}\u{7f}\u{8}\u{c}\n\r\t",
            "line\u{2028}separator\u{2029}paragraph \u{85} é 😀",
            "\u{a2}\u{dc}\u{422}\u{45c}\u{2022}\u{205c}\u{101}\u{10}",
        ]);
    }

    proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(text in any::<String>()) {
            prop_assert_eq!(ours(&text), serde_jsons(&text));
        }

        #[test]
        fn strings_of_escapes_and_plain_runs_are_written_as_serde_json_writes_them(
            text in "[\"\\\\\\x00-\\x1f\\x7fa-z{}:,é\u{2028}😀]{0,64}"
        ) {
            prop_assert_eq!(ours(&text), serde_jsons(&text));
        }

        #[test]
        fn any_strings_are_written_in_both_forms_as_serde_json_writes_them(
            texts in proptest::collection::vec(any::<String>(), 0..4),
            escapes in proptest::collection::vec("[\"\\\\\\x00-\\x1fa-z\u{2028}é]{0,24}", 0..4),
        ) {
            let all: Vec<&str> = texts.iter().chain(&escapes).map(String::as_str).collect();
            assert_both_forms(&all);
        }
    }
}
