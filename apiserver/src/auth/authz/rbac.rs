//! The RBAC authorizer: Roles, ClusterRoles and their bindings, read from the watch caches and
//! indexed by subject, so a request looks only at the bindings of its user and groups (never a
//! scan of every binding). The index is rebuilt when any of the four kinds changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::Deserialize;
use serde_json::Value;

use super::{Authorizer, Decision};
use crate::auth::request_info::RequestInfo;
use crate::auth::user::{self, UserInfo};
use crate::registry::core::serviceaccount;
use crate::registry::rbac::clusterrole;
use crate::storage::WatchCache;

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

impl PolicyRule {
    /// Whether this rule allows `request` (Kubernetes' `RuleAllows`).
    pub fn allows(&self, request: &RequestInfo) -> bool {
        if !has(&self.verbs, &request.verb) {
            return false;
        }
        if !request.resource_request {
            return self.non_resource_urls.iter().any(|url| {
                url == "*"
                    || url == &request.path
                    || url
                        .strip_suffix('*')
                        .is_some_and(|prefix| request.path.starts_with(prefix))
            });
        }
        if !has(&self.api_groups, &request.api_group) {
            return false;
        }
        let combined = if request.subresource.is_empty() {
            request.resource.clone()
        } else {
            format!("{}/{}", request.resource, request.subresource)
        };
        let resource_ok = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!request.subresource.is_empty()
                    && r.strip_prefix("*/") == Some(request.subresource.as_str()))
        });
        resource_ok
            && (self.resource_names.is_empty() || self.resource_names.contains(&request.name))
    }
}

#[derive(Debug, Deserialize)]
struct Subject {
    kind: String,
    name: String,
    #[serde(default)]
    namespace: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleRef {
    kind: String,
    name: String,
}

/// Who a binding names, as the keys the index uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SubjectKey {
    User(String),
    Group(String),
}

fn subject_key(subject: &Subject, binding_namespace: &str) -> Option<SubjectKey> {
    match subject.kind.as_str() {
        "User" => Some(SubjectKey::User(subject.name.clone())),
        "Group" => Some(SubjectKey::Group(subject.name.clone())),
        k if k == serviceaccount::SUBJECT_KIND => {
            let ns = if subject.namespace.is_empty() {
                binding_namespace
            } else {
                &subject.namespace
            };
            Some(SubjectKey::User(user::service_account_user(
                ns,
                &subject.name,
            )))
        }
        _ => None,
    }
}

/// One point in time of every role and binding, indexed for lookups.
#[derive(Default)]
struct Snapshot {
    cluster_roles: HashMap<String, Arc<Vec<PolicyRule>>>,
    roles: HashMap<(String, String), Arc<Vec<PolicyRule>>>,
    /// ClusterRoleBindings: subject → ClusterRole names.
    cluster_grants: HashMap<SubjectKey, Vec<String>>,
    /// RoleBindings: (namespace, subject) → role references.
    namespace_grants: HashMap<(String, SubjectKey), Vec<(bool, String)>>,
}

fn rules_of(obj: &Value) -> Arc<Vec<PolicyRule>> {
    Arc::new(
        obj.get("rules")
            .cloned()
            .and_then(|r| serde_json::from_value(r).ok())
            .unwrap_or_default(),
    )
}

fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Snapshot {
    fn build(caches: &Caches) -> Snapshot {
        let mut s = Snapshot::default();
        for role in caches
            .cluster_roles
            .snapshot(&caches.cluster_roles.prefix)
            .0
        {
            s.cluster_roles
                .insert(meta(&role, "name").into(), rules_of(&role));
        }
        for role in caches.roles.snapshot(&caches.roles.prefix).0 {
            let key = (meta(&role, "namespace").into(), meta(&role, "name").into());
            s.roles.insert(key, rules_of(&role));
        }
        for binding in caches
            .cluster_bindings
            .snapshot(&caches.cluster_bindings.prefix)
            .0
        {
            let Some(role_ref) = role_ref(&binding) else {
                continue;
            };
            for subject in subjects(&binding) {
                if let Some(key) = subject_key(&subject, "") {
                    s.cluster_grants
                        .entry(key)
                        .or_default()
                        .push(role_ref.name.clone());
                }
            }
        }
        for binding in caches.bindings.snapshot(&caches.bindings.prefix).0 {
            let Some(role_ref) = role_ref(&binding) else {
                continue;
            };
            let ns = meta(&binding, "namespace").to_string();
            let cluster = role_ref.kind == clusterrole::INFO.kind;
            for subject in subjects(&binding) {
                if let Some(key) = subject_key(&subject, &ns) {
                    s.namespace_grants
                        .entry((ns.clone(), key))
                        .or_default()
                        .push((cluster, role_ref.name.clone()));
                }
            }
        }
        s
    }

    /// Every rule that applies to `user` in `namespace` ("" : cluster-wide rules only).
    fn visit(&self, user: &UserInfo, namespace: &str, visit: &mut dyn FnMut(&PolicyRule) -> bool) {
        let keys = std::iter::once(SubjectKey::User(user.name.clone()))
            .chain(user.groups.iter().cloned().map(SubjectKey::Group));
        for key in keys {
            for role in self.cluster_grants.get(&key).into_iter().flatten() {
                for rule in self
                    .cluster_roles
                    .get(role)
                    .into_iter()
                    .flat_map(|r| r.iter())
                {
                    if visit(rule) {
                        return;
                    }
                }
            }
            if namespace.is_empty() {
                continue;
            }
            let grants = self.namespace_grants.get(&(namespace.to_string(), key));
            for (cluster, role) in grants.into_iter().flatten() {
                let rules = if *cluster {
                    self.cluster_roles.get(role)
                } else {
                    self.roles.get(&(namespace.to_string(), role.clone()))
                };
                for rule in rules.into_iter().flat_map(|r| r.iter()) {
                    if visit(rule) {
                        return;
                    }
                }
            }
        }
    }
}

fn role_ref(binding: &Value) -> Option<RoleRef> {
    serde_json::from_value(binding.get("roleRef")?.clone()).ok()
}

fn subjects(binding: &Value) -> Vec<Subject> {
    binding
        .get("subjects")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default()
}

/// The watch caches of the four RBAC kinds.
pub struct Caches {
    pub roles: Arc<WatchCache>,
    pub cluster_roles: Arc<WatchCache>,
    pub bindings: Arc<WatchCache>,
    pub cluster_bindings: Arc<WatchCache>,
}

impl Caches {
    fn revisions(&self) -> [i64; 4] {
        [
            self.roles.applied_revision(),
            self.cluster_roles.applied_revision(),
            self.bindings.applied_revision(),
            self.cluster_bindings.applied_revision(),
        ]
    }
}

pub struct RbacAuthorizer {
    caches: Caches,
    current: RwLock<(Option<[i64; 4]>, Arc<Snapshot>)>,
    rebuilding: Mutex<()>,
}

impl RbacAuthorizer {
    pub fn new(caches: Caches) -> RbacAuthorizer {
        RbacAuthorizer {
            caches,
            current: RwLock::new((None, Arc::new(Snapshot::default()))),
            rebuilding: Mutex::new(()),
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        let revisions = self.caches.revisions();
        {
            let current = self.current.read().expect("rbac lock");
            if current.0 == Some(revisions) {
                return current.1.clone();
            }
        }
        // One rebuild at a time; whoever waited finds it done.
        let _guard = self.rebuilding.lock().expect("rbac rebuild lock");
        let revisions = self.caches.revisions();
        if let Some(fresh) = {
            let current = self.current.read().expect("rbac lock");
            (current.0 == Some(revisions)).then(|| current.1.clone())
        } {
            return fresh;
        }
        let snapshot = Arc::new(Snapshot::build(&self.caches));
        *self.current.write().expect("rbac lock") = (Some(revisions), snapshot.clone());
        snapshot
    }
}

impl Authorizer for RbacAuthorizer {
    /// Every rule `user` holds in `namespace` (cluster-wide ones included).
    fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        let mut rules = Vec::new();
        self.snapshot().visit(user, namespace, &mut |r| {
            rules.push(r.clone());
            false
        });
        rules
    }

    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        let mut allowed = false;
        self.snapshot()
            .visit(user, &request.namespace, &mut |rule| {
                allowed = rule.allows(request);
                allowed
            });
        if allowed {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::request_info::parse;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        PolicyRule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_verbs_groups_resources_and_subresources() {
        let read_pods = rule(&["get", "list"], &[""], &["pods"]);
        assert!(read_pods.allows(&parse("GET", "/api/v1/namespaces/a/pods", None)));
        assert!(!read_pods.allows(&parse("POST", "/api/v1/namespaces/a/pods", None)));
        assert!(!read_pods.allows(&parse("GET", "/api/v1/namespaces/a/pods/p/log", None)));
        let logs = rule(&["get"], &[""], &["pods/log"]);
        assert!(logs.allows(&parse("GET", "/api/v1/namespaces/a/pods/p/log", None)));
        let any_scale = rule(&["update"], &["*"], &["*/scale"]);
        assert!(any_scale.allows(&parse(
            "PUT",
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            None
        )));
        assert!(!any_scale.allows(&parse(
            "PUT",
            "/apis/apps/v1/namespaces/a/deployments/d",
            None
        )));
        let star = rule(&["*"], &["*"], &["*"]);
        assert!(star.allows(&parse("POST", "/api/v1/namespaces/a/pods/p/exec", None)));
        assert!(!star.allows(&parse("GET", "/healthz", None)));
    }

    #[test]
    fn resource_names_and_non_resource_urls() {
        let mut one = rule(&["get"], &[""], &["configmaps"]);
        one.resource_names = vec!["settings".into()];
        assert!(one.allows(&parse(
            "GET",
            "/api/v1/namespaces/a/configmaps/settings",
            None
        )));
        assert!(!one.allows(&parse("GET", "/api/v1/namespaces/a/configmaps/other", None)));
        assert!(!one.allows(&parse("GET", "/api/v1/namespaces/a/configmaps", None)));
        let urls = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/apis/*".into(), "/version".into()],
            ..Default::default()
        };
        assert!(urls.allows(&parse("GET", "/apis/apps", None)));
        assert!(urls.allows(&parse("GET", "/version", None)));
        assert!(!urls.allows(&parse("GET", "/metrics", None)));
    }
}
