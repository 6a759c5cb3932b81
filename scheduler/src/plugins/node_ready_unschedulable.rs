//! NodeReady + NodeUnschedulable: a node must report Ready=True and must not be cordoned, unless
//! the pod tolerates the taint Kubernetes uses for that state.

use k8s_openapi::api::core::v1::Taint;

use super::taint_toleration::tolerated_by;
use crate::framework::{CycleState, FilterPlugin, FilterResult, NodeInfo, PodInfo};

pub const REASON_NOT_READY: &str = "node(s) were not ready";
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";

fn taint(key: &str) -> Taint {
    Taint {
        key: key.to_string(),
        effect: "NoSchedule".to_string(),
        ..Default::default()
    }
}

pub struct NodeReadyUnschedulable;

impl FilterPlugin for NodeReadyUnschedulable {
    fn name(&self) -> &'static str {
        "NodeReadyUnschedulable"
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> FilterResult {
        let Some(n) = node.node.as_ref() else {
            return Err(vec![REASON_NOT_READY.to_string()]);
        };
        let tolerations = pod.spec().and_then(|s| s.tolerations.as_ref());
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        if !ready && !tolerated_by(tolerations, &taint("node.kubernetes.io/not-ready")) {
            return Err(vec![REASON_NOT_READY.to_string()]);
        }
        let cordoned = n
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if cordoned && !tolerated_by(tolerations, &taint("node.kubernetes.io/unschedulable")) {
            return Err(vec![REASON_UNSCHEDULABLE.to_string()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testutil::*;
    use serde_json::json;

    #[test]
    fn not_ready_and_cordoned_nodes_are_refused() {
        let s = CycleState::default();
        let p = pod(json!({}));
        let not_ready = node(
            json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        let unknown = node(
            json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}]}}),
        );
        let cordoned = node(json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}}));
        assert_eq!(
            NodeReadyUnschedulable.filter(&s, &p, &not_ready),
            Err(vec![REASON_NOT_READY.to_string()])
        );
        assert_eq!(
            NodeReadyUnschedulable.filter(&s, &p, &unknown),
            Err(vec![REASON_NOT_READY.to_string()])
        );
        assert_eq!(
            NodeReadyUnschedulable.filter(&s, &p, &cordoned),
            Err(vec![REASON_UNSCHEDULABLE.to_string()])
        );
        assert!(NodeReadyUnschedulable.filter(&s, &p, &named("ok")).is_ok());
    }

    #[test]
    fn tolerating_the_state_taint_allows_the_node() {
        let s = CycleState::default();
        let p = pod(json!({"spec": {"containers": [{"name": "c", "image": "i"}],
            "tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}));
        let cordoned = node(json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}}));
        assert!(NodeReadyUnschedulable.filter(&s, &p, &cordoned).is_ok());
    }
}
