//! The `authorization.k8s.io` group: access reviews, computed per request by the server's own
//! authorizers and never stored (`kubectl auth can-i`, `--list`, and webhooks' questions).

pub mod printer;
pub mod selfsubjectaccessreview;
pub mod selfsubjectrulesreview;
pub mod subjectaccessreview;

use serde_json::{json, Value};

use crate::auth::authz::{Authorizer, Decision};
use crate::auth::request_info::RequestInfo;
use crate::auth::user::UserInfo;
use crate::error::Cause;

pub const GROUP: &str = "authorization.k8s.io";

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

/// The request a review's `spec` asks about.
fn attributes(spec: &Value) -> RequestInfo {
    if let Some(r) = spec.get("resourceAttributes") {
        return RequestInfo {
            resource_request: true,
            verb: text(r, "verb").to_string(),
            api_group: text(r, "group").to_string(),
            api_version: text(r, "version").to_string(),
            namespace: text(r, "namespace").to_string(),
            resource: text(r, "resource").to_string(),
            subresource: text(r, "subresource").to_string(),
            name: text(r, "name").to_string(),
            path: String::new(),
        };
    }
    let n = spec
        .get("nonResourceAttributes")
        .cloned()
        .unwrap_or_default();
    RequestInfo {
        resource_request: false,
        verb: text(&n, "verb").to_string(),
        path: text(&n, "path").to_string(),
        ..Default::default()
    }
}

/// Exactly one of resourceAttributes and nonResourceAttributes, as Kubernetes requires.
fn validate_attributes(spec: &Value, causes: &mut Vec<Cause>) {
    let resource = spec.get("resourceAttributes").is_some();
    let non_resource = spec.get("nonResourceAttributes").is_some();
    if resource == non_resource {
        causes.push(Cause::invalid(
            "spec.resourceAttributes",
            "",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
}

/// Fill in `status` with what the authorizers decide for `user`.
fn review(authorizer: &dyn Authorizer, user: &UserInfo, mut obj: Value) -> Value {
    let request = attributes(&obj["spec"]);
    obj["status"] = match authorizer.authorize(user, &request) {
        Decision::Allow => {
            json!({ "allowed": true, "reason": "allowed by the cluster's RBAC policy" })
        }
        Decision::Deny(reason) => json!({ "allowed": false, "denied": true, "reason": reason }),
        Decision::NoOpinion => json!({ "allowed": false }),
    };
    obj
}
