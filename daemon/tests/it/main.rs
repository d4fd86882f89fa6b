//! Integration tests of the daemon, against the local stack (`deploy/local/stack.sh`, started by
//! `make test`): a real Kafka-API broker, DynamoDB Local and moto, over TCP on 127.0.0.1.

mod cli;
mod crash;
mod fault_proxy;
mod pipeline;
mod regions;
mod scrape;
mod sinks;
mod stack;
mod support;
mod timeouts;
