//! Who made a request, as Kubernetes' `user.Info` describes it.

use std::collections::BTreeMap;

pub const ALL_AUTHENTICATED: &str = "system:authenticated";
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
pub const ANONYMOUS: &str = "system:anonymous";
pub const MASTERS: &str = "system:masters";
pub const NODES: &str = "system:nodes";
pub const NODE_PREFIX: &str = "system:node:";
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
pub const SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";
pub const SCHEDULER: &str = "system:kube-scheduler";
pub const CONTROLLERS: &str = "system:kube-controller-manager";
/// The ClusterRoles the components hold (named after their users, as in Kubernetes).
pub const SCHEDULER_ROLE: &str = "system:kube-scheduler";
pub const CONTROLLERS_ROLE: &str = "system:kube-controller-manager";
pub const NODE_ROLE: &str = "system:node";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn new(name: impl Into<String>, groups: Vec<String>) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups,
            ..Default::default()
        }
    }

    /// The anonymous user (only ever used on the public paths).
    pub fn anonymous() -> UserInfo {
        UserInfo::new(ANONYMOUS, vec![ALL_UNAUTHENTICATED.to_string()])
    }

    /// Add `system:authenticated` unless present (every authenticated user is in it).
    pub fn authenticated(mut self) -> UserInfo {
        if !self.groups.iter().any(|g| g == ALL_AUTHENTICATED) {
            self.groups.push(ALL_AUTHENTICATED.to_string());
        }
        self
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The node this user is the agent of (`system:node:<name>` in `system:nodes`).
    pub fn node_name(&self) -> Option<&str> {
        if !self.in_group(NODES) {
            return None;
        }
        self.name
            .strip_prefix(NODE_PREFIX)
            .filter(|n| !n.is_empty())
    }

    /// `(namespace, name)` of the ServiceAccount this user is.
    pub fn service_account(&self) -> Option<(&str, &str)> {
        self.name
            .strip_prefix(SERVICE_ACCOUNT_PREFIX)?
            .split_once(':')
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
    }
}

/// The user name of a ServiceAccount.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}")
}

/// The groups every ServiceAccount of `namespace` is in.
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        SERVICE_ACCOUNTS.to_string(),
        format!("{SERVICE_ACCOUNTS}:{namespace}"),
        ALL_AUTHENTICATED.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_service_account_names() {
        let node = UserInfo::new("system:node:n1", vec![NODES.into()]);
        assert_eq!(node.node_name(), Some("n1"));
        let impostor = UserInfo::new("system:node:n1", vec![]);
        assert_eq!(impostor.node_name(), None);
        let sa = UserInfo::new(service_account_user("dev", "builder"), vec![]);
        assert_eq!(sa.service_account(), Some(("dev", "builder")));
        assert_eq!(UserInfo::new("alice", vec![]).service_account(), None);
    }
}
