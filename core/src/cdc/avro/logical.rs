//! Avro logical values rendered as natural JSON text: exact decimals and RFC 3339 timestamps.

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat};

/// RFC 3339 with a fixed number of fractional digits, written by hand: chrono's formatter costs
/// more than the rest of a column's decoding. Years outside 0..=9999 fall back to chrono.
pub(crate) fn rfc3339(dt: &DateTime<chrono::Utc>, fmt: SecondsFormat, utc: bool) -> Rendered {
    use chrono::{Datelike, Timelike};
    let year = dt.year();
    if !(0..=9999).contains(&year) {
        let text = dt.to_rfc3339_opts(fmt, true);
        return Rendered::Owned(if utc {
            text
        } else {
            text.trim_end_matches('Z').to_owned()
        });
    }
    let (digits, frac) = match fmt {
        SecondsFormat::Millis => (3, dt.nanosecond() / 1_000_000),
        SecondsFormat::Micros => (6, dt.nanosecond() / 1_000),
        _ => (9, dt.nanosecond()),
    };
    // `YYYY-MM-DDTHH:MM:SS.` then the fraction and `Z`.
    let mut buf: [u8; INLINE] = *b"0000-00-00T00:00:00.000000000Z";
    put_digits(&mut buf[0..4], year.unsigned_abs());
    put_digits(&mut buf[5..7], dt.month());
    put_digits(&mut buf[8..10], dt.day());
    put_digits(&mut buf[11..13], dt.hour());
    put_digits(&mut buf[14..16], dt.minute());
    // A leap second shows as nanosecond >= 1e9; clamp the fraction, keep the second.
    put_digits(&mut buf[17..19], dt.second());
    let end = 20 + digits;
    put_digits(&mut buf[20..end], frac.min(10u32.pow(digits as u32) - 1));
    let len = if utc {
        buf[end] = b'Z';
        end + 1
    } else {
        end
    };
    Rendered::Inline(buf, len)
}

/// A date as `YYYY-MM-DD`, written by hand like [`rfc3339`]; other years as chrono spells them.
pub(crate) fn iso_date(date: chrono::NaiveDate) -> Rendered {
    use chrono::Datelike;
    let year = date.year();
    if !(0..=9999).contains(&year) {
        return Rendered::Owned(date.to_string());
    }
    let mut buf = [0u8; INLINE];
    buf[..10].copy_from_slice(b"0000-00-00");
    put_digits(&mut buf[0..4], year.unsigned_abs());
    put_digits(&mut buf[5..7], date.month());
    put_digits(&mut buf[8..10], date.day());
    Rendered::Inline(buf, 10)
}

/// Room for the longest hand-written text: a timestamp with nanoseconds and `Z`.
const INLINE: usize = 30;

/// Text of a date or timestamp: ASCII written by hand on the stack (no allocation), or chrono's
/// own spelling for years outside 0..=9999.
pub(crate) enum Rendered {
    /// The first `.1` bytes of the buffer.
    Inline([u8; INLINE], usize),
    /// chrono's text.
    Owned(String),
}

impl Rendered {
    /// The text's bytes (UTF-8: ASCII when inline).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Rendered::Inline(buf, len) => buf.get(..*len).unwrap_or_default(),
            Rendered::Owned(s) => s.as_bytes(),
        }
    }

    /// The text as a `String`.
    pub(crate) fn into_string(self) -> String {
        match self {
            Rendered::Inline(..) => String::from_utf8_lossy(self.as_bytes()).into_owned(),
            Rendered::Owned(s) => s,
        }
    }
}

/// Writes the last `out.len()` decimal digits of `v` into `out`, zero-padded.
fn put_digits(out: &mut [u8], mut v: u32) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// [`decimal_string`] for unscaled values that fit an `i128` (every decimal of precision up to
/// 38): sign-extended, then written with `itoa`.
fn small_decimal(raw: &[u8], scale: usize) -> String {
    let negative = raw.first().is_some_and(|b| b & 0x80 != 0);
    let mut wide = if negative { [0xff; 16] } else { [0; 16] };
    wide[16 - raw.len()..].copy_from_slice(raw);
    let unscaled = i128::from_be_bytes(wide);
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(unscaled.unsigned_abs());
    let mut s = String::with_capacity(digits.len() + scale + 3);
    if negative {
        s.push('-');
    }
    if scale == 0 {
        s.push_str(digits);
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        s.push_str(int);
        s.push('.');
        s.push_str(frac);
    } else {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', scale - digits.len()));
        s.push_str(digits);
    }
    s
}

/// Binary values (Avro `bytes`/`fixed`) become standard base64 text, the usual JSON spelling.
pub(crate) fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Renders a two's-complement big-endian unscaled integer with `scale` fractional digits, exactly
/// (no float conversion): decimals come out as strings such as `"-12.50"`.
pub(crate) fn decimal_string(raw: &[u8], scale: usize) -> String {
    if raw.len() <= 16 {
        return small_decimal(raw, scale);
    }
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
        fn decimals_match_integer_formatting(unscaled in proptest::prelude::any::<i64>(), scale in 0usize..8, width in 8usize..20) {
            // Also as wider two's complement (sign-extended), past the i128 fast path.
            let mut wide = vec![if unscaled < 0 { 0xff } else { 0 }; width - 8];
            wide.extend_from_slice(&unscaled.to_be_bytes());
            let text = decimal_string(&wide, scale);
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
                rfc3339(&dt, SecondsFormat::Micros, true).into_string(),
                dt.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
        }

        #[test]
        fn dates_match_chrono(days in -1_000_000i64..3_500_000) {
            let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|e| e.checked_add_signed(chrono::Duration::days(days)))
                .expect("in range");
            proptest::prop_assert_eq!(iso_date(date).into_string(), date.to_string());
        }
    }
}
