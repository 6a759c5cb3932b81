//! Escalation prevention on RBAC writes (Kubernetes' `policybased` storage): a Role or
//! ClusterRole may only grant what its writer holds, a binding may only bind a role whose
//! rules its writer holds, unless the writer is in `system:masters` or is allowed `escalate`
//! (roles) or `bind` (bindings) on that role.

use serde_json::Value;

use super::{clusterrole, role, GROUP};
use crate::auth::authz::escalation::{compact, uncovered};
use crate::auth::authz::rbac::PolicyRule;
use crate::auth::authz::Decision;
use crate::auth::request_info::RequestInfo;
use crate::auth::user::MASTERS;
use crate::error::{ApiError, ApiResult};
use crate::object;
use crate::registry::strategy::WriteContext;
use crate::resource::ResourceInfo;

/// Whether the writer may skip the comparison: `system:masters`, or `verb` allowed on the
/// role `name` (`resource` is `roles` or `clusterroles`).
fn allowed_to(
    writer: &WriteContext<'_>,
    verb: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> bool {
    if writer.user.in_group(MASTERS) {
        return true;
    }
    let request = RequestInfo {
        resource_request: true,
        path: String::new(),
        verb: verb.into(),
        api_group: GROUP.into(),
        api_version: "v1".into(),
        namespace: namespace.into(),
        resource: resource.into(),
        subresource: String::new(),
        name: name.into(),
    };
    writer.authorizer.authorize(writer.user, &request) == Decision::Allow
}

fn rules_of(obj: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(obj["rules"].clone()).unwrap_or_default()
}

/// Refuse the write if `rules` grant anything the writer does not hold in `namespace`.
fn confirm_no_escalation(
    writer: &WriteContext<'_>,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    rules: &[PolicyRule],
) -> ApiResult<()> {
    let held = writer.authorizer.rules_for(writer.user, namespace);
    let missing = uncovered(&held, rules);
    if missing.is_empty() {
        return Ok(());
    }
    let groups: Vec<String> = writer
        .user
        .groups
        .iter()
        .map(|g| format!("{g:?}"))
        .collect();
    let listed: Vec<String> = missing.iter().map(compact).collect();
    Err(ApiError::forbidden(
        info,
        name,
        &format!(
            "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
            writer.user.name,
            groups.join(" "),
            listed.join("\n")
        ),
    ))
}

/// A Role or ClusterRole write.
pub fn check_role_write(
    writer: &WriteContext<'_>,
    info: &ResourceInfo,
    obj: &Value,
) -> ApiResult<()> {
    let namespace = object::namespace(obj).unwrap_or_default();
    let name = object::name(obj);
    if allowed_to(writer, "escalate", info.plural, namespace, name) {
        return Ok(());
    }
    if !obj["aggregationRule"].is_null() {
        return Err(ApiError::forbidden(
            info,
            name,
            "must have cluster-admin privileges to write an aggregationRule",
        ));
    }
    confirm_no_escalation(writer, info, namespace, name, &rules_of(obj))
}

/// A RoleBinding or ClusterRoleBinding write: the writer holds the bound role's rules, or may
/// `bind` it.
pub fn check_binding_write(
    writer: &WriteContext<'_>,
    info: &ResourceInfo,
    obj: &Value,
) -> ApiResult<()> {
    let namespace = object::namespace(obj).unwrap_or_default();
    let name = object::name(obj);
    let role_kind = obj
        .pointer("/roleRef/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let role_name = obj
        .pointer("/roleRef/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let role_info = if role_kind == role::INFO.kind {
        &role::INFO
    } else {
        &clusterrole::INFO
    };
    if allowed_to(writer, "bind", role_info.plural, namespace, role_name) {
        return Ok(());
    }
    let role_namespace = role_info.namespaced.then_some(namespace);
    let bound = writer
        .registry
        .of(role_info)
        .storage
        .cache
        .get(&role_info.key(role_namespace, role_name))
        .ok_or_else(|| {
            ApiError::forbidden(
                info,
                name,
                &format!("{} {role_name:?} not found", role_info.qualified_plural()),
            )
        })?;
    confirm_no_escalation(writer, info, namespace, name, &rules_of(&bound))
}
