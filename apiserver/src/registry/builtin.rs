//! The one list of served kinds, in discovery order, and the admission chain. Adding a kind:
//! write its folder under its group, then add one line here.

use std::ops::RangeInclusive;

use ipnet::Ipv4Net;

use super::core::service::allocator::Allocators;
use super::strategy::KindStrategy;
use super::{
    apps, authentication, authorization, batch, coordination, core, discovery, rbac, Admission,
};
use crate::admission::namespace_lifecycle::NamespaceLifecycle;
use crate::admission::service_account::ServiceAccountAdmission;

/// What the kinds' strategies are configured with.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub service_cluster_ip_range: Ipv4Net,
    pub service_node_port_range: RangeInclusive<u16>,
}

impl RegistryConfig {
    /// The ClusterIP and NodePort allocators these ranges give.
    pub fn allocators(&self) -> Allocators {
        Allocators {
            service_range: self.service_cluster_ip_range,
            node_ports: self.service_node_port_range.clone(),
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            service_cluster_ip_range: "10.96.0.0/12".parse().expect("valid CIDR"),
            service_node_port_range: 30000..=32767,
        }
    }
}

pub fn kinds(config: &RegistryConfig) -> Vec<Box<dyn KindStrategy>> {
    vec![
        Box::new(core::namespace::NamespaceStrategy),
        Box::new(core::pod::PodStrategy),
        Box::new(core::node::NodeStrategy),
        Box::new(core::service::ServiceStrategy {
            allocators: config.allocators(),
        }),
        Box::new(core::endpoints::EndpointsStrategy),
        Box::new(core::event::EventStrategy),
        Box::new(core::configmap::ConfigMapStrategy),
        Box::new(core::secret::SecretStrategy),
        Box::new(core::serviceaccount::ServiceAccountStrategy),
        Box::new(apps::deployment::DeploymentStrategy),
        Box::new(apps::replicaset::ReplicaSetStrategy),
        Box::new(discovery::endpointslice::EndpointSliceStrategy),
        Box::new(coordination::lease::LeaseStrategy),
        Box::new(batch::job::JobStrategy),
        Box::new(rbac::role::RoleStrategy),
        Box::new(rbac::clusterrole::ClusterRoleStrategy),
        Box::new(rbac::rolebinding::RoleBindingStrategy),
        Box::new(rbac::clusterrolebinding::ClusterRoleBindingStrategy),
        Box::new(authorization::selfsubjectaccessreview::SelfSubjectAccessReviewStrategy),
        Box::new(authorization::selfsubjectrulesreview::SelfSubjectRulesReviewStrategy),
        Box::new(authorization::subjectaccessreview::SubjectAccessReviewStrategy),
        Box::new(authentication::selfsubjectreview::SelfSubjectReviewStrategy),
    ]
}

pub fn admission() -> Vec<Box<dyn Admission>> {
    vec![
        Box::new(NamespaceLifecycle),
        Box::new(ServiceAccountAdmission),
    ]
}
