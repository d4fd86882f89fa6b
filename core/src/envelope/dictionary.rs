//! zstd dictionaries for `CrossRegionEvent` payloads, and the one eda ships.
//!
//! CDC events are small (around 1 KB) and alike, which is where a trained dictionary pays: zstd
//! alone finds little to reuse inside one event, while a dictionary carries the field names and
//! common values of all of them. The sender names the dictionary in the envelope
//! (`dictionary_id`), and the receiver keeps every dictionary it may meet, so a new one can be
//! rolled out without breaking events in flight.
//!
//! # The shipped dictionary
//!
//! `core/dictionaries/cdc-v1.zdict` (id [`SHIPPED_DICTIONARY_ID`]) is trained on
//! [`super::samples::training_set`]`(0, 4000)`. To retrain it, change the generator or the
//! sample count and run, by hand:
//!
//! ```text
//! cargo test -p eda-core --lib -- --ignored retrain_dictionary
//! ```
//!
//! then update [`SHIPPED_DICTIONARY_ID`] to the id the test prints. A dictionary whose content
//! changes gets a new id: ship it under a new file name (`cdc-v2.zdict`) and keep decoding the old
//! one until every sender has moved, since a receiver without the sender's dictionary cannot read
//! its events.

use super::EnvelopeError;

/// The dictionary trained on CDC-like messages, compiled into the binary so every region has it
/// without a file to deploy.
pub const SHIPPED_DICTIONARY: &[u8] = include_bytes!("../../dictionaries/cdc-v1.zdict");

/// The id zstd embedded in [`SHIPPED_DICTIONARY`]; a test keeps the two in step.
pub const SHIPPED_DICTIONARY_ID: u32 = 477_300_112;

/// Largest dictionary accepted, so a wrong `dictionary_path` (a data file) fails at start-up
/// instead of costing memory in every zstd context.
pub const MAX_DICTIONARY_BYTES: usize = 1024 * 1024;

/// A zstd dictionary and the id both sides use to name it.
#[derive(Clone, PartialEq, Eq)]
pub struct Dictionary {
    /// The id written in the envelope and in each zstd frame.
    id: u32,
    /// The dictionary content, as trained (or raw content, for [`Dictionary::with_id`]).
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("id", &self.id)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl Dictionary {
    /// A trained dictionary, whose id zstd wrote into its header; the usual way to load the file
    /// named by `routing.dictionary_path`.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, EnvelopeError> {
        check_len(&bytes)?;
        let id = zstd::zstd_safe::get_dict_id_from_dict(&bytes)
            .ok_or(EnvelopeError::DictionaryWithoutId)?
            .get();
        Ok(Self { id, bytes })
    }

    /// A dictionary with an id chosen by the operator, for raw-content dictionaries that carry
    /// none (zstd then uses the bytes as a plain prefix).
    pub fn with_id(bytes: Vec<u8>, id: u32) -> Result<Self, EnvelopeError> {
        check_len(&bytes)?;
        if id == 0 {
            return Err(EnvelopeError::InvalidDictionary(
                "dictionary id 0 means \"no dictionary\" to zstd".into(),
            ));
        }
        Ok(Self { id, bytes })
    }

    /// The dictionary shipped in the binary ([`SHIPPED_DICTIONARY`]).
    pub fn shipped() -> Result<Self, EnvelopeError> {
        Self::from_bytes(SHIPPED_DICTIONARY.to_vec())
    }

    /// The id senders put in the envelope.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The dictionary content, for building zstd contexts.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn check_len(bytes: &[u8]) -> Result<(), EnvelopeError> {
    if bytes.is_empty() {
        return Err(EnvelopeError::InvalidDictionary(
            "the dictionary is empty".into(),
        ));
    }
    if bytes.len() > MAX_DICTIONARY_BYTES {
        return Err(EnvelopeError::InvalidDictionary(format!(
            "the dictionary is {} bytes, more than the {MAX_DICTIONARY_BYTES}-byte limit",
            bytes.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_dictionary_has_the_documented_id() {
        let d = Dictionary::shipped().unwrap();
        assert_eq!(d.id(), SHIPPED_DICTIONARY_ID);
        assert!(
            (2 * 1024..=16 * 1024).contains(&d.bytes().len()),
            "{} bytes",
            d.bytes().len()
        );
    }

    #[test]
    fn raw_content_needs_an_explicit_nonzero_id() {
        assert!(matches!(
            Dictionary::from_bytes(b"plain prefix without a header".to_vec()),
            Err(EnvelopeError::DictionaryWithoutId)
        ));
        assert!(Dictionary::with_id(b"prefix".to_vec(), 0).is_err());
        assert_eq!(
            Dictionary::with_id(b"prefix".to_vec(), 42).unwrap().id(),
            42
        );
        assert!(Dictionary::from_bytes(Vec::new()).is_err());
    }

    /// Writes the shipped dictionary; run by hand (see the module docs), never in CI.
    #[test]
    #[ignore = "writes the shipped dictionary; run by hand"]
    fn retrain_dictionary() {
        let samples = super::super::samples::training_set(0, 4_000);
        let dict = zstd::dict::from_samples(&samples, 16 * 1024).unwrap();
        let id = zstd::zstd_safe::get_dict_id_from_dict(&dict).map_or(0, |id| id.get());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dictionaries/cdc-v1.zdict");
        std::fs::write(path, &dict).unwrap();
        println!(
            "wrote {path}: {} bytes, dictionary id {id}; set SHIPPED_DICTIONARY_ID to it",
            dict.len()
        );
    }
}
