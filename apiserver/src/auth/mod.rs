//! Identity and access: authentication (`authn/`: certificates, tokens), impersonation,
//! authorization (`authz/`: the masters group, RBAC, the Node authorizer), all applied by one
//! filter in front of every handler ([`filter`]).

pub mod authn;
pub mod authz;
pub mod impersonation;
pub mod request_info;
pub mod user;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{ApiError, Reason};
use crate::state::AppState;
use authn::service_account::ServiceAccountTokens;
use authn::Authenticator;
use authz::{Authorizer, Decision};
use request_info::RequestInfo;
use skiff_component::https::Connection;
use user::UserInfo;

/// The configured authenticators and authorizers, and the key ServiceAccount tokens are
/// issued with.
pub struct Auth {
    /// `None` in the test-only insecure mode: every request acts as `system:masters`.
    pub authenticator: Option<Authenticator>,
    pub authorizer: Box<dyn Authorizer>,
    pub service_account_tokens: Arc<ServiceAccountTokens>,
    /// How the apiserver reaches agents' APIs: TLS with the `kube-apiserver-kubelet-client`
    /// certificate (`None` in the insecure test mode: plain HTTP).
    pub agent_client: Option<Arc<rustls::ClientConfig>>,
}

/// Paths anyone may read without credentials (kube-apiserver's `system:public-info-viewer`).
fn is_public(path: &str) -> bool {
    ["/healthz", "/livez", "/readyz", "/version"]
        .iter()
        .any(|p| {
            path == *p
                || path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// The user the insecure test mode acts as.
fn insecure_user() -> UserInfo {
    UserInfo::new("system:admin", vec![user::MASTERS.to_string()]).authenticated()
}

/// Authenticate, apply impersonation, authorize; then hand the request, with its [`UserInfo`]
/// and [`RequestInfo`] as extensions, to the handlers.
pub async fn filter(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let info = request_info::parse(req.method().as_str(), req.uri().path(), req.uri().query());
    let user = match &state.auth.authenticator {
        None => insecure_user(),
        Some(authenticator) => {
            let connection = req.extensions().get::<Connection>();
            match authenticator.authenticate(connection, req.headers()).await {
                Ok(Some(user)) => user,
                Ok(None) if is_public(&info.path) => UserInfo::anonymous(),
                Ok(None) => return refuse(req, unauthorized()).await,
                Err(e) => {
                    tracing::debug!(error = %e, path = %info.path, "authentication failed");
                    return refuse(req, unauthorized()).await;
                }
            }
        }
    };
    let user = match impersonation::impersonate(state.auth.authorizer.as_ref(), user, req.headers())
    {
        Ok(user) => user,
        Err(e) => return refuse(req, e.into_response()).await,
    };
    let public_read = is_public(&info.path) && info.verb == "get";
    if !public_read {
        match state.auth.authorizer.authorize(&user, &info) {
            Decision::Allow => {}
            Decision::Deny(reason) => {
                let refusal = forbidden(&user, &info, Some(&reason)).into_response();
                return refuse(req, refusal).await;
            }
            Decision::NoOpinion => {
                return refuse(req, forbidden(&user, &info, None).into_response()).await
            }
        }
    }
    req.extensions_mut().insert(user);
    req.extensions_mut().insert(info);
    next.run(req).await
}

/// The most of a refused request's body read before answering, and how long that may take.
const REFUSED_BODY_LIMIT: usize = 1 << 20;
const REFUSED_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Answer a refused request after reading what its client is still sending (bounded): over
/// HTTP/2, a response that ends while the request body is unread resets the stream, and
/// clients such as curl report that reset instead of the 401 or 403.
async fn refuse(req: Request, refusal: Response) -> Response {
    let body = axum::body::to_bytes(req.into_body(), REFUSED_BODY_LIMIT);
    let _ = tokio::time::timeout(REFUSED_BODY_TIMEOUT, body).await;
    refusal
}

fn unauthorized() -> Response {
    ApiError::new(401, Reason::Unauthorized, "Unauthorized").into_response()
}

/// 403 as kube-apiserver words it: `pods "web" is forbidden: User "alice" cannot …`.
pub fn forbidden(user: &UserInfo, request: &RequestInfo, reason: Option<&str>) -> ApiError {
    let mut message = authz::forbidden_message(user, request);
    if let Some(reason) = reason.filter(|r| !r.is_empty()) {
        message = format!("{message}: {reason}");
    }
    if !request.resource_request {
        return ApiError::new(403, Reason::Forbidden, format!("forbidden: {message}"));
    }
    let qualified = if request.api_group.is_empty() {
        request.resource.clone()
    } else {
        format!("{}.{}", request.resource, request.api_group)
    };
    let what = if request.name.is_empty() {
        qualified
    } else {
        format!("{qualified} \"{}\"", request.name)
    };
    let mut details = json!({ "name": request.name, "kind": request.resource });
    if !request.api_group.is_empty() {
        details["group"] = json!(request.api_group);
    }
    let mut err = ApiError::new(
        403,
        Reason::Forbidden,
        format!("{what} is forbidden: {message}"),
    );
    err.details = Some(Box::new(details));
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_paths() {
        for p in ["/healthz", "/livez", "/readyz", "/readyz/etcd", "/version"] {
            assert!(is_public(p), "{p}");
        }
        for p in ["/api", "/healthzz", "/metrics", "/versions"] {
            assert!(!is_public(p), "{p}");
        }
    }

    #[test]
    fn forbidden_names_the_object() {
        let user = UserInfo::new("alice", vec![]);
        let info = request_info::parse(
            "DELETE",
            "/apis/apps/v1/namespaces/ns/deployments/web",
            None,
        );
        let err = forbidden(&user, &info, None);
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "deployments.apps \"web\" is forbidden: User \"alice\" cannot delete resource \"deployments\" in API group \"apps\" in the namespace \"ns\""
        );
    }
}
