//! Event timestamps: the forms producers send, and the one form eda emits.
//!
//! Producers disagree on time. Qlik Replicate writes `2024-05-01T12:00:00.123456` with no zone
//! (it is UTC), APIs send RFC 3339 with an offset, some services send epoch milliseconds. Every
//! event leaves the transformer with one form, RFC 3339 in UTC with milliseconds
//! (`2024-05-01T12:00:00.123Z`), so consumers compare strings and parse one shape.
//!
//! The common shapes are parsed by hand (the CDC path parses one timestamp per event and
//! chrono's generic parser costs several times more); anything else falls back to chrono's
//! RFC 3339 parser, so no valid input is refused for speed.

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveTime, SecondsFormat, SubsecRound, TimeDelta, Timelike, Utc,
};
use serde::{Deserialize, Deserializer, Serializer};

/// Parses an event timestamp: RFC 3339 (any offset), Qlik's zone-less
/// `YYYY-MM-DDTHH:MM:SS[.ffffff]` read as UTC, or a string of digits read as epoch milliseconds.
/// `None` when it is none of those, so the caller can name the field in its reason.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let bytes = s.as_bytes();
    if !bytes.is_empty() && bytes.len() <= 18 && bytes.iter().all(u8::is_ascii_digit) {
        return s
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis);
    }
    parse_fast(bytes).or_else(|| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// Epoch milliseconds as a UTC time, for producers that send a JSON number.
pub fn from_epoch_millis(millis: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
}

/// Drops everything below the millisecond, so an event holds exactly what it serializes to and
/// transforming it again changes nothing.
pub fn truncate_to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.nanosecond();
    // Cheaper than `trunc_subsecs`, which goes through a signed-duration subtraction.
    t.with_nanosecond(nanos - nanos % 1_000_000)
        .unwrap_or_else(|| t.trunc_subsecs(3))
}

/// Formats a time as `2024-05-01T12:00:00.123Z`: the one timestamp form eda emits.
pub fn format_millis(t: &DateTime<Utc>) -> String {
    let mut buf = [0u8; 24];
    match write_millis(t, &mut buf) {
        // The buffer holds only ASCII digits and separators.
        Some(s) => s.to_owned(),
        None => t.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}

/// Writes the fixed 24-byte form into `buf`; `None` for years outside 0..=9999, which need
/// chrono's general formatter.
fn write_millis<'b>(t: &DateTime<Utc>, buf: &'b mut [u8; 24]) -> Option<&'b str> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    // A leap second reports 1000+ milliseconds; it is shown as the last millisecond.
    let millis = t.timestamp_subsec_millis().min(999);
    let mut put = |at: usize, value: u32, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    put(20, millis, 3);
    buf[4] = b'-';
    buf[7] = b'-';
    buf[10] = b'T';
    buf[13] = b':';
    buf[16] = b':';
    buf[19] = b'.';
    buf[23] = b'Z';
    std::str::from_utf8(buf).ok()
}

/// The hand parser for `YYYY-MM-DD(T| )HH:MM:SS[.f{1,}][Z|±HH:MM]`; no zone means UTC.
fn parse_fast(b: &[u8]) -> Option<DateTime<Utc>> {
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(d - b'0');
            }
            i += 1;
        }
        let len = i - start;
        if len == 0 {
            return None;
        }
        if len < 9 {
            nanos *= 10u32.pow((9 - len) as u32);
        }
    }
    let offset_secs: i64 = match &b[i..] {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = i64::from(digits(&[*h1, *h2])?);
            let m = i64::from(digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let local = date.and_time(time);
    if offset_secs == 0 {
        return Some(local.and_utc());
    }
    let utc = local.checked_sub_signed(TimeDelta::seconds(offset_secs))?;
    Some(utc.and_utc())
}

/// Reads a run of ASCII digits as a number; `None` if any byte is not a digit.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, d| {
        d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
    })
}

/// Serde adapter emitting `2024-05-01T12:00:00.123Z` and reading any form
/// [`parse_timestamp`] accepts, used by the events eda publishes.
pub mod rfc3339_millis {
    use super::*;

    /// Writes the time in eda's one emitted form, without an intermediate `String`.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 24];
        match write_millis(t, &mut buf) {
            Some(s) => serializer.serialize_str(s),
            None => serializer.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        }
    }

    /// Reads any accepted timestamp form, so a consumer of our own events never fails on them.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        parse_timestamp(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not a timestamp")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .expect("test literal")
    }

    #[test]
    fn qlik_zone_less_form_is_utc() {
        assert_eq!(
            parse_timestamp("2024-05-01T12:00:00.123456"),
            Some(utc("2024-05-01T12:00:00.123456Z"))
        );
        assert_eq!(
            parse_timestamp("2024-05-01 12:00:00"),
            Some(utc("2024-05-01T12:00:00Z"))
        );
    }

    #[test]
    fn offsets_are_applied() {
        assert_eq!(
            parse_timestamp("2024-05-01T14:30:00+02:30"),
            Some(utc("2024-05-01T12:00:00Z"))
        );
        assert_eq!(
            parse_timestamp("2024-04-30T23:00:00.5-13:00"),
            Some(utc("2024-05-01T12:00:00.5Z"))
        );
    }

    #[test]
    fn epoch_millis_are_accepted() {
        assert_eq!(
            parse_timestamp("1714564800123"),
            Some(utc("2024-05-01T12:00:00.123Z"))
        );
        assert_eq!(from_epoch_millis(0), Some(DateTime::UNIX_EPOCH));
    }

    #[test]
    fn garbage_and_impossible_dates_are_refused() {
        for s in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-05-01T25:00:00Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+0200",
            "2024-05-01T12:00:00 UTC",
            "99999999999999999999",
        ] {
            assert_eq!(parse_timestamp(s), None, "{s}");
        }
    }

    #[test]
    fn leap_second_falls_back_to_chrono() {
        assert!(parse_timestamp("2016-12-31T23:59:60Z").is_some());
    }

    #[test]
    fn emitted_form_has_millis_and_z() {
        let t = utc("2024-05-01T12:00:00.123456Z");
        assert_eq!(format_millis(&t), "2024-05-01T12:00:00.123Z");
        assert_eq!(
            format_millis(&utc("0999-01-02T03:04:05Z")),
            "0999-01-02T03:04:05.000Z"
        );
        assert_eq!(
            parse_timestamp(&format_millis(&t)),
            Some(truncate_to_millis(t))
        );
    }
}
