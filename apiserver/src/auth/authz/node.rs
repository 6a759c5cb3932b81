//! The Node authorizer, with the request-time half of NodeRestriction: a node's identity
//! (`system:node:<name>` in `system:nodes`) may read a Secret, ConfigMap, PersistentVolumeClaim
//! or ServiceAccount (and request its tokens) only when a pod bound to that node uses it, and
//! may change only its own Node and Lease and the pods bound to it. Everything else a node
//! does is left to RBAC's `system:node` role, which grants none of the above reads.
//!
//! Unlike Kubernetes' graph, relationships are found by looking at the pods of the object's
//! namespace in the watch cache, which is enough at the scale one namespace has.

use std::sync::Arc;

use serde_json::Value;

use super::{Authorizer, Decision};
use crate::auth::request_info::RequestInfo;
use crate::auth::user::UserInfo;
use crate::resource::ResourceInfo;
use crate::storage::WatchCache;

/// What a pod can refer to by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    Secret,
    ConfigMap,
    PersistentVolumeClaim,
    ServiceAccount,
}

impl Reference {
    fn of_resource(resource: &str) -> Option<Reference> {
        Some(match resource {
            "secrets" => Reference::Secret,
            "configmaps" => Reference::ConfigMap,
            "persistentvolumeclaims" => Reference::PersistentVolumeClaim,
            "serviceaccounts" => Reference::ServiceAccount,
            _ => return None,
        })
    }
}

fn strs<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Whether `pod` refers to the object `name` of kind `what` (pure).
pub fn pod_refers_to(pod: &Value, what: Reference, name: &str) -> bool {
    let spec = &pod["spec"];
    let is = |v: Option<&Value>| v.and_then(Value::as_str) == Some(name);
    let volumes = || strs(spec, "/volumes");
    let containers = || {
        strs(spec, "/containers")
            .chain(strs(spec, "/initContainers"))
            .chain(strs(spec, "/ephemeralContainers"))
    };
    let env_refs = |key: &str, from: &str| {
        containers().any(|c| {
            strs(c, "/env").any(|e| is(e.pointer(&format!("/valueFrom/{key}/name"))))
                || strs(c, "/envFrom").any(|e| is(e.pointer(&format!("/{from}/name"))))
        })
    };
    let projected = |key: &str| {
        volumes()
            .any(|v| strs(v, "/projected/sources").any(|s| is(s.pointer(&format!("/{key}/name")))))
    };
    match what {
        Reference::Secret => {
            volumes().any(|v| is(v.pointer("/secret/secretName")))
                || projected("secret")
                || env_refs("secretKeyRef", "secretRef")
                || strs(spec, "/imagePullSecrets").any(|s| is(s.get("name")))
        }
        Reference::ConfigMap => {
            volumes().any(|v| is(v.pointer("/configMap/name")))
                || projected("configMap")
                || env_refs("configMapKeyRef", "configMapRef")
        }
        Reference::PersistentVolumeClaim => {
            volumes().any(|v| is(v.pointer("/persistentVolumeClaim/claimName")))
        }
        Reference::ServiceAccount => {
            spec["serviceAccountName"].as_str().unwrap_or("default") == name
        }
    }
}

fn bound_to(pod: &Value, node: &str) -> bool {
    pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
}

const WRITES: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

pub struct NodeAuthorizer {
    pub pods: Arc<WatchCache>,
    pub pod_info: &'static ResourceInfo,
}

impl NodeAuthorizer {
    fn pods_of_namespace(&self, namespace: &str) -> Vec<Arc<Value>> {
        let prefix = format!("{}{namespace}/", self.pod_info.storage_prefix());
        self.pods.snapshot(&prefix).0
    }

    /// A read of an object pods refer to (or a ServiceAccount token): allowed when a pod
    /// bound to `node` uses it; otherwise RBAC decides (and system:node grants none of these).
    fn decide_reference(&self, node: &str, what: Reference, request: &RequestInfo) -> Decision {
        let token = what == Reference::ServiceAccount
            && request.subresource == "token"
            && request.verb == "create";
        let read = request.subresource.is_empty() && request.verb == "get";
        let related = (token || read)
            && self
                .pods_of_namespace(&request.namespace)
                .iter()
                .any(|p| bound_to(p, node) && pod_refers_to(p, what, &request.name));
        if related {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }

    fn decide(&self, node: &str, request: &RequestInfo) -> Decision {
        if !request.resource_request {
            return Decision::NoOpinion;
        }
        let deny = |why: String| Decision::Deny(why);
        let writes = WRITES.contains(&request.verb.as_str());
        if let Some(what) = Reference::of_resource(&request.resource) {
            if request.api_group.is_empty() {
                return self.decide_reference(node, what, request);
            }
        }
        match (request.api_group.as_str(), request.resource.as_str()) {
            ("", "nodes") if writes && !request.name.is_empty() && request.name != node => {
                deny(format!(
                    "node {node:?} is not allowed to modify node {:?}",
                    request.name
                ))
            }
            ("", "pods") if writes && request.verb != "create" => {
                if request.name.is_empty() {
                    return deny(format!("node {node:?} can only change pods one by one"));
                }
                let key = self.pod_info.key(Some(&request.namespace), &request.name);
                match self.pods.get(&key) {
                    Some(pod) if !bound_to(&pod, node) => {
                        deny(format!("node {node:?} can only change pods bound to it"))
                    }
                    // Bound to it, or gone already (the write will answer 404).
                    _ => Decision::NoOpinion,
                }
            }
            ("coordination.k8s.io", "leases") if writes && !request.name.is_empty() => {
                if request.namespace != "kube-node-lease" || request.name != node {
                    deny(format!(
                        "node {node:?} can only access its own lease in the \"kube-node-lease\" namespace"
                    ))
                } else {
                    Decision::NoOpinion
                }
            }
            _ => Decision::NoOpinion,
        }
    }
}

impl Authorizer for NodeAuthorizer {
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        match user.node_name() {
            Some(node) => self.decide(node, request),
            None => Decision::NoOpinion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_refers_to_what_its_volumes_env_and_pull_secrets_name() {
        let pod = json!({"spec": {
            "nodeName": "n1",
            "serviceAccountName": "builder",
            "imagePullSecrets": [{"name": "regcred"}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "tls"}},
                {"name": "b", "configMap": {"name": "settings"}},
                {"name": "c", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
            ],
            "containers": [{"name": "c",
                "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "p"}}}],
                "envFrom": [{"configMapRef": {"name": "flags"}}]}],
        }});
        for s in ["tls", "db", "regcred"] {
            assert!(pod_refers_to(&pod, Reference::Secret, s), "{s}");
        }
        for c in ["settings", "kube-root-ca.crt", "flags"] {
            assert!(pod_refers_to(&pod, Reference::ConfigMap, c), "{c}");
        }
        assert!(pod_refers_to(
            &pod,
            Reference::PersistentVolumeClaim,
            "data"
        ));
        assert!(pod_refers_to(&pod, Reference::ServiceAccount, "builder"));
        assert!(!pod_refers_to(&pod, Reference::Secret, "settings"));
        assert!(!pod_refers_to(&pod, Reference::ServiceAccount, "default"));
        assert!(pod_refers_to(
            &json!({"spec": {}}),
            Reference::ServiceAccount,
            "default"
        ));
    }
}
