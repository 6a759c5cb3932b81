//! `serviceaccounts/token`: the TokenRequest API. A POST names audiences, a lifetime and
//! optionally an object (a Pod or Secret) the token is bound to; the answer carries a signed
//! JWT that authenticates as the ServiceAccount for as long as it and the bound object live.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest};
use serde_json::{json, Value};

use crate::auth::authn::jwt::{BoundRef, KubernetesClaims};
use crate::auth::authn::service_account::MIN_EXPIRATION_SECONDS;
use crate::error::{ApiError, ApiResult, Cause};
use crate::object;
use crate::registry::core::{node, pod, secret};
use crate::registry::strategy::{
    CustomSubresource, SubresourceDef, SubresourceHandler, SubresourceRequest,
};
use crate::resource::ResourceInfo;
use crate::wire::{decode_body, json_response};

pub const TOKEN: SubresourceDef = SubresourceDef {
    name: "token",
    kind: "TokenRequest",
    group: "authentication.k8s.io",
    version: "v1",
    verbs: &["create"],
    handler: SubresourceHandler::Custom(&Token),
};

/// The TokenRequest type, for error messages (it is not stored).
static TOKEN_REQUEST: ResourceInfo = ResourceInfo {
    group: "authentication.k8s.io",
    version: "v1",
    kind: "TokenRequest",
    plural: "tokenrequests",
    singular: "tokenrequest",
    namespaced: true,
    short_names: &[],
    categories: &[],
    tracks_generation: false,
};

/// `spec.expirationSeconds` when the request names none.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

struct Token;

impl CustomSubresource for Token {
    fn handle<'a>(&'a self, req: SubresourceRequest<'a>) -> BoxFuture<'a, ApiResult<Response>> {
        Box::pin(create_token(req))
    }
}

/// The request's spec with defaults applied, or the invalid fields.
fn validated_spec(
    request: &TokenRequest,
    default_audiences: &[String],
    min_expiration_seconds: i64,
) -> Result<(Vec<String>, i64, Option<BoundObjectReference>), Vec<Cause>> {
    let spec = &request.spec;
    let audiences = if spec.audiences.is_empty() {
        default_audiences.to_vec()
    } else {
        spec.audiences.clone()
    };
    let expiration = spec
        .expiration_seconds
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    let mut causes = Vec::new();
    if expiration < min_expiration_seconds {
        let floor = if min_expiration_seconds == MIN_EXPIRATION_SECONDS {
            "10 minutes".to_string()
        } else {
            format!("{min_expiration_seconds} seconds")
        };
        causes.push(Cause::invalid(
            "spec.expirationSeconds",
            expiration,
            &format!("may not specify a duration less than {floor}"),
        ));
    } else if expiration > MAX_EXPIRATION_SECONDS {
        causes.push(Cause::invalid(
            "spec.expirationSeconds",
            expiration,
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if let Some(bound) = &spec.bound_object_ref {
        if bound.name.as_deref().unwrap_or("").is_empty() {
            causes.push(Cause::required("spec.boundObjectRef.name"));
        }
    }
    if causes.is_empty() {
        Ok((audiences, expiration, spec.bound_object_ref.clone()))
    } else {
        Err(causes)
    }
}

/// The kind a bound object reference names, if tokens may be bound to it.
fn bindable_kind(bound: &BoundObjectReference) -> Option<&'static ResourceInfo> {
    let api_version = bound.api_version.as_deref().unwrap_or("v1");
    [&pod::INFO, &secret::INFO]
        .into_iter()
        .find(|info| info.api_version() == api_version && Some(info.kind) == bound.kind.as_deref())
}

async fn create_token(req: SubresourceRequest<'_>) -> ApiResult<Response> {
    if req.method != Method::POST {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let tokens = req.service_account_tokens;
    let namespace = req.namespace.unwrap_or_default();
    let mut body = decode_body(req.headers, req.body)?;
    // Clients send an empty status (`expirationTimestamp: null`); it is the server's to fill.
    if let Some(o) = body.as_object_mut() {
        o.remove("status");
    }
    let mut request: TokenRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request(format!("invalid TokenRequest: {e}")))?;
    let (audiences, expiration, bound) = validated_spec(
        &request,
        tokens.api_audiences(),
        tokens.min_expiration_seconds(),
    )
    .map_err(|causes| ApiError::invalid(&TOKEN_REQUEST, req.name, causes))?;

    let sa = req
        .resource
        .storage
        .get(&req.key())
        .await?
        .ok_or_else(|| ApiError::not_found(req.resource.info(), req.name))?
        .value;
    let mut subject = KubernetesClaims {
        namespace: namespace.to_string(),
        serviceaccount: BoundRef {
            name: req.name.to_string(),
            uid: object::uid(&sa).to_string(),
        },
        pod: None,
        secret: None,
        node: None,
    };
    if let Some(bound) = &bound {
        bind(&req, bound, &mut subject).await?;
    }
    // NodeRestriction: a node asks only for tokens bound to pods it runs.
    if let Some(node) = req.user.node_name() {
        let on_node =
            subject.pod.is_some() && subject.node.as_ref().is_some_and(|n| n.name == node);
        if !on_node {
            return Err(ApiError::forbidden(
                req.resource.info(),
                req.name,
                &format!("node {node:?} may only request tokens bound to pods scheduled on it"),
            ));
        }
    }

    let now = jiff::Timestamp::now();
    let token = tokens
        .issue(subject, audiences.clone(), expiration, now.as_second())
        .map_err(ApiError::internal)?;
    request.spec.audiences = audiences;
    request.spec.expiration_seconds = Some(expiration);
    let mut answer = serde_json::to_value(&request).map_err(ApiError::internal)?;
    answer["apiVersion"] = json!("authentication.k8s.io/v1");
    answer["kind"] = json!("TokenRequest");
    answer["metadata"] = json!({
        "name": req.name,
        "namespace": namespace,
        "creationTimestamp": object::timestamp(now),
    });
    let expires = now
        .checked_add(jiff::SignedDuration::from_secs(expiration))
        .map_err(ApiError::internal)?;
    answer["status"] = json!({
        "token": token,
        "expirationTimestamp": object::timestamp(expires),
    });
    Ok(json_response(StatusCode::CREATED, &answer))
}

/// Check the object a token is to be bound to and name it (and a pod's node) in the claims.
async fn bind(
    req: &SubresourceRequest<'_>,
    bound: &BoundObjectReference,
    subject: &mut KubernetesClaims,
) -> ApiResult<()> {
    let kind = bound.kind.as_deref().unwrap_or("");
    let info = bindable_kind(bound).ok_or_else(|| {
        ApiError::bad_request(format!(
            "cannot bind token to object of type {}, Kind={kind}",
            bound.api_version.as_deref().unwrap_or("v1")
        ))
    })?;
    let name = bound.name.as_deref().unwrap_or("");
    let resource = req.registry.of(info);
    let obj: Value = resource
        .storage
        .get(&info.key(req.namespace, name))
        .await?
        .ok_or_else(|| ApiError::not_found(info, name))?
        .value;
    let uid = object::uid(&obj).to_string();
    if let Some(wanted) = bound.uid.as_deref().filter(|u| !u.is_empty()) {
        if wanted != uid {
            return Err(ApiError::conflict(
                info,
                name,
                &format!("the UID in the bound object reference ({wanted}) does not match the UID in record. The object might have been deleted and then recreated"),
            ));
        }
    }
    let reference = BoundRef {
        name: name.to_string(),
        uid,
    };
    if std::ptr::eq(info, &pod::INFO) {
        let runs_as = obj
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .unwrap_or(super::DEFAULT);
        if runs_as != subject.serviceaccount.name {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {:?} to pod running with different serviceaccount name.",
                subject.serviceaccount.name
            )));
        }
        // The pod's node is named too (as Kubernetes' ServiceAccountTokenPodNodeInfo does), so
        // the token can be traced to where it was used.
        if let Some(node_name) = obj.pointer("/spec/nodeName").and_then(Value::as_str) {
            let nodes = req.registry.of(&node::INFO);
            if let Some(n) = nodes.storage.get(&node::INFO.key(None, node_name)).await? {
                subject.node = Some(BoundRef {
                    name: node_name.to_string(),
                    uid: object::uid(&n.value).to_string(),
                });
            }
        }
        subject.pod = Some(reference);
    } else {
        subject.secret = Some(reference);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> TokenRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn defaults_and_limits() {
        let default = vec!["https://kubernetes.default.svc.cluster.local".to_string()];
        let (aud, exp, bound) = validated_spec(
            &request(json!({"spec": {}})),
            &default,
            MIN_EXPIRATION_SECONDS,
        )
        .unwrap();
        assert_eq!((aud, exp, bound), (default.clone(), 3600, None));
        let (aud, _, _) = validated_spec(
            &request(json!({"spec": {"audiences": ["vault"], "expirationSeconds": 600}})),
            &default,
            MIN_EXPIRATION_SECONDS,
        )
        .unwrap();
        assert_eq!(aud, ["vault"]);
        let short = validated_spec(
            &request(json!({"spec": {"expirationSeconds": 60}})),
            &default,
            MIN_EXPIRATION_SECONDS,
        )
        .unwrap_err();
        assert_eq!(short[0].field, "spec.expirationSeconds");
        assert!(short[0].message.contains("less than 10 minutes"));
        // A floor lowered for tests is named in seconds.
        let lowered = validated_spec(
            &request(json!({"spec": {"expirationSeconds": 1}})),
            &default,
            2,
        )
        .unwrap_err();
        assert!(lowered[0].message.contains("less than 2 seconds"));
        assert!(validated_spec(
            &request(json!({"spec": {"expirationSeconds": 2}})),
            &default,
            2
        )
        .is_ok());
    }

    #[test]
    fn tokens_bind_to_pods_and_secrets_only() {
        let r = |kind: &str| BoundObjectReference {
            kind: Some(kind.into()),
            api_version: Some("v1".into()),
            name: Some("x".into()),
            uid: None,
        };
        assert!(std::ptr::eq(bindable_kind(&r("Pod")).unwrap(), &pod::INFO));
        assert!(std::ptr::eq(
            bindable_kind(&r("Secret")).unwrap(),
            &secret::INFO
        ));
        assert!(bindable_kind(&r("ConfigMap")).is_none());
    }
}
