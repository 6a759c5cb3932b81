//! The `rbac.authorization.k8s.io` group: Roles and ClusterRoles (what may be done) and their
//! bindings (who may do it). The authorizer that reads them is `auth::authz::rbac`.

pub mod clusterrole;
pub mod clusterrolebinding;
pub mod escalation;
pub mod role;
pub mod rolebinding;

use serde_json::Value;

use crate::error::Cause;
use crate::printers::format::arr;
use crate::registry::core::serviceaccount;

pub const GROUP: &str = "rbac.authorization.k8s.io";

/// Every rule names verbs, and either resources (with API groups) or non-resource URLs.
fn validate_rules(obj: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    for (i, rule) in arr(obj, &["rules"]).iter().enumerate() {
        let field = |f: &str| format!("rules[{i}].{f}");
        if arr(rule, &["verbs"]).is_empty() {
            causes.push(Cause::required(field("verbs")));
        }
        let urls = arr(rule, &["nonResourceURLs"]);
        if !urls.is_empty() {
            if namespaced {
                causes.push(Cause::invalid(
                    field("nonResourceURLs"),
                    format!(
                        "{:?}",
                        urls.iter().filter_map(Value::as_str).collect::<Vec<_>>()
                    ),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !arr(rule, &["resources"]).is_empty() {
                causes.push(Cause::invalid(
                    field("nonResourceURLs"),
                    format!(
                        "{:?}",
                        urls.iter().filter_map(Value::as_str).collect::<Vec<_>>()
                    ),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if arr(rule, &["apiGroups"]).is_empty() {
            causes.push(Cause::required(field("apiGroups")));
        }
        if arr(rule, &["resources"]).is_empty() {
            causes.push(Cause::required(field("resources")));
        }
    }
}

/// A binding's roleRef names a Role (bindings in a namespace only) or a ClusterRole of this
/// group; its subjects are users, groups or ServiceAccounts (with a namespace).
fn validate_binding(obj: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    let role_ref = obj.get("roleRef");
    let kind = role_ref
        .and_then(|r| r.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let (role, cluster_role) = (role::INFO.kind, clusterrole::INFO.kind);
    let allowed: &[&str] = if namespaced {
        &[role, cluster_role]
    } else {
        &[cluster_role]
    };
    if kind.is_empty() {
        causes.push(Cause::required("roleRef.kind"));
    } else if !allowed.contains(&kind) {
        causes.push(Cause::unsupported("roleRef.kind", kind, allowed));
    }
    let group = role_ref
        .and_then(|r| r.get("apiGroup"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if group != GROUP {
        causes.push(Cause::unsupported("roleRef.apiGroup", group, &[GROUP]));
    }
    if role_ref
        .and_then(|r| r.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        causes.push(Cause::required("roleRef.name"));
    }
    for (i, subject) in arr(obj, &["subjects"]).iter().enumerate() {
        let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
        let field = |f: &str| format!("subjects[{i}].{f}");
        if subject
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            causes.push(Cause::required(field("name")));
        }
        match kind {
            "User" | "Group" => {}
            k if k == serviceaccount::SUBJECT_KIND => {
                let ns = subject
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if ns.is_empty() && !namespaced {
                    causes.push(Cause::required(field("namespace")));
                }
            }
            other => causes.push(Cause::unsupported(
                field("kind"),
                other,
                &[serviceaccount::SUBJECT_KIND, "User", "Group"],
            )),
        }
    }
}

/// The roleRef of a binding cannot change (delete and recreate the binding instead).
fn validate_role_ref_unchanged(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    if new.get("roleRef") != old.get("roleRef") {
        causes.push(Cause::invalid(
            "roleRef",
            new.get("roleRef").cloned().unwrap_or(Value::Null),
            "cannot change roleRef",
        ));
    }
}
