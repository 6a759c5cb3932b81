//! NodeResourcesFit: the pod's effective requests must fit in the node's allocatable resources
//! minus what bound and assumed pods request, and the node must have room for one more pod.

use crate::framework::{CycleState, FilterPlugin, FilterResult, NodeInfo, PodInfo};

pub struct NodeResourcesFit;

/// The reasons the pod does not fit, in kube-scheduler's order and words (empty: it fits).
pub fn insufficient(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
    let mut out = Vec::new();
    if node.pods.len() as i64 + 1 > node.allowed_pods {
        out.push("Too many pods".to_string());
    }
    let want = &pod.requests;
    let (alloc, used) = (&node.allocatable, &node.requested);
    if want.milli_cpu > 0 && want.milli_cpu > alloc.milli_cpu - used.milli_cpu {
        out.push("Insufficient cpu".to_string());
    }
    if want.memory > 0 && want.memory > alloc.memory - used.memory {
        out.push("Insufficient memory".to_string());
    }
    if want.ephemeral_storage > 0
        && want.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage
    {
        out.push("Insufficient ephemeral-storage".to_string());
    }
    for (name, amount) in &want.scalar {
        let free = alloc.scalar.get(name).copied().unwrap_or(0)
            - used.scalar.get(name).copied().unwrap_or(0);
        if *amount > 0 && *amount > free {
            out.push(format!("Insufficient {name}"));
        }
    }
    out
}

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> FilterResult {
        let reasons = insufficient(pod, node);
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testutil::*;
    use serde_json::json;

    #[test]
    fn requests_beyond_free_resources_are_refused() {
        let mut n = node(
            json!({"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "3"}}}),
        );
        n.add_pod(pod_req("a", "1500m", "1Gi"));
        let s = CycleState::default();
        assert!(NodeResourcesFit
            .filter(&s, &pod_req("b", "500m", "3Gi"), &n)
            .is_ok());
        assert_eq!(
            NodeResourcesFit.filter(&s, &pod_req("b", "501m", "3Gi"), &n),
            Err(vec!["Insufficient cpu".to_string()])
        );
        assert_eq!(
            NodeResourcesFit.filter(&s, &pod_req("b", "1", "5Gi"), &n),
            Err(vec![
                "Insufficient cpu".to_string(),
                "Insufficient memory".to_string()
            ])
        );
    }

    #[test]
    fn pod_count_and_extended_resources_are_checked() {
        let mut n = node(
            json!({"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "1", "example.com/gpu": "1"}}}),
        );
        let s = CycleState::default();
        let gpu = |name: &str, count: &str| {
            pod(
                json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"containers": [
                {"name": "c", "image": "i", "resources": {"requests": {"example.com/gpu": count}}}]}}),
            )
        };
        assert!(NodeResourcesFit.filter(&s, &gpu("a", "1"), &n).is_ok());
        assert_eq!(
            NodeResourcesFit.filter(&s, &gpu("a", "2"), &n),
            Err(vec!["Insufficient example.com/gpu".to_string()])
        );
        n.add_pod(pod(json!({})));
        assert_eq!(
            NodeResourcesFit.filter(
                &s,
                &pod(json!({"metadata": {"name": "q", "namespace": "default"}})),
                &n
            ),
            Err(vec!["Too many pods".to_string()])
        );
    }
}
