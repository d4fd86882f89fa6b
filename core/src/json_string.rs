//! A JSON string written straight into a byte buffer: quoted and escaped exactly as serde_json
//! escapes it, so a body written here is byte for byte the body serde_json would write.
//!
//! The lean AWS client writes every string of a `PutItem` and `PutEvents` body with it, the
//! event's `Detail` (itself JSON, so dense with quotes) included. serde_json's escaper looks at
//! one byte at a time through its `Formatter`; this one tests eight bytes at once for a byte
//! that needs escaping, escapes every one the word holds, copies the runs between them whole,
//! and writes each escape as one slice (`make bench-ir`'s `entry` path: 24.0K → 18.0K
//! instructions for a 1 KB change event's `PutEvents` entry).

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
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // `run` is where the bytes not yet copied start; `at` is the next byte to look at.
    let mut run = 0;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let mut found = marks(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        // Little-endian: the first byte in memory is the lowest one. A mark above a real one
        // may be a borrow's: the table has the last word.
        while found != 0 {
            let here = at + (found.trailing_zeros() / 8) as usize;
            if ESCAPE[usize::from(bytes[here])] != 0 {
                escape(out, &bytes[run..here], bytes[here]);
                run = here + 1;
            }
            found &= found - 1;
        }
        at += 8;
    }
    for (here, &byte) in bytes.iter().enumerate().skip(at) {
        if ESCAPE[usize::from(byte)] != 0 {
            escape(out, &bytes[run..here], byte);
            run = here + 1;
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Appends the plain bytes `before`, then `byte` escaped.
#[inline]
fn escape(out: &mut Vec<u8>, before: &[u8], byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(before);
    match ESCAPE[usize::from(byte)] {
        b'u' => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]),
        short => out.extend_from_slice(&[b'\\', short]),
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
    }
}
