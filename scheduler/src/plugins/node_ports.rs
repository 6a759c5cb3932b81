//! NodePorts: the host ports a pod asks for must be free on the node.

use crate::framework::{CycleState, FilterPlugin, FilterResult, NodeInfo, PodInfo};

pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub struct NodePorts;

impl FilterPlugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> FilterResult {
        let clash = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if clash {
            Err(vec![REASON.to_string()])
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testutil::*;
    use serde_json::json;

    fn with_port(name: &str, port: i32, proto: &str) -> std::sync::Arc<PodInfo> {
        pod(
            json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"containers": [
            {"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": port, "protocol": proto}]}]}}),
        )
    }

    #[test]
    fn a_used_host_port_refuses_the_node() {
        let mut n = named("n");
        n.add_pod(with_port("a", 8080, "TCP"));
        let s = CycleState::default();
        assert_eq!(
            NodePorts.filter(&s, &with_port("b", 8080, "TCP"), &n),
            Err(vec![REASON.to_string()])
        );
        assert!(NodePorts
            .filter(&s, &with_port("b", 8080, "UDP"), &n)
            .is_ok());
        assert!(NodePorts
            .filter(&s, &with_port("b", 8081, "TCP"), &n)
            .is_ok());
        n.remove_pod("default/a");
        assert!(NodePorts
            .filter(&s, &with_port("b", 8080, "TCP"), &n)
            .is_ok());
    }
}
