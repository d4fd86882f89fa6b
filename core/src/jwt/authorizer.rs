//! What the authorizer Lambda answers API Gateway, built from a verification outcome.
//!
//! REST APIs expect an IAM policy (`principalId`, `policyDocument`, `context`); HTTP APIs with
//! simple responses expect `{ isAuthorized, context }`. Authorizer contexts are flat (strings,
//! numbers, booleans), so roles travel comma-joined. The shim serializes these with serde_json;
//! keeping them here lets the core's tests pin the exact JSON API Gateway receives.

use serde::Serialize;

use super::{Deny, Principal};

/// IAM policy language version API Gateway requires.
const POLICY_VERSION: &str = "2012-10-17";

/// The only action an API Gateway authorizer grants or denies.
const INVOKE_ACTION: &str = "execute-api:Invoke";

/// `principalId` of a denied request, which has no verified user.
const ANONYMOUS: &str = "anonymous";

/// The bearer token of an `Authorization` header value: scheme matched case-insensitively, token
/// trimmed; `None` for another scheme or an empty token.
pub fn bearer_token(header_value: &str) -> Option<&str> {
    let value = header_value.trim();
    let (scheme, token) = value.split_once(|c: char| c.is_ascii_whitespace())?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty() && !token.contains(|c: char| c.is_ascii_whitespace())).then_some(token)
}

/// The bearer token from request headers, whose names API Gateway passes in any case.
pub fn bearer_from_headers<'a, I>(headers: I) -> Option<&'a str>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    headers
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| bearer_token(value))
}

/// What the policy's `Resource` covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceScope {
    /// Exactly the called method ARN: right when authorizer caching is off.
    Method,
    /// Every method and path of the called API stage (`.../stage/*`), so a cached policy for
    /// this token also answers the caller's next request to another route.
    Stage,
}

/// Allow or Deny, as IAM spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Effect {
    /// The request may proceed.
    Allow,
    /// API Gateway answers 403.
    Deny,
}

/// One policy statement; API Gateway needs exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyStatement {
    /// Always `execute-api:Invoke`.
    pub action: &'static str,
    /// Allow or Deny.
    pub effect: Effect,
    /// The method ARN or its stage wildcard.
    pub resource: String,
}

/// The IAM policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    /// Always `2012-10-17`.
    pub version: &'static str,
    /// The single statement.
    pub statement: Vec<PolicyStatement>,
}

/// The flat context handed to the backend integration (`$context.authorizer.userId`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerContext {
    /// The principal's user id.
    pub user_id: String,
    /// Roles joined with commas, since contexts cannot hold lists.
    pub roles: String,
    /// The tenant, omitted when the token has none (contexts cannot hold null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

impl AuthorizerContext {
    /// The context of an allowed principal.
    pub fn from_principal(principal: &Principal) -> Self {
        Self {
            user_id: principal.user_id.clone(),
            roles: principal.roles.join(","),
            tenant_id: principal.tenant_id.clone(),
        }
    }
}

/// The REST API (Lambda TOKEN/REQUEST authorizer) response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IamPolicyResponse {
    /// The user id, or `anonymous` when denied.
    pub principal_id: String,
    /// Allow or Deny on the resource.
    pub policy_document: PolicyDocument,
    /// Present only when allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<AuthorizerContext>,
}

/// The HTTP API simple response (payload format 2.0, `enableSimpleResponses`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpSimpleResponse {
    /// Whether API Gateway lets the request through.
    pub is_authorized: bool,
    /// Present only when allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<AuthorizerContext>,
}

/// The IAM policy answering a verification outcome for the called `method_arn`.
pub fn rest_policy(
    outcome: &Result<Principal, Deny>,
    method_arn: &str,
    scope: ResourceScope,
) -> IamPolicyResponse {
    let resource = match scope {
        ResourceScope::Method => method_arn.to_owned(),
        ResourceScope::Stage => stage_wildcard(method_arn),
    };
    let (principal_id, effect, context) = match outcome {
        Ok(p) => (
            p.user_id.clone(),
            Effect::Allow,
            Some(AuthorizerContext::from_principal(p)),
        ),
        Err(_) => (ANONYMOUS.to_owned(), Effect::Deny, None),
    };
    IamPolicyResponse {
        principal_id,
        policy_document: PolicyDocument {
            version: POLICY_VERSION,
            statement: vec![PolicyStatement {
                action: INVOKE_ACTION,
                effect,
                resource,
            }],
        },
        context,
    }
}

/// The HTTP API simple response answering a verification outcome.
pub fn http_simple_response(outcome: &Result<Principal, Deny>) -> HttpSimpleResponse {
    match outcome {
        Ok(p) => HttpSimpleResponse {
            is_authorized: true,
            context: Some(AuthorizerContext::from_principal(p)),
        },
        Err(_) => HttpSimpleResponse {
            is_authorized: false,
            context: None,
        },
    }
}

/// `arn:aws:execute-api:region:account:api/stage/*` from a method ARN
/// (`arn:aws:execute-api:region:account:api/stage/VERB/path`); an ARN of another shape is
/// returned unchanged, which only narrows the grant.
fn stage_wildcard(method_arn: &str) -> String {
    let Some((prefix, path)) = method_arn.rsplit_once(':') else {
        return method_arn.to_owned();
    };
    let mut segments = path.splitn(3, '/');
    match (segments.next(), segments.next()) {
        (Some(api), Some(stage)) if !api.is_empty() && !stage.is_empty() => {
            format!("{prefix}:{api}/{stage}/*")
        }
        _ => method_arn.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::DenyReason;
    use serde_json::json;

    const ARN: &str = "arn:aws:execute-api:us-west-2:123456789012:abc123/prod/GET/orders/42";

    fn principal() -> Principal {
        Principal {
            user_id: "user-1".into(),
            roles: vec!["admin".into(), "reader".into()],
            tenant_id: Some("t-9".into()),
            claims: serde_json::Map::new(),
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_strict() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("BEARER\tabc"), Some("abc"));
        assert_eq!(bearer_token("Basic dXNlcjpwdw=="), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer a b"), None);
        assert_eq!(bearer_token("abc.def.ghi"), None);
        let headers = [("content-type", "json"), ("AUTHORIZATION", "Bearer t")];
        assert_eq!(bearer_from_headers(headers), Some("t"));
    }

    #[test]
    fn allow_policy_has_the_shape_api_gateway_expects() {
        let v = serde_json::to_value(rest_policy(&Ok(principal()), ARN, ResourceScope::Method))
            .unwrap();
        assert_eq!(
            v,
            json!({
                "principalId": "user-1",
                "policyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Action": "execute-api:Invoke",
                        "Effect": "Allow",
                        "Resource": ARN
                    }]
                },
                "context": { "userId": "user-1", "roles": "admin,reader", "tenantId": "t-9" }
            })
        );
    }

    #[test]
    fn deny_policy_carries_no_context_and_stage_scope_widens_the_resource() {
        let deny = Err(Deny {
            reason: DenyReason::Expired,
            detail: "x".into(),
        });
        let v = serde_json::to_value(rest_policy(&deny, ARN, ResourceScope::Stage)).unwrap();
        assert_eq!(v["principalId"], "anonymous");
        assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Deny");
        assert_eq!(
            v["policyDocument"]["Statement"][0]["Resource"],
            "arn:aws:execute-api:us-west-2:123456789012:abc123/prod/*"
        );
        assert!(v.get("context").is_none());
        assert_eq!(stage_wildcard("not-an-arn"), "not-an-arn");
    }

    #[test]
    fn simple_response_for_http_apis() {
        let mut p = principal();
        p.tenant_id = None;
        let v = serde_json::to_value(http_simple_response(&Ok(p))).unwrap();
        assert_eq!(
            v,
            json!({ "isAuthorized": true, "context": { "userId": "user-1", "roles": "admin,reader" } })
        );
        let deny = Err(Deny {
            reason: DenyReason::BadSignature,
            detail: "x".into(),
        });
        assert_eq!(
            serde_json::to_value(http_simple_response(&deny)).unwrap(),
            json!({ "isAuthorized": false })
        );
    }
}
