//! `kubectl get` columns for RoleBinding and ClusterRoleBinding, as kube-apiserver renders them.

use jiff::Timestamp;
use serde_json::Value;

use crate::printers::format::*;
use crate::printers::*;

pub const BINDING_COLUMNS: &[Col] = &[
    NAME,
    c(
        super::super::role::INFO.kind,
        "string",
        "RoleRef is the reference to the role.",
    ),
    AGE,
    w("Users", "string", "Users in the binding."),
    w("Groups", "string", "Groups in the binding."),
    w(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the binding.",
    ),
];

pub fn binding_cells(binding: &Value, now: Timestamp) -> Vec<Value> {
    let subjects = |kind: &str| {
        arr(binding, &["subjects"])
            .iter()
            .filter(|s| st(s, &["kind"]) == kind)
            .map(|s| match kind {
                "ServiceAccount" => format!("{}/{}", st(s, &["namespace"]), st(s, &["name"])),
                _ => st(s, &["name"]).to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        name(binding),
        s(format!(
            "{}/{}",
            st(binding, &["roleRef", "kind"]),
            st(binding, &["roleRef", "name"])
        )),
        age(binding, now),
        s(subjects("User")),
        s(subjects("Group")),
        s(subjects("ServiceAccount")),
    ]
}

pub static PRINTER: Printer = printer(BINDING_COLUMNS, binding_cells);
