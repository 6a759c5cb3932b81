//! Authorization: may this user do this? The chain kube-apiserver runs by default: members of
//! `system:masters` may do anything, then the Node authorizer, then RBAC. The first that
//! allows wins; a request no authorizer allows is refused with Kubernetes' message.

pub mod bootstrap;
pub mod escalation;
pub mod node;
pub mod rbac;

use crate::auth::request_info::RequestInfo;
use crate::auth::user::{UserInfo, MASTERS};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused outright (no later authorizer is asked), with why.
    Deny(String),
    /// This authorizer has nothing to say; ask the next.
    NoOpinion,
}

pub trait Authorizer: Send + Sync {
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision;

    /// The rules this authorizer grants `user` in `namespace`, for SelfSubjectRulesReview.
    fn rules_for(&self, _user: &UserInfo, _namespace: &str) -> Vec<rbac::PolicyRule> {
        Vec::new()
    }
}

/// `system:masters` is allowed everything, before anything else is asked (kube-apiserver's
/// privileged group authorizer).
pub struct MastersGroup;

impl Authorizer for MastersGroup {
    fn authorize(&self, user: &UserInfo, _request: &RequestInfo) -> Decision {
        if user.in_group(MASTERS) {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}

/// Allows everything: only for the test-only insecure mode, where nobody is authenticated.
pub struct AlwaysAllow;

impl Authorizer for AlwaysAllow {
    fn authorize(&self, _user: &UserInfo, _request: &RequestInfo) -> Decision {
        Decision::Allow
    }
}

/// Ask each authorizer in turn.
pub struct Union(pub Vec<Box<dyn Authorizer>>);

impl Authorizer for Union {
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        for authorizer in &self.0 {
            match authorizer.authorize(user, request) {
                Decision::NoOpinion => continue,
                decision => return decision,
            }
        }
        Decision::NoOpinion
    }

    fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<rbac::PolicyRule> {
        self.0
            .iter()
            .flat_map(|a| a.rules_for(user, namespace))
            .collect()
    }
}

/// Kubernetes' text for a refused request (`User "x" cannot get resource "pods" in API group
/// "" in the namespace "default"`).
pub fn forbidden_message(user: &UserInfo, request: &RequestInfo) -> String {
    let who = &user.name;
    if !request.resource_request {
        return format!(
            "User \"{who}\" cannot {} path \"{}\"",
            request.verb, request.path
        );
    }
    let mut resource = request.resource.clone();
    if !request.subresource.is_empty() {
        resource = format!("{resource}/{}", request.subresource);
    }
    let group = &request.api_group;
    if request.namespace.is_empty() {
        format!(
            "User \"{who}\" cannot {} resource \"{resource}\" in API group \"{group}\" at the cluster scope",
            request.verb
        )
    } else {
        format!(
            "User \"{who}\" cannot {} resource \"{resource}\" in API group \"{group}\" in the namespace \"{}\"",
            request.verb, request.namespace
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::request_info::parse;

    #[test]
    fn messages_read_as_kubernetes_writes_them() {
        let user = UserInfo::new("alice", vec![]);
        assert_eq!(
            forbidden_message(&user, &parse("POST", "/api/v1/namespaces/default/pods", None)),
            "User \"alice\" cannot create resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        assert_eq!(
            forbidden_message(&user, &parse("GET", "/apis/apps/v1/deployments", None)),
            "User \"alice\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
        );
        assert_eq!(
            forbidden_message(&user, &parse("GET", "/metrics", None)),
            "User \"alice\" cannot get path \"/metrics\""
        );
    }

    #[test]
    fn masters_first_then_the_rest() {
        let chain = Union(vec![Box::new(MastersGroup)]);
        let req = parse("DELETE", "/api/v1/nodes/n1", None);
        let admin = UserInfo::new("root", vec![MASTERS.into()]);
        assert_eq!(chain.authorize(&admin, &req), Decision::Allow);
        let alice = UserInfo::new("alice", vec![]);
        assert_eq!(chain.authorize(&alice, &req), Decision::NoOpinion);
    }
}
