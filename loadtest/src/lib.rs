//! eda's load generator and end-to-end benchmark.
//!
//! # Layout
//!
//! - [`history`]: a Qlik CDC history with duplicates, redeliveries and poison, and the table it
//!   must produce — shared by the integration tests, `make demo` and the benchmark.
//! - [`kafka`]: creating topics and producing a history.
//! - [`avro`]: the same rows as Qlik Avro records in the Confluent wire format.
//! - [`peek`]: looking at a topic's offsets and messages (what `kcat -C` would show).
//! - `main.rs`: `eda-loadtest produce` (sample traffic for the demo), `eda-loadtest peek` (a
//!   topic's messages) and `eda-loadtest e2e` (the end-to-end figure of `make bench`).

pub mod avro;
pub mod history;
pub mod kafka;
pub mod peek;
