//! Integration tests of the daemon, against the local stack (`deploy/local/stack.sh`, started by
//! `make test`): a real Kafka-API broker, DynamoDB Local and the AWS stand-in (ministack), over TCP on 127.0.0.1. What
//! they share with the Lambda shims' tests (the local configuration, per-test sinks, one pipeline
//! scenario) is in `eda-testkit`.

mod batched_writes;
mod broker_outage;
mod chaos;
mod cli;
mod crash;
mod demo_prometheus;
mod fault_proxy;
mod gathering;
mod holds;
mod key_change;
mod lean_client;
mod metadata;
mod otlp_receiver;
mod oversize;
mod pipeline;
mod poison;
mod redrive;
mod region_recovery;
mod regions;
mod reloads;
mod replay;
mod scrape;
mod stack;
mod stuck;
mod timeouts;
mod topic_tables;
mod trace_context;
