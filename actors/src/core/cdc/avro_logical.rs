//! Avro logical values rendered as natural JSON text: exact decimals and RFC 3339 timestamps.

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat};

/// RFC 3339 with a fixed number of fractional digits, written by hand: chrono's formatter costs
/// more than the rest of a column's decoding. Years outside 0..=9999 fall back to chrono.
pub(crate) fn rfc3339(dt: &DateTime<chrono::Utc>, fmt: SecondsFormat, utc: bool) -> String {
    use chrono::{Datelike, Timelike};
    let year = dt.year();
    if !(0..=9999).contains(&year) {
        let text = dt.to_rfc3339_opts(fmt, true);
        return if utc {
            text
        } else {
            text.trim_end_matches('Z').to_owned()
        };
    }
    let (digits, frac) = match fmt {
        SecondsFormat::Millis => (3, dt.nanosecond() / 1_000_000),
        SecondsFormat::Micros => (6, dt.nanosecond() / 1_000),
        _ => (9, dt.nanosecond()),
    };
    let mut s = String::with_capacity(32);
    push_num(&mut s, year.unsigned_abs(), 4);
    s.push('-');
    push_num(&mut s, dt.month(), 2);
    s.push('-');
    push_num(&mut s, dt.day(), 2);
    s.push('T');
    push_num(&mut s, dt.hour(), 2);
    s.push(':');
    push_num(&mut s, dt.minute(), 2);
    s.push(':');
    // A leap second shows as nanosecond >= 1e9; clamp the fraction, keep the second.
    push_num(&mut s, dt.second(), 2);
    s.push('.');
    let max = 10u32.pow(digits) - 1;
    push_num(&mut s, frac.min(max), digits);
    if utc {
        s.push('Z');
    }
    s
}

/// Appends `v` zero-padded to `width` digits.
fn push_num(s: &mut String, v: u32, width: u32) {
    let mut buf = [b'0'; 10];
    let mut n = v;
    let mut i = buf.len();
    while n > 0 && i > 0 {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let used = buf.len() - i;
    for _ in used..width as usize {
        s.push('0');
    }
    s.push_str(std::str::from_utf8(&buf[i..]).unwrap_or(""));
}

/// Binary values (Avro `bytes`/`fixed`) become standard base64 text, the usual JSON spelling.
pub(crate) fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Renders a two's-complement big-endian unscaled integer with `scale` fractional digits, exactly
/// (no float conversion): decimals come out as strings such as `"-12.50"`.
pub(crate) fn decimal_string(raw: &[u8], scale: usize) -> String {
    let negative = raw.first().is_some_and(|b| b & 0x80 != 0);
    // Magnitude as big-endian bytes.
    let mut mag: Vec<u8> = if negative {
        let mut inv: Vec<u8> = raw.iter().map(|b| !b).collect();
        for b in inv.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        inv
    } else {
        raw.to_vec()
    };
    // Repeated division by 10 yields the decimal digits, least significant first.
    let mut digits = Vec::new();
    while mag.iter().any(|b| *b != 0) {
        let mut rem: u32 = 0;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    while digits.len() <= scale {
        digits.push(b'0');
    }
    let mut s = String::with_capacity(digits.len() + 2);
    if negative {
        s.push('-');
    }
    for (i, d) in digits.iter().rev().enumerate() {
        if scale > 0 && i == digits.len() - scale {
            s.push('.');
        }
        s.push(char::from(*d));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal_string(&[0x04, 0xD2], 2), "12.34");
        assert_eq!(decimal_string(&[0xFB, 0x2E], 2), "-12.34");
        assert_eq!(decimal_string(&[0x05], 3), "0.005");
        assert_eq!(decimal_string(&[], 0), "0");
        assert_eq!(decimal_string(&[0x80], 0), "-128");
    }
    proptest::proptest! {
        #[test]
        fn decimals_match_integer_formatting(unscaled in proptest::prelude::any::<i64>(), scale in 0usize..8) {
            let text = decimal_string(&unscaled.to_be_bytes(), scale);
            let digits = unscaled.unsigned_abs().to_string();
            let padded = format!("{digits:0>width$}", width = scale + 1);
            let (int, frac) = padded.split_at(padded.len() - scale);
            let sign = if unscaled < 0 { "-" } else { "" };
            let expected = if scale == 0 { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") };
            proptest::prop_assert_eq!(text, expected);
        }

        #[test]
        fn timestamps_match_chrono(micros in -62_135_596_800_000_000i64..253_402_300_799_000_000) {
            let dt = DateTime::from_timestamp_micros(micros).expect("in range");
            proptest::prop_assert_eq!(
                rfc3339(&dt, SecondsFormat::Micros, true),
                dt.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
        }
    }
}
