//! A JSON string written straight into a byte buffer: quoted and escaped exactly as serde_json
//! escapes it, so a body written here is byte for byte the body serde_json would write.
//!
//! The lean AWS client writes every string of a `PutItem` and `PutEvents` body with it, the
//! event's `Detail` (itself JSON, so dense with quotes) included.

/// Appends `text` to `out` as a JSON string: quoted, with `"`, `\` and the control bytes
/// escaped (`\b \f \n \r \t` in their short form, the others as `\u00xx`); everything else,
/// multi-byte UTF-8 included, is copied as it is.
pub fn write(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
}
