//! The checks. They only read the event, so a failed event is returned exactly as received, and
//! they never stop at the first failure: every reason is collected.
//!
//! A valid event costs no allocation here; messages are only formatted for failures.

use super::field::{FieldPath, Found, Root};
use super::{time, BaseEvent, Reason, ReasonCode, Rule, Transformer};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Byte classes for [`is_valid_email`]: `ATEXT` for what a dot-atom local part may hold besides
/// dots, `LABEL` for what a domain label may hold (letters, digits, hyphens).
const ATEXT: u8 = 1;
const LABEL: u8 = 2;
static EMAIL_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = if b.is_ascii_alphanumeric() || b == b'-' {
            ATEXT | LABEL
        } else if matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'/'
                | b'='
                | b'?'
                | b'^'
                | b'_'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
                | b'~'
        ) {
            ATEXT
        } else {
            0
        };
        i += 1;
    }
    table
};

/// Whether `s` is a plausible e-mail address: one `@`, a dot-atom local part of at most 64
/// characters, and a domain of at least two labels (letters, digits, inner hyphens). Stricter
/// than RFC 5322 on purpose: quoted local parts and IP-literal domains are not what our
/// producers send, and accepting them lets typos through. One pass over the bytes with a class
/// table: this runs for every e-mail field of every event.
pub fn is_valid_email(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some(at) = memchr::memrchr(b'@', bytes) else {
        return false;
    };
    let (local, domain) = (&bytes[..at], &bytes[at + 1..]);
    if local.is_empty() || local.len() > 64 || domain.len() > 253 {
        return false;
    }
    // Dot-atom: allowed characters, dots only between non-dots.
    let mut previous_dot = true; // a leading dot is refused like a doubled one
    for &b in local {
        let dot = b == b'.';
        let refused = if dot {
            previous_dot
        } else {
            EMAIL_CLASS[usize::from(b)] & ATEXT == 0
        };
        if refused {
            return false;
        }
        previous_dot = dot;
    }
    if previous_dot {
        return false;
    }
    // Labels of 1 to 63 letters, digits and inner hyphens; at least two of them.
    let (mut labels, mut len, mut previous) = (1, 0, b'.');
    for &b in domain {
        if b == b'.' {
            if len == 0 || previous == b'-' {
                return false;
            }
            labels += 1;
            len = 0;
        } else {
            if EMAIL_CLASS[usize::from(b)] & LABEL == 0 || (len == 0 && b == b'-') || len == 63 {
                return false;
            }
            len += 1;
        }
        previous = b;
    }
    len > 0 && previous != b'-' && labels >= 2
}

fn push(reasons: &mut Vec<Reason>, field: &str, code: ReasonCode, message: impl Into<String>) {
    reasons.push(Reason {
        field: field.to_owned(),
        code,
        message: message.into(),
    });
}

/// Where the timestamp stands before the bounds check.
enum RawTimestamp<'a> {
    Missing,
    WrongType,
    Text(&'a str),
    Millis(i64),
}

impl Transformer {
    /// Checks a built event; returns its parsed timestamp when it has one.
    pub(super) fn validate_event(
        &self,
        event: &BaseEvent,
        now: DateTime<Utc>,
        reasons: &mut Vec<Reason>,
    ) -> Option<DateTime<Utc>> {
        self.check_event_id(text(&event.event_id), reasons);
        check_required_str(Root::EventType, text(&event.event_type), reasons);
        check_required_str(Root::SourceRegion, text(&event.source_region), reasons);
        let raw = if event.timestamp.is_empty() {
            RawTimestamp::Missing
        } else {
            RawTimestamp::Text(&event.timestamp)
        };
        let timestamp = self.check_timestamp(raw, now, reasons);
        self.check_fields(|path| path.find(event), reasons);
        timestamp
    }

    /// Checks raw event JSON; returns its parsed timestamp when it has one.
    pub(super) fn validate_json(
        &self,
        event: &Map<String, Value>,
        now: DateTime<Utc>,
        reasons: &mut Vec<Reason>,
    ) -> Option<DateTime<Utc>> {
        let top = |root: Root| match event.get(root.key()) {
            None | Some(Value::Null) => Found::Missing,
            Some(Value::String(s)) if s.is_empty() => Found::Missing,
            Some(Value::String(s)) => Found::Str(s),
            Some(_) => Found::Other,
        };
        self.check_event_id(top(Root::EventId), reasons);
        check_required_str(Root::EventType, top(Root::EventType), reasons);
        check_required_str(Root::SourceRegion, top(Root::SourceRegion), reasons);
        let raw = match event.get("timestamp") {
            None | Some(Value::Null) => RawTimestamp::Missing,
            Some(Value::String(s)) if s.is_empty() => RawTimestamp::Missing,
            Some(Value::String(s)) => RawTimestamp::Text(s),
            Some(Value::Number(n)) => n
                .as_i64()
                .map_or(RawTimestamp::WrongType, RawTimestamp::Millis),
            Some(_) => RawTimestamp::WrongType,
        };
        let timestamp = self.check_timestamp(raw, now, reasons);
        match event.get("correlation_id") {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(_) => push(
                reasons,
                "correlation_id",
                ReasonCode::InvalidType,
                "expected a string",
            ),
        }
        match event.get("metadata") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    if !value.is_string() {
                        push(
                            reasons,
                            &format!("metadata.{key}"),
                            ReasonCode::InvalidType,
                            "expected a string",
                        );
                    }
                }
            }
            Some(_) => push(
                reasons,
                "metadata",
                ReasonCode::InvalidType,
                "expected an object of strings",
            ),
        }
        self.check_fields(|path| path.find_json(event), reasons);
        timestamp
    }

    fn check_event_id(&self, found: Found<'_>, reasons: &mut Vec<Reason>) {
        if let Found::Str(id) = found {
            if uuid::Uuid::try_parse(id).is_err() {
                push(
                    reasons,
                    "event_id",
                    ReasonCode::InvalidUuid,
                    "is not a UUID",
                );
            }
        } else {
            check_required_str(Root::EventId, found, reasons);
        }
    }

    fn check_timestamp(
        &self,
        raw: RawTimestamp<'_>,
        now: DateTime<Utc>,
        reasons: &mut Vec<Reason>,
    ) -> Option<DateTime<Utc>> {
        const FIELD: &str = "timestamp";
        let parsed = match raw {
            RawTimestamp::Missing => {
                push(reasons, FIELD, ReasonCode::MissingField, "is required");
                return None;
            }
            RawTimestamp::WrongType => {
                push(
                    reasons,
                    FIELD,
                    ReasonCode::InvalidType,
                    "expected a string or integer epoch milliseconds",
                );
                return None;
            }
            RawTimestamp::Text(s) => time::parse_timestamp(s),
            RawTimestamp::Millis(ms) => time::from_epoch_millis(ms),
        };
        let Some(ts) = parsed else {
            push(
                reasons,
                FIELD,
                ReasonCode::InvalidTimestamp,
                "is not RFC 3339, epoch milliseconds or YYYY-MM-DDTHH:MM:SS[.ffffff]",
            );
            return None;
        };
        let age = now.signed_duration_since(ts);
        if age > self.max_age {
            push(
                reasons,
                FIELD,
                ReasonCode::TimestampTooOld,
                format!(
                    "{} is {} s old, over the {} s allowed",
                    time::format_millis(&ts),
                    age.num_seconds(),
                    self.max_age.num_seconds()
                ),
            );
        } else if -age > self.max_future {
            push(
                reasons,
                FIELD,
                ReasonCode::TimestampInFuture,
                format!(
                    "{} is {} s ahead, over the {} s allowed",
                    time::format_millis(&ts),
                    (-age).num_seconds(),
                    self.max_future.num_seconds()
                ),
            );
        }
        Some(ts)
    }

    /// The configured checks (`uuid_fields`, `email_fields`, `rules`), over either event shape.
    fn check_fields<'a>(&self, find: impl Fn(&FieldPath) -> Found<'a>, reasons: &mut Vec<Reason>) {
        for path in &self.uuid_fields {
            if path.root() == Root::EventId {
                continue; // Always checked above; one reason per failure.
            }
            match find(path) {
                Found::Str(s) => {
                    if uuid::Uuid::try_parse(self.effective(path, s)).is_err() {
                        push(
                            reasons,
                            path.text(),
                            ReasonCode::InvalidUuid,
                            "is not a UUID",
                        );
                    }
                }
                Found::Missing | Found::Null => {}
                Found::Number(_) | Found::Other => push(
                    reasons,
                    path.text(),
                    ReasonCode::InvalidType,
                    "expected a string",
                ),
            }
        }
        for path in &self.email_fields {
            match find(path) {
                Found::Str(s) => {
                    if !is_valid_email(s.trim()) {
                        push(
                            reasons,
                            path.text(),
                            ReasonCode::InvalidEmail,
                            "is not an e-mail address",
                        );
                    }
                }
                Found::Missing | Found::Null => {}
                Found::Number(_) | Found::Other => push(
                    reasons,
                    path.text(),
                    ReasonCode::InvalidType,
                    "expected a string",
                ),
            }
        }
        for rule in &self.rules {
            self.check_rule(rule, find(&rule.path), reasons);
        }
    }

    fn check_rule(&self, rule: &Rule, found: Found<'_>, reasons: &mut Vec<Reason>) {
        let field = rule.path.text();
        if found.is_absent() {
            if rule.required {
                push(reasons, field, ReasonCode::MissingField, "is required");
            }
            return;
        }
        let text = match found {
            Found::Str(s) => Some(self.effective(&rule.path, s)),
            _ => None,
        };
        if rule.pattern.is_some() || !rule.one_of.is_empty() || rule.max_len.is_some() {
            match text {
                None => push(reasons, field, ReasonCode::InvalidType, "expected a string"),
                Some(s) => {
                    if let Some(pattern) = &rule.pattern {
                        if !pattern.is_match(s) {
                            push(
                                reasons,
                                field,
                                ReasonCode::RulePattern,
                                format!("does not match `{}`", pattern.as_str()),
                            );
                        }
                    }
                    if !rule.one_of.is_empty() && !rule.one_of.iter().any(|v| v == s) {
                        push(
                            reasons,
                            field,
                            ReasonCode::RuleOneOf,
                            format!("is not one of {}", rule.one_of.join(", ")),
                        );
                    }
                    if let Some(max_len) = rule.max_len {
                        let len = s.chars().count();
                        if len > max_len {
                            push(
                                reasons,
                                field,
                                ReasonCode::RuleMaxLen,
                                format!("has {len} characters, over the {max_len} allowed"),
                            );
                        }
                    }
                }
            }
        }
        if rule.min.is_some() || rule.max.is_some() {
            // Qlik writes DECIMAL columns as strings; a numeric string is a number here.
            let number = match found {
                Found::Number(n) => Some(n),
                _ => text
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|n| n.is_finite()),
            };
            match number {
                None => push(reasons, field, ReasonCode::InvalidType, "expected a number"),
                Some(n) => {
                    if let Some(min) = rule.min.filter(|min| n < *min) {
                        push(
                            reasons,
                            field,
                            ReasonCode::RuleMin,
                            format!("{n} is below {min}"),
                        );
                    }
                    if let Some(max) = rule.max.filter(|max| n > *max) {
                        push(
                            reasons,
                            field,
                            ReasonCode::RuleMax,
                            format!("{n} is above {max}"),
                        );
                    }
                }
            }
        }
    }

    /// The string a check sees: what the normalized event will hold, so a value that only
    /// differs by surrounding blanks is judged as it will be published.
    fn effective<'s>(&self, path: &FieldPath, s: &'s str) -> &'s str {
        if self.trim_strings && path.in_payload() {
            s.trim()
        } else {
            s
        }
    }
}

/// A built event's required string: empty means absent.
fn text(s: &str) -> Found<'_> {
    if s.is_empty() {
        Found::Missing
    } else {
        Found::Str(s)
    }
}

fn check_required_str(root: Root, found: Found<'_>, reasons: &mut Vec<Reason>) {
    match found {
        Found::Str(_) => {}
        Found::Missing | Found::Null => {
            push(reasons, root.key(), ReasonCode::MissingField, "is required")
        }
        Found::Number(_) | Found::Other => push(
            reasons,
            root.key(),
            ReasonCode::InvalidType,
            "expected a string",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::is_valid_email;
    use proptest::prelude::*;

    /// The rule as first written (split on `@` and `.`), kept as the oracle for the table-driven
    /// check.
    fn email_by_splitting(s: &str) -> bool {
        let Some((local, domain)) = s.rsplit_once('@') else {
            return false;
        };
        if local.is_empty() || local.len() > 64 || domain.len() > 253 {
            return false;
        }
        let mut previous_dot = true;
        for &b in local.as_bytes() {
            let dot = b == b'.';
            let allowed = b.is_ascii_alphanumeric() || dot || b"!#$%&'*+/=?^_`{|}~-".contains(&b);
            if !allowed || (dot && previous_dot) {
                return false;
            }
            previous_dot = dot;
        }
        if previous_dot {
            return false;
        }
        let mut labels = 0;
        for label in domain.split('.') {
            let bytes = label.as_bytes();
            let ok = matches!((bytes.first(), bytes.last()), (Some(f), Some(l)) if *f != b'-' && *l != b'-')
                && bytes.len() <= 63
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-');
            if !ok {
                return false;
            }
            labels += 1;
        }
        labels >= 2
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Mostly address-like text (so that valid ones come up often), with any character
        /// now and then.
        #[test]
        fn table_check_agrees_with_splitting(
            s in "[a-c.@_+-]{0,4}([a-z0-9.-]{0,70}@){0,2}[a-zA-Z0-9.-]{0,70}(\\.[a-z]{1,3})?|\\PC{0,12}|[a-c.@-]{60,70}@b.c[o-]",
        ) {
            prop_assert_eq!(is_valid_email(&s), email_by_splitting(&s), "{:?}", s);
        }
    }

    #[test]
    fn emails() {
        for ok in [
            "a@b.co",
            "First.Last+tag@Example.COM",
            "x_y-z@sub.domain.org",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@b.co",
            "a@",
            "a@b",
            "a@@b.co",
            "a@b..co",
            ".a@b.co",
            "a.@b.co",
            "a..b@c.co",
            "a b@c.co",
            "a@-b.co",
            "a@b-.co",
            "a@b_c.co",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
        // Length limits: a local part of 64 and a label of 63 characters, and one more.
        let (local, label) = ("l".repeat(64), "d".repeat(63));
        assert!(is_valid_email(&format!("{local}@{label}.co")));
        assert!(!is_valid_email(&format!("{local}x@{label}.co")));
        assert!(!is_valid_email(&format!("{local}@{label}x.co")));
        assert!(!is_valid_email(&format!("a@b.{label}x")));
    }
}
