//! eda's load generator and end-to-end benchmark.
//!
//! # Layout
//!
//! - [`history`]: a Qlik CDC history with duplicates, redeliveries and poison, and the table it
//!   must produce — shared by the integration tests, `make demo` and the benchmark.
//! - [`kafka`]: creating topics and producing a history.
//! - [`avro`]: the same rows as Qlik Avro records in the Confluent wire format.
//! - [`peek`]: looking at a topic's offsets and messages (what `kcat -C` would show).
//! - [`verify`]: what a run must leave behind — the table exact against the history, every
//!   change's event id put — checked on plain data.
//! - [`sink`]: a blackhole AWS endpoint (DynamoDB, EventBridge, SQS in memory, with eda's
//!   sequence guard) for benchmarks — a harness, not a stand-in for correctness.
//! - [`bench`](mod@bench): `make bench-e2e` — the release daemon against the sink, a backlog and a fixed
//!   rate, the raw consume floor, the report and its plots.
//! - `main.rs`: `eda-loadtest produce` (sample traffic for the demo), `peek` (a topic's
//!   messages), `sink` (the blackhole endpoint) and `bench-e2e`.

pub mod avro;
pub mod bench;
pub mod history;
pub mod kafka;
pub mod peek;
pub mod sink;
pub mod verify;
