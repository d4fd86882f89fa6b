//! SDK errors to [`SinkError`]: one classification for every service, so retry decisions and the
//! `error_class` label mean the same thing for DynamoDB, EventBridge and SQS.

use crate::ports::SinkError;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use eda_core::failure::ErrorClass;
use std::error::Error;

/// Error codes AWS services use for "slow down".
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
];

/// Whether an error says the request or one of its entries is over a size limit: SQS's
/// `BatchRequestTooLong`, and `InvalidParameterValue` "Message must be shorter than …".
fn too_large(code: &str, message: Option<&str>) -> bool {
    code.ends_with("TooLong")
        || code.ends_with("TooLarge")
        || (code.starts_with("InvalidParameterValue")
            && message.is_some_and(|m| m.contains("shorter than") || m.contains("too long")))
}

/// Classifies an SDK error from `service`'s `operation`.
pub(crate) fn sink_error<E, R>(
    service: &'static str,
    operation: &'static str,
    err: &SdkError<E, R>,
) -> SinkError
where
    E: ProvideErrorMetadata + Error + 'static,
    R: std::fmt::Debug,
{
    SinkError {
        service,
        operation,
        class: classify(err),
        message: DisplayErrorContext(err).to_string(),
    }
}

fn classify<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> ErrorClass {
    match err {
        SdkError::TimeoutError(_) => ErrorClass::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => ErrorClass::Timeout,
        SdkError::DispatchFailure(_) => ErrorClass::Connect,
        SdkError::ResponseError(_) => ErrorClass::Server,
        SdkError::ConstructionFailure(_) => ErrorClass::Client,
        SdkError::ServiceError(context) => service_error_class(
            context.err().code().unwrap_or_default(),
            context.err().message(),
        ),
        _ => ErrorClass::Other,
    }
}

/// The class of a service's error answer, from its code: the services' server-side codes
/// (DynamoDB's `InternalServerError`, EventBridge's `InternalException`, SQS's `InternalError`,
/// `InternalFailure`, `ServiceUnavailable…`) are worth another attempt; other codes are the
/// request's fault.
pub(crate) fn service_error_class(code: &str, message: Option<&str>) -> ErrorClass {
    if THROTTLING_CODES.contains(&code) {
        ErrorClass::Throttled
    } else if too_large(code, message) {
        ErrorClass::TooLarge
    } else if code.starts_with("Internal") || code.starts_with("ServiceUnavailable") {
        ErrorClass::Server
    } else {
        ErrorClass::Client
    }
}

/// An entry-level failure inside a call that succeeded (PutEvents, SendMessageBatch).
pub(crate) fn entry_error(
    service: &'static str,
    operation: &'static str,
    code: Option<&str>,
    message: Option<&str>,
    sender_fault: bool,
) -> SinkError {
    let code = code.unwrap_or("Unknown");
    let class = if THROTTLING_CODES.contains(&code) {
        ErrorClass::Throttled
    } else if too_large(code, message) {
        ErrorClass::TooLarge
    } else if sender_fault || code.starts_with("Invalid") || code.starts_with("Malformed") {
        ErrorClass::Client
    } else {
        // EventBridge reports e.g. InternalFailure per entry: worth another attempt.
        ErrorClass::Server
    };
    SinkError {
        service,
        operation,
        class,
        message: format!("{code}: {}", message.unwrap_or("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_server_side_codes_are_retryable_and_request_faults_are_not() {
        for code in [
            "InternalServerError",
            "InternalException",
            "InternalError",
            "InternalFailure",
            "ServiceUnavailable",
            "ServiceUnavailableException",
        ] {
            assert_eq!(
                service_error_class(code, None),
                ErrorClass::Server,
                "{code}"
            );
        }
        assert_eq!(
            service_error_class("ThrottlingException", None),
            ErrorClass::Throttled
        );
        assert_eq!(
            service_error_class("ValidationException", Some("bad")),
            ErrorClass::Client
        );
        assert_eq!(
            service_error_class("ResourceNotFoundException", None),
            ErrorClass::Client
        );
        assert_eq!(
            service_error_class("BatchRequestTooLong", None),
            ErrorClass::TooLarge
        );
    }
}
