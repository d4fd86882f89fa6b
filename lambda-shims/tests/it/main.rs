//! Integration tests of the Lambda shims, against the local stack (`deploy/local/stack.sh`,
//! started by `make test`): DynamoDB Local and the AWS stand-in (ministack) on 127.0.0.1. Every handler is invoked with
//! AWS's published sample events (`tests/fixtures/`), and one binary runs for real against a
//! Lambda runtime API emulator.

mod authorizer;
mod conformance;
mod event_router;
mod event_transformer;
mod health_checker;
mod runtime_api;
mod stream_processor;
mod support;
