//! The built-in plugins, one module each, and the default profile.

pub mod balanced_allocation;
pub mod least_allocated;
pub mod node_affinity;
pub mod node_ports;
pub mod node_ready_unschedulable;
pub mod node_resources_fit;
pub mod pod_spread;
pub mod preferred_affinity;
pub mod taint_toleration;

use crate::config::Weights;
use crate::framework::Framework;

/// Filters in kube-scheduler's order (the first refusing filter names the node's reason), and
/// score plugins with their configured weights.
pub fn default_framework(w: &Weights) -> Framework {
    Framework {
        filters: vec![
            Box::new(node_ready_unschedulable::NodeReadyUnschedulable),
            Box::new(taint_toleration::TaintToleration),
            Box::new(node_affinity::NodeAffinity),
            Box::new(node_ports::NodePorts),
            Box::new(node_resources_fit::NodeResourcesFit),
        ],
        scorers: vec![
            (Box::new(least_allocated::LeastAllocated), w.least_allocated),
            (
                Box::new(balanced_allocation::BalancedAllocation),
                w.balanced_allocation,
            ),
            (Box::new(pod_spread::PodSpread), w.pod_spread),
            (
                Box::new(preferred_affinity::PreferredAffinity),
                w.preferred_affinity,
            ),
            (
                Box::new(taint_toleration::TaintToleration),
                w.taint_toleration,
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testutil::*;
    use serde_json::json;

    #[test]
    fn the_pipeline_reports_the_first_refusing_filter_per_node() {
        let fw = default_framework(&Weights::default());
        let tainted = node(
            json!({"metadata": {"name": "t"}, "spec": {"taints": [{"key": "key", "value": "value", "effect": "NoSchedule"}]},
            "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"}}}),
        );
        let small1 = node(
            json!({"metadata": {"name": "s1"}, "status": {"allocatable": {"cpu": "1", "memory": "8Gi", "pods": "10"}}}),
        );
        let small2 = node(
            json!({"metadata": {"name": "s2"}, "status": {"allocatable": {"cpu": "1", "memory": "8Gi", "pods": "10"}}}),
        );
        let p = pod_req("p", "2", "1Gi");
        let err = fw
            .schedule(&p, [&tainted, &small1, &small2], &mut rand::rng())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {key: value}, 2 Insufficient cpu."
        );
    }

    #[test]
    fn six_replicas_spread_evenly_over_equal_nodes() {
        let fw = default_framework(&Weights::default());
        let mut nodes = [named("a"), named("b"), named("c")];
        for i in 0..6 {
            let p = std::sync::Arc::new(crate::framework::PodInfo::new(std::sync::Arc::new(
                serde_json::from_value(json!({"metadata": {"name": format!("p{i}"), "namespace": "default",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true}]},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}}))
                .unwrap(),
            )));
            let place = fw.schedule(&p, nodes.iter(), &mut rand::rng()).unwrap();
            nodes
                .iter_mut()
                .find(|n| n.name == place.node)
                .unwrap()
                .add_pod(p);
        }
        assert!(nodes.iter().all(|n| n.pods.len() == 2));
    }
}
