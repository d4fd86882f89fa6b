//! Typed configuration errors: each names the key and the rule it broke.

use std::fmt;

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer could not be read or did not fit the schema (unknown key, wrong type). Figment's
    /// message names the key and the file or environment variable it came from.
    #[error("{0}")]
    Load(Box<figment::Error>),
    /// The values parsed but break one or more rules; every broken rule is listed.
    #[error("{} invalid setting(s):\n{}", .0.len(), ValidationErrors(.0))]
    Invalid(Vec<ValidationError>),
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        ConfigError::Load(Box::new(err))
    }
}

struct ValidationErrors<'a>(&'a [ValidationError]);

impl fmt::Display for ValidationErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {err}")?;
        }
        Ok(())
    }
}

/// One broken rule. The first field of every variant is the dotted key, so an operator can find
/// the line to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// A required value is missing or blank.
    #[error("{key} must not be empty")]
    Empty {
        /// The dotted key.
        key: String,
    },
    /// A number outside the range the component can work with.
    #[error("{key} ({value}) must be between {min} and {max}")]
    OutOfRange {
        /// The dotted key.
        key: String,
        /// The value given.
        value: String,
        /// Smallest accepted value.
        min: String,
        /// Largest accepted value.
        max: String,
    },
    /// Two settings that must be ordered are not.
    #[error("{key} ({value}) must be less than {other_key} ({other_value})")]
    MustBeLess {
        /// The dotted key that is too large.
        key: String,
        /// Its value.
        value: String,
        /// The key it must stay under.
        other_key: String,
        /// That key's value.
        other_value: String,
    },
    /// Any other malformed value, with the reason.
    #[error("{key} ({value}) is invalid: {reason}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Collects validation errors while walking the configuration, so every broken rule is reported
/// at once instead of one per run.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<ValidationError>,
}

impl Validator {
    /// The errors found so far.
    pub fn into_errors(self) -> Vec<ValidationError> {
        self.errors
    }

    /// Records an error built by the caller.
    pub fn push(&mut self, err: ValidationError) {
        self.errors.push(err);
    }

    /// `key` must not be blank.
    pub fn non_empty(&mut self, key: &str, value: &str) {
        if value.trim().is_empty() {
            self.push(ValidationError::Empty { key: key.into() });
        }
    }

    /// `key` must name at least one item.
    pub fn non_empty_list<T>(&mut self, key: &str, value: &[T]) {
        if value.is_empty() {
            self.push(ValidationError::Empty { key: key.into() });
        }
    }

    /// `value` must lie in `min..=max`.
    pub fn range<T: PartialOrd + fmt::Display>(&mut self, key: &str, value: T, min: T, max: T) {
        if value < min || value > max {
            self.push(ValidationError::OutOfRange {
                key: key.into(),
                value: value.to_string(),
                min: min.to_string(),
                max: max.to_string(),
            });
        }
    }

    /// `value` (at `key`) must be strictly less than `other` (at `other_key`).
    pub fn less<T: PartialOrd + fmt::Display>(
        &mut self,
        key: &str,
        value: T,
        other_key: &str,
        other: T,
    ) {
        if value >= other {
            self.push(ValidationError::MustBeLess {
                key: key.into(),
                value: value.to_string(),
                other_key: other_key.into(),
                other_value: other.to_string(),
            });
        }
    }

    /// Records a malformed value with its reason.
    pub fn invalid(&mut self, key: &str, value: impl fmt::Display, reason: impl Into<String>) {
        self.push(ValidationError::Invalid {
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        });
    }

    /// `value`, when set, must be an http(s) URL.
    pub fn url(&mut self, key: &str, value: &str) {
        if !(value.starts_with("http://") || value.starts_with("https://")) {
            self.invalid(key, value, "must be an http:// or https:// URL");
        }
    }
}
