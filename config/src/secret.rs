//! A string that must never be printed: passwords, keys, inline secrets.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What a [`Secret`] looks like wherever it is displayed or serialized.
pub const REDACTED: &str = "***redacted***";

/// A configuration value that is read from files or the environment but never written back out:
/// `Debug`, `Display` and `Serialize` all show [`REDACTED`], so `check-config` and logs cannot
/// leak it. Code that needs the value calls [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value, for tests and for secrets fetched at run time.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call it only where the value is handed to a client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no value was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}
