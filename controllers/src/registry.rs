//! Every controller, by the name `--controllers` uses. Adding a controller: a folder with a
//! `start` function and one line here.

use crate::registration::Registration;
use crate::{
    clusterrole_aggregation, deployment, endpoints, endpointslice, garbage_collector, job,
    namespace, node_ipam, node_lifecycle, replicaset, root_ca_publisher, serviceaccount,
};

pub const CONTROLLERS: &[Registration] = &[
    replicaset::REGISTRATION,
    deployment::REGISTRATION,
    endpoints::REGISTRATION,
    endpointslice::REGISTRATION,
    garbage_collector::REGISTRATION,
    namespace::REGISTRATION,
    node_ipam::REGISTRATION,
    node_lifecycle::REGISTRATION,
    job::REGISTRATION,
    clusterrole_aggregation::REGISTRATION,
    serviceaccount::REGISTRATION,
    root_ca_publisher::REGISTRATION,
];

pub fn names() -> impl Iterator<Item = &'static str> {
    CONTROLLERS.iter().map(|c| c.name)
}

pub fn find(name: &str) -> Option<&'static Registration> {
    CONTROLLERS.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_keep_their_flag_spelling() {
        let names: Vec<_> = names().collect();
        assert_eq!(
            names,
            [
                "replicaset",
                "deployment",
                "endpoints",
                "endpointslice",
                "garbagecollector",
                "namespace",
                "nodeipam",
                "nodelifecycle",
                "job",
                "clusterrole-aggregation",
                "serviceaccount",
                "root-ca-cert-publisher"
            ]
        );
        assert!(find("job").is_some());
        assert!(find("bogus").is_none());
    }
}
