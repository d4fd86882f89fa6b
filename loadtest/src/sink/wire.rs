//! The AWS JSON protocols as the SDKs speak them: which service and operation a request is for
//! (`X-Amz-Target`), which region signed it, and the shape of an error answer.
//!
//! DynamoDB and SQS speak `awsJson1_0` (`DynamoDB_20120810.PutItem`, `AmazonSQS.SendMessage`),
//! EventBridge `awsJson1_1` (`AWSEvents.PutEvents`). An error is an HTTP 4xx/5xx whose JSON body
//! names the error in `__type` (`com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException`)
//! beside a `message`, plus whatever members that error carries (the stored `Item`, a
//! transaction's `CancellationReasons`); SQS also sends its legacy query-protocol code in
//! `x-amzn-query-error`.

use serde_json::{Map, Value};

/// The services the sink answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// `DynamoDB_20120810.*`
    DynamoDb,
    /// `AWSEvents.*`
    EventBridge,
    /// `AmazonSQS.*`
    Sqs,
}

impl Service {
    /// The service and operation an `X-Amz-Target` header names.
    pub fn of_target(target: &str) -> Option<(Service, &str)> {
        let (prefix, operation) = target.split_once('.')?;
        let service = match prefix {
            "DynamoDB_20120810" => Service::DynamoDb,
            "AWSEvents" => Service::EventBridge,
            "AmazonSQS" => Service::Sqs,
            _ => return None,
        };
        Some((service, operation))
    }

    /// The lower-case name used in the sink's statistics.
    pub fn name(self) -> &'static str {
        match self {
            Service::DynamoDb => "dynamodb",
            Service::EventBridge => "eventbridge",
            Service::Sqs => "sqs",
        }
    }

    /// The content type of its answers.
    pub fn content_type(self) -> &'static str {
        match self {
            Service::DynamoDb | Service::Sqs => "application/x-amz-json-1.0",
            Service::EventBridge => "application/x-amz-json-1.1",
        }
    }

    fn error_namespace(self) -> &'static str {
        match self {
            Service::DynamoDb => "com.amazonaws.dynamodb.v20120810#",
            Service::EventBridge => "",
            Service::Sqs => "com.amazonaws.sqs#",
        }
    }

    /// The error the service answers when it throttles a caller.
    pub fn throttling_error(self) -> AwsError {
        match self {
            Service::DynamoDb => AwsError::new(
                400,
                "ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded \
                 (injected by the sink's --throttle-rate).",
            ),
            Service::EventBridge | Service::Sqs => AwsError::new(
                400,
                "ThrottlingException",
                "Rate exceeded (injected by the sink's --throttle-rate).",
            ),
        }
    }

    /// The error the service answers when it fails on its side.
    pub fn server_error(self) -> AwsError {
        let code = match self {
            Service::DynamoDb => "InternalServerError",
            Service::EventBridge | Service::Sqs => "InternalFailure",
        };
        AwsError::new(
            500,
            code,
            "The server encountered an internal error (injected by the sink's --error-rate).",
        )
    }
}

/// The region a request was signed for: the third field of SigV4's credential scope
/// (`Credential=AKID/20260101/us-west-2/dynamodb/aws4_request`). Unsigned requests count as
/// `us-east-1`, the SDKs' own fallback.
pub fn signing_region(authorization: Option<&str>) -> &str {
    authorization
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|scope| scope.split('/').nth(2))
        .filter(|region| !region.is_empty())
        .unwrap_or("us-east-1")
}

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsError {
    /// HTTP status.
    pub status: u16,
    /// The error's short name (`ConditionalCheckFailedException`).
    pub code: &'static str,
    /// Its message.
    pub message: String,
    /// Further members of the error's body (`Item`, `CancellationReasons`).
    pub members: Map<String, Value>,
}

impl AwsError {
    /// An error with no further members.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            members: Map::new(),
        }
    }

    /// A `ValidationException` (DynamoDB, EventBridge) with `message`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "ValidationException", message)
    }

    /// Adds a member to the error's body.
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.members.insert(name.to_string(), value);
        self
    }

    /// The body the SDK parses.
    pub fn body(&self, service: Service) -> Vec<u8> {
        let mut body = self.members.clone();
        body.insert(
            "__type".into(),
            Value::String(format!("{}{}", service.error_namespace(), self.code)),
        );
        body.insert("message".into(), Value::String(self.message.clone()));
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// SQS's legacy code for `x-amzn-query-error` (`AWS.SimpleQueueService.NonExistentQueue`).
    pub fn sqs_query_error(&self) -> String {
        let code = match self.code {
            "QueueDoesNotExist" => "AWS.SimpleQueueService.NonExistentQueue",
            other => other,
        };
        let fault = if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        };
        format!("{code};{fault}")
    }
}

/// A request member that must be a string.
pub fn string<'a>(request: &'a Map<String, Value>, name: &str) -> Result<&'a str, AwsError> {
    request.get(name).and_then(Value::as_str).ok_or_else(|| {
        AwsError::validation(format!(
            "1 validation error detected: {name} must not be null"
        ))
    })
}

/// A request member that may be absent but, when present, is an object.
pub fn object<'a>(
    request: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, AwsError> {
    match request.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(AwsError::validation(format!("{name} must be an object"))),
    }
}

/// A request member that may be absent but, when present, is a list.
pub fn list<'a>(request: &'a Map<String, Value>, name: &str) -> Result<&'a [Value], AwsError> {
    match request.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(AwsError::validation(format!("{name} must be a list"))),
    }
}

/// A request member that may be absent but, when present, is an integer.
pub fn integer(request: &Map<String, Value>, name: &str) -> Result<Option<i64>, AwsError> {
    match request.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| AwsError::validation(format!("{name} must be an integer"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_the_credential_scope() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-west-2/dynamodb/aws4_request, \
                    SignedHeaders=host, Signature=abc";
        assert_eq!(signing_region(Some(auth)), "us-west-2");
        assert_eq!(signing_region(None), "us-east-1");
        assert_eq!(
            Service::of_target("AmazonSQS.SendMessageBatch"),
            Some((Service::Sqs, "SendMessageBatch"))
        );
        assert_eq!(Service::of_target("secretsmanager.GetSecretValue"), None);
    }

    #[test]
    fn an_error_body_names_its_type_and_keeps_its_members() {
        let err = AwsError::new(
            400,
            "ConditionalCheckFailedException",
            "The conditional request failed",
        )
        .with("Item", serde_json::json!({"pk": {"S": "k"}}));
        let body: Value = serde_json::from_slice(&err.body(Service::DynamoDb)).unwrap();
        assert_eq!(
            body["__type"],
            "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"
        );
        assert_eq!(body["Item"]["pk"]["S"], "k");
        assert_eq!(
            AwsError::new(400, "QueueDoesNotExist", "x").sqs_query_error(),
            "AWS.SimpleQueueService.NonExistentQueue;Sender"
        );
    }
}
