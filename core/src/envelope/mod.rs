//! The cross-region envelope: `CrossRegionEvent`, zstd packing and the EventBridge size check.
//!
//! A region router wraps each event it sends to the other region in a [`CrossRegionEvent`]: the
//! routing facts in clear (ids, regions, type, time) and the event itself zstd-compressed and
//! base64-encoded, with a SHA-256 of the uncompressed bytes so the receiver can verify it and
//! drop duplicates. The envelope becomes the `Detail` of one EventBridge entry, which must stay
//! under `routing.max_entry_bytes`; a payload too large for that is either refused with both
//! sizes named, or handed to an [`Offload`] hook that stores it elsewhere and leaves a reference.
//!
//! [`EnvelopePacker`] is built once per router and reused for every event: it keeps its zstd
//! contexts (with the dictionary loaded once) and a scratch buffer, because packing is on the
//! cross-region hot path.
//!
//! # Layout
//!
//! - this file: the envelope type, the packer and its errors;
//! - [`dictionary`]: loading dictionaries and the one eda ships (`cdc-v1`), with how to retrain it;
//! - [`samples`]: the deterministic CDC-like messages the dictionary is trained and measured on.

pub mod dictionary;
pub mod samples;

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use eda_config::RoutingConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zstd::bulk::{Compressor, Decompressor};

pub use dictionary::{Dictionary, SHIPPED_DICTIONARY_ID};

use crate::eventbridge::{self, Detail, EventBridgeEntry};
use crate::json_string::Quoting;
use crate::trace::TraceContext;

/// EventBridge `Source` of cross-region events: the `Source` of every entry a region router
/// sends, and so part of each entry's size.
pub const CROSS_REGION_SOURCE: &str = "eda.cross-region";

/// Largest payload [`EnvelopePacker::unpack`] will inflate, whatever the envelope claims, so a
/// forged `original_size` cannot make a receiver allocate without bound.
pub const MAX_UNPACKED_BYTES: usize = 16 * 1024 * 1024;

/// How the payload bytes are compressed; a field rather than an assumption so the format can
/// change without guessing at the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A single zstd frame, optionally with a dictionary named by `dictionary_id`.
    Zstd,
}

/// An event on its way to the other region: what EventBridge carries as the entry's `Detail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrossRegionEvent {
    /// The wrapped event's id; with `content_hash`, what the receiver de-duplicates on.
    pub event_id: String,
    /// Region that sent the event, so the receiver never routes it back.
    pub source_region: String,
    /// Region the event is for; a receiver drops envelopes addressed elsewhere.
    pub target_region: String,
    /// The wrapped event's EventBridge detail-type, also used as the entry's detail-type.
    pub event_type: String,
    /// Correlation id carried through both regions' logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The W3C `traceparent` the wrapped event was published under (its `metadata.traceparent`),
    /// in clear so the receiving region reads the trace id without unpacking, and sends the
    /// entry with the same X-Ray `TraceHeader`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// When the envelope was made (RFC 3339), for cross-region latency.
    pub created_at: DateTime<Utc>,
    /// Lower-case hex SHA-256 of the uncompressed payload: integrity and de-duplication.
    pub content_hash: String,
    /// How `payload` is compressed.
    pub compression: Compression,
    /// The zstd dictionary used, when one was; the receiver must know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dictionary_id: Option<u32>,
    /// Payload bytes before compression, checked after decompression.
    pub original_size: usize,
    /// Payload bytes after compression (before base64), checked before decompression.
    pub compressed_size: usize,
    /// Base64 (standard, padded) of the compressed payload; empty when `payload_ref` is set.
    #[serde(default)]
    pub payload: String,
    /// Where an [`Offload`] hook stored the compressed payload when it was too large to inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_ref: Option<String>,
}

impl CrossRegionEvent {
    /// Parses an entry's `Detail` back into an envelope, at the receiving region.
    pub fn from_detail(detail: &str) -> Result<Self, EnvelopeError> {
        serde_json::from_str(detail).map_err(|e| EnvelopeError::Malformed(e.to_string()))
    }

    /// The JSON that goes into the EventBridge entry's `Detail`: serde_json's serialization of
    /// the envelope, byte for byte (a test holds the two together), written by hand because it
    /// is on the cross-region hot path: every string goes through [`crate::json_string`]'s
    /// escaper, which passes the base64 payload (most of the bytes, nothing to escape) eight
    /// bytes at a time, where serde_json's looks at each byte.
    pub fn to_detail(&self) -> Result<String, EnvelopeError> {
        Ok(self.detail()?.as_str().to_owned())
    }

    /// [`Self::to_detail`]'s JSON with, written in the same pass, its string form for the
    /// `PutEvents` body (see [`Detail`]).
    pub fn detail(&self) -> Result<Detail, EnvelopeError> {
        let mut failed = None;
        let detail = Detail::written(|out| failed = self.write_detail(out).err());
        match (failed, detail) {
            (Some(err), _) => Err(err),
            (None, Some(detail)) => Ok(detail),
            (None, None) => Err(EnvelopeError::Malformed("the detail is not UTF-8".into())),
        }
    }

    /// Writes [`Self::detail`]'s JSON into `out`. A member name is written as its JSON, quotes
    /// included, which `out` escapes for the string form.
    fn write_detail(&self, out: &mut Quoting) -> Result<(), EnvelopeError> {
        out.string_member(b'{', "event_id", &self.event_id);
        out.string_member(b',', "source_region", &self.source_region);
        out.string_member(b',', "target_region", &self.target_region);
        out.string_member(b',', "event_type", &self.event_type);
        if let Some(id) = &self.correlation_id {
            out.string_member(b',', "correlation_id", id);
        }
        if let Some(traceparent) = &self.traceparent {
            out.string_member(b',', "traceparent", traceparent);
        }
        out.member(b',', "created_at");
        // chrono's own serialization, so the time's form (its fraction digits) is serde's.
        let mut failed = None;
        out.json(|text| failed = serde_json::to_writer(text, &self.created_at).err());
        if let Some(e) = failed {
            return Err(EnvelopeError::Malformed(e.to_string()));
        }
        out.string_member(b',', "content_hash", &self.content_hash);
        out.string_member(
            b',',
            "compression",
            match self.compression {
                Compression::Zstd => "zstd",
            },
        );
        if let Some(id) = self.dictionary_id {
            out.member(b',', "dictionary_id");
            out.plain(itoa::Buffer::new().format(id).as_bytes());
        }
        out.member(b',', "original_size");
        out.plain(itoa::Buffer::new().format(self.original_size).as_bytes());
        out.member(b',', "compressed_size");
        out.plain(itoa::Buffer::new().format(self.compressed_size).as_bytes());
        out.member(b',', "payload");
        // Base64 holds nothing to escape: the escaper finds so eight bytes at a time and
        // copies the run whole, to both forms.
        out.string(&self.payload);
        if let Some(reference) = &self.payload_ref {
            out.string_member(b',', "payload_ref", reference);
        }
        out.plain(b"}");
        Ok(())
    }

    /// The EventBridge entry carrying this envelope to `target` (its detail-type is the wrapped
    /// event's type), without the size check [`EnvelopePacker::pack_entry`] made when it was
    /// packed: an envelope kept for later (an owed event) is sent again as it was.
    pub fn entry(&self, target: &EntryTarget<'_>) -> Result<EventBridgeEntry, EnvelopeError> {
        Ok(EventBridgeEntry {
            source: target.source.to_owned(),
            detail_type: self.event_type.clone(),
            detail: self.detail()?,
            resources: Vec::new(),
            time: None,
            event_bus_name: target.event_bus_name.map(str::to_owned),
            trace_header: self.trace_context().map(|c| c.xray_header()),
        })
    }

    /// The trace the wrapped event belongs to, from [`Self::traceparent`]; `None` without one
    /// (or with one that does not parse: a trace context never stops an event).
    pub fn trace_context(&self) -> Option<TraceContext> {
        TraceContext::parse(self.traceparent.as_deref()?).ok()
    }
}

/// The routing facts of an event being packed; borrowed, because the packer copies what it keeps.
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeMeta<'a> {
    /// See [`CrossRegionEvent::event_id`].
    pub event_id: &'a str,
    /// See [`CrossRegionEvent::source_region`].
    pub source_region: &'a str,
    /// See [`CrossRegionEvent::target_region`].
    pub target_region: &'a str,
    /// See [`CrossRegionEvent::event_type`].
    pub event_type: &'a str,
    /// See [`CrossRegionEvent::correlation_id`].
    pub correlation_id: Option<&'a str>,
    /// See [`CrossRegionEvent::traceparent`].
    pub traceparent: Option<&'a str>,
    /// The time to stamp, passed in because the core never reads the clock.
    pub created_at: DateTime<Utc>,
}

/// Where the entry goes: the fixed parts of every entry a router sends.
#[derive(Debug, Clone, Copy)]
pub struct EntryTarget<'a> {
    /// The entry's `Source` (counted in its size).
    pub source: &'a str,
    /// The target bus name or ARN (not counted in its size).
    pub event_bus_name: Option<&'a str>,
}

/// A packed event ready for `PutEvents`: the envelope and the entry carrying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedEntry {
    /// The envelope, for logs and metrics (sizes, dictionary).
    pub envelope: CrossRegionEvent,
    /// The entry, whose `detail` is the serialized envelope and whose size fits the limit.
    pub entry: EventBridgeEntry,
}

/// A store for payloads too large to travel inline (S3 in practice).
///
/// Synchronous, like the rest of the core: an async caller can instead catch
/// [`EnvelopeError::EntryTooLarge`], upload on its own task and call
/// [`EnvelopePacker::pack_entry_with_ref`] with the reference.
pub trait Offload {
    /// Stores the compressed payload of `envelope` and returns the reference the receiver will
    /// fetch it by (for example `s3://bucket/key`).
    fn offload(
        &mut self,
        envelope: &CrossRegionEvent,
        compressed: &[u8],
    ) -> Result<String, OffloadError>;
}

/// Why an [`Offload`] hook could not store a payload.
#[derive(Debug, thiserror::Error)]
#[error("offloading the payload failed: {message}")]
pub struct OffloadError {
    /// What the store said.
    pub message: String,
    /// Whether trying again may succeed (throttling, a timeout).
    pub retryable: bool,
}

/// Everything that can go wrong building, sizing or opening an envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// zstd refused to compress (out of memory, bad level).
    #[error("zstd compression failed: {0}")]
    Compress(String),
    /// The payload does not decompress with the dictionary the envelope names.
    #[error("zstd decompression failed: {0}")]
    Decompress(String),
    /// The packed entry would exceed the EventBridge entry limit and no offload was possible.
    #[error(
        "the cross-region entry is {entry_bytes} bytes, over the {max_bytes}-byte limit \
         (payload {original_size} bytes, {compressed_size} compressed)"
    )]
    EntryTooLarge {
        /// The entry size as EventBridge counts it.
        entry_bytes: usize,
        /// `routing.max_entry_bytes`.
        max_bytes: usize,
        /// The payload before compression.
        original_size: usize,
        /// The payload after compression.
        compressed_size: usize,
    },
    /// The offload hook failed.
    #[error(transparent)]
    Offload(#[from] OffloadError),
    /// A dictionary could not be loaded.
    #[error("invalid zstd dictionary: {0}")]
    InvalidDictionary(String),
    /// A dictionary has no embedded id and none was given.
    #[error("the zstd dictionary has no embedded id; give one with Dictionary::with_id")]
    DictionaryWithoutId,
    /// `routing.dictionary_path` is set but no dictionary was passed to the packer.
    #[error("routing.dictionary_path is {path:?} but no dictionary was loaded from it")]
    DictionaryMissing {
        /// The configured path.
        path: String,
    },
    /// The envelope names a dictionary this region does not have.
    #[error("the envelope uses zstd dictionary {id}, which this region does not have")]
    UnknownDictionary {
        /// The id in the envelope.
        id: u32,
    },
    /// The envelope and the zstd frame disagree on the dictionary.
    #[error(
        "the envelope names dictionary {envelope:?} but the zstd frame was made with {frame:?}"
    )]
    DictionaryMismatch {
        /// The id in the envelope.
        envelope: Option<u32>,
        /// The id in the frame header.
        frame: Option<u32>,
    },
    /// The decompressed payload is not the one that was hashed: corrupted or forged.
    #[error("content hash mismatch: envelope says {expected}, payload hashes to {actual}")]
    HashMismatch {
        /// The envelope's `content_hash`.
        expected: String,
        /// The hash of what was decompressed.
        actual: String,
    },
    /// A declared size does not match the bytes.
    #[error("{field} is declared as {declared} bytes but is {actual}")]
    SizeMismatch {
        /// `original_size` or `compressed_size`.
        field: &'static str,
        /// What the envelope says.
        declared: usize,
        /// What was found.
        actual: usize,
    },
    /// The envelope claims a payload larger than [`MAX_UNPACKED_BYTES`].
    #[error("the envelope declares {declared} payload bytes, more than the {limit}-byte limit")]
    TooLargeToUnpack {
        /// The declared `original_size`.
        declared: usize,
        /// [`MAX_UNPACKED_BYTES`].
        limit: usize,
    },
    /// The payload is stored elsewhere; fetch it and call [`EnvelopePacker::unpack_fetched`].
    #[error("the payload was offloaded to {reference}")]
    Offloaded {
        /// The envelope's `payload_ref`.
        reference: String,
    },
    /// The envelope JSON or its base64 payload is not well formed.
    #[error("malformed envelope: {0}")]
    Malformed(String),
}

impl EnvelopeError {
    /// Whether the same call may succeed later; everything here is deterministic except a
    /// retryable offload failure.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Offload(e) if e.retryable)
    }
}

/// Packs and unpacks [`CrossRegionEvent`]s, keeping zstd contexts across calls.
///
/// One per region router (it needs `&mut self`: zstd contexts are not shareable).
pub struct EnvelopePacker {
    /// Compression context, with the sending dictionary loaded once when there is one.
    compressor: Compressor<'static>,
    /// Id of the sending dictionary, written in every envelope.
    dictionary_id: Option<u32>,
    /// Decompression context for envelopes made without a dictionary.
    plain: Decompressor<'static>,
    /// One decompression context per known dictionary id (the sending one, the shipped one and
    /// any added for a rollout).
    by_dictionary: HashMap<u32, Decompressor<'static>>,
    /// `routing.max_entry_bytes`.
    max_entry_bytes: usize,
    /// Reused compression output, so packing allocates only what it returns.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for EnvelopePacker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopePacker")
            .field("dictionary_id", &self.dictionary_id)
            .field("decodes", &self.by_dictionary.keys().collect::<Vec<_>>())
            .field("max_entry_bytes", &self.max_entry_bytes)
            .finish()
    }
}

impl EnvelopePacker {
    /// Builds the packer for a router. `dictionary` is the one loaded from
    /// `routing.dictionary_path` (the caller reads the file: the core does no I/O); it is
    /// required when that path is set. Without one the packer compresses with the shipped
    /// dictionary, or with none when `routing.shipped_dictionary` is false. The shipped
    /// dictionary is always known for decoding.
    pub fn new(cfg: &RoutingConfig, dictionary: Option<Dictionary>) -> Result<Self, EnvelopeError> {
        if let (Some(path), None) = (&cfg.dictionary_path, &dictionary) {
            return Err(EnvelopeError::DictionaryMissing { path: path.clone() });
        }
        // Without a dictionary of its own, the one every region reads: on ~1 KB CDC events it
        // compresses smaller and costs fewer instructions per frame than none (its entropy
        // tables are used instead of being built for each frame).
        let dictionary = match dictionary {
            None if cfg.shipped_dictionary => Some(Dictionary::shipped()?),
            given => given,
        };
        let level = cfg.zstd_level;
        // `with_dictionary` loads the dictionary into the context once; zstd keeps the digested
        // form for every later frame, which is what a prepared dictionary would give.
        let compressor = match &dictionary {
            Some(d) => Compressor::with_dictionary(level, d.bytes()),
            None => Compressor::new(level),
        }
        .map_err(|e| EnvelopeError::Compress(e.to_string()))?;
        let plain = Decompressor::new().map_err(|e| EnvelopeError::Decompress(e.to_string()))?;
        let mut packer = Self {
            compressor,
            dictionary_id: dictionary.as_ref().map(Dictionary::id),
            plain,
            by_dictionary: HashMap::new(),
            max_entry_bytes: cfg.max_entry_bytes,
            scratch: Vec::new(),
        };
        packer.add_decoding_dictionary(&Dictionary::shipped()?)?;
        if let Some(d) = &dictionary {
            packer.add_decoding_dictionary(d)?;
        }
        Ok(packer)
    }

    /// Lets this packer open envelopes made with `dictionary`, e.g. the previous one during a
    /// dictionary rollout.
    pub fn add_decoding_dictionary(
        &mut self,
        dictionary: &Dictionary,
    ) -> Result<(), EnvelopeError> {
        let d = Decompressor::with_dictionary(dictionary.bytes())
            .map_err(|e| EnvelopeError::InvalidDictionary(e.to_string()))?;
        self.by_dictionary.insert(dictionary.id(), d);
        Ok(())
    }

    /// The dictionary id this packer writes, if it compresses with one.
    pub fn dictionary_id(&self) -> Option<u32> {
        self.dictionary_id
    }

    /// Compresses `payload` into an envelope, without the size check (see [`Self::pack_entry`]).
    pub fn pack(
        &mut self,
        meta: &EnvelopeMeta<'_>,
        payload: &[u8],
    ) -> Result<CrossRegionEvent, EnvelopeError> {
        self.compress(payload)?;
        Ok(self.envelope(meta, payload, BASE64.encode(&self.scratch)))
    }

    /// Packs `payload` into an EventBridge entry for `target`, checking the entry size.
    ///
    /// Over `routing.max_entry_bytes`, the compressed payload goes to `offload` when one is given
    /// (the envelope then carries its reference), else [`EnvelopeError::EntryTooLarge`].
    pub fn pack_entry(
        &mut self,
        meta: &EnvelopeMeta<'_>,
        payload: &[u8],
        target: &EntryTarget<'_>,
        offload: Option<&mut dyn Offload>,
    ) -> Result<PackedEntry, EnvelopeError> {
        let envelope = self.pack(meta, payload)?;
        match self.entry(envelope, target) {
            Ok(packed) => Ok(packed),
            Err((too_large, mut envelope)) => {
                let Some(offload) = offload else {
                    return Err(too_large);
                };
                envelope.payload.clear();
                let reference = offload.offload(&envelope, &self.scratch)?;
                envelope.payload_ref = Some(reference);
                self.entry(envelope, target).map_err(|(e, _)| e)
            }
        }
    }

    /// Packs an entry whose compressed payload the caller already stored elsewhere (after an
    /// [`EnvelopeError::EntryTooLarge`]), carrying `reference` instead of the bytes.
    pub fn pack_entry_with_ref(
        &mut self,
        meta: &EnvelopeMeta<'_>,
        payload: &[u8],
        target: &EntryTarget<'_>,
        reference: String,
    ) -> Result<PackedEntry, EnvelopeError> {
        self.compress(payload)?;
        let mut envelope = self.envelope(meta, payload, String::new());
        envelope.payload_ref = Some(reference);
        self.entry(envelope, target).map_err(|(e, _)| e)
    }

    /// The compressed bytes of the last [`Self::pack`], for an async caller that offloads them
    /// itself.
    pub fn last_compressed(&self) -> &[u8] {
        &self.scratch
    }

    /// Opens an envelope: decodes, decompresses with the named dictionary, and checks the sizes
    /// and the content hash.
    pub fn unpack(&mut self, envelope: &CrossRegionEvent) -> Result<Vec<u8>, EnvelopeError> {
        if let Some(reference) = &envelope.payload_ref {
            return Err(EnvelopeError::Offloaded {
                reference: reference.clone(),
            });
        }
        let compressed = BASE64
            .decode(&envelope.payload)
            .map_err(|e| EnvelopeError::Malformed(format!("payload is not base64: {e}")))?;
        self.unpack_fetched(envelope, &compressed)
    }

    /// Opens an envelope whose compressed payload was fetched from its `payload_ref` (or decoded
    /// by the caller), with the same checks as [`Self::unpack`].
    pub fn unpack_fetched(
        &mut self,
        envelope: &CrossRegionEvent,
        compressed: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        if compressed.len() != envelope.compressed_size {
            return Err(EnvelopeError::SizeMismatch {
                field: "compressed_size",
                declared: envelope.compressed_size,
                actual: compressed.len(),
            });
        }
        if envelope.original_size > MAX_UNPACKED_BYTES {
            return Err(EnvelopeError::TooLargeToUnpack {
                declared: envelope.original_size,
                limit: MAX_UNPACKED_BYTES,
            });
        }
        let frame = zstd::zstd_safe::get_dict_id_from_frame(compressed).map(|id| id.get());
        if frame.is_some() && frame != envelope.dictionary_id {
            return Err(EnvelopeError::DictionaryMismatch {
                envelope: envelope.dictionary_id,
                frame,
            });
        }
        let decompressor = match envelope.dictionary_id {
            None => &mut self.plain,
            Some(id) => self
                .by_dictionary
                .get_mut(&id)
                .ok_or(EnvelopeError::UnknownDictionary { id })?,
        };
        // One extra byte of room turns "the payload is longer than declared" into a size
        // mismatch below instead of an opaque "destination too small".
        let payload = decompressor
            .decompress(compressed, envelope.original_size + 1)
            .map_err(|e| EnvelopeError::Decompress(e.to_string()))?;
        if payload.len() != envelope.original_size {
            return Err(EnvelopeError::SizeMismatch {
                field: "original_size",
                declared: envelope.original_size,
                actual: payload.len(),
            });
        }
        let actual = content_hash(&payload);
        if !actual.eq_ignore_ascii_case(&envelope.content_hash) {
            return Err(EnvelopeError::HashMismatch {
                expected: envelope.content_hash.clone(),
                actual,
            });
        }
        Ok(payload)
    }

    fn compress(&mut self, payload: &[u8]) -> Result<(), EnvelopeError> {
        self.scratch.clear();
        self.scratch
            .reserve(zstd::zstd_safe::compress_bound(payload.len()));
        self.compressor
            .compress_to_buffer(payload, &mut self.scratch)
            .map_err(|e| EnvelopeError::Compress(e.to_string()))?;
        Ok(())
    }

    fn envelope(
        &self,
        meta: &EnvelopeMeta<'_>,
        payload: &[u8],
        encoded: String,
    ) -> CrossRegionEvent {
        CrossRegionEvent {
            event_id: meta.event_id.to_owned(),
            source_region: meta.source_region.to_owned(),
            target_region: meta.target_region.to_owned(),
            event_type: meta.event_type.to_owned(),
            correlation_id: meta.correlation_id.map(str::to_owned),
            traceparent: meta.traceparent.map(str::to_owned),
            created_at: meta.created_at,
            content_hash: content_hash(payload),
            compression: Compression::Zstd,
            dictionary_id: self.dictionary_id,
            original_size: payload.len(),
            compressed_size: self.scratch.len(),
            payload: encoded,
            payload_ref: None,
        }
    }

    /// Serializes the envelope into an entry, or hands it back with the size error.
    #[allow(clippy::result_large_err)]
    fn entry(
        &self,
        envelope: CrossRegionEvent,
        target: &EntryTarget<'_>,
    ) -> Result<PackedEntry, (EnvelopeError, CrossRegionEvent)> {
        let entry = match envelope.entry(target) {
            Ok(entry) => entry,
            Err(e) => return Err((e, envelope)),
        };
        let entry_bytes = entry.size();
        let limit = self.max_entry_bytes.min(eventbridge::MAX_CALL_BYTES);
        if entry_bytes > limit {
            let err = EnvelopeError::EntryTooLarge {
                entry_bytes,
                max_bytes: limit,
                original_size: envelope.original_size,
                compressed_size: envelope.compressed_size,
            };
            return Err((err, envelope));
        }
        Ok(PackedEntry { envelope, entry })
    }
}

/// Lower-case hex SHA-256, the form of [`CrossRegionEvent::content_hash`].
pub fn content_hash(payload: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(payload);
    let mut hex = String::with_capacity(2 * digest.len());
    for byte in digest {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

#[cfg(test)]
mod tests;
