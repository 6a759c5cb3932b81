//! The scheduler cache: every node with the pods placed on it, including pods the scheduler
//! has assumed (decided, binding in flight) but not yet seen bound through the watch. An
//! assumed pod is confirmed when the watch shows it bound, or forgotten when binding fails.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use crate::framework::{NodeInfo, PodInfo, PodKey};

#[derive(Debug)]
struct PodState {
    node: String,
    assumed: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    #[error("pod {0} is already in the cache")]
    AlreadyPresent(PodKey),
}

/// What a node change means for pending pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeChange {
    Added,
    /// Something a filter or score reads changed.
    Relevant,
    Irrelevant,
}

#[derive(Debug, Default)]
pub struct Cache {
    nodes: BTreeMap<String, NodeInfo>,
    pods: HashMap<PodKey, PodState>,
}

fn node_relevant_change(old: &Node, new: &Node) -> bool {
    let cond = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
    };
    old.metadata.labels != new.metadata.labels
        || old.spec != new.spec
        || old.status.as_ref().map(|s| (&s.allocatable, &s.capacity))
            != new.status.as_ref().map(|s| (&s.allocatable, &s.capacity))
        || cond(old) != cond(new)
}

impl Cache {
    pub fn new() -> Cache {
        Cache::default()
    }

    /// Nodes that exist (have a Node object), in name order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.values().filter(|n| n.node.is_some())
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    pub fn node_count(&self) -> usize {
        self.nodes().count()
    }

    pub fn set_node(&mut self, node: Arc<Node>) -> NodeChange {
        let name = node.metadata.name.clone().unwrap_or_default();
        let info = self
            .nodes
            .entry(name.clone())
            .or_insert_with(|| NodeInfo::new(&name));
        let change = match &info.node {
            None => NodeChange::Added,
            Some(old) if node_relevant_change(old, &node) => NodeChange::Relevant,
            Some(_) => NodeChange::Irrelevant,
        };
        info.set_node(node);
        change
    }

    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.get_mut(name) {
            if info.pods.is_empty() {
                self.nodes.remove(name);
            } else {
                info.node = None;
            }
        }
    }

    /// Replace the node set after a relist.
    pub fn resync_nodes(&mut self, nodes: Vec<Arc<Node>>) {
        let keep: std::collections::HashSet<String> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        let gone: Vec<String> = self
            .nodes
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for name in gone {
            self.remove_node(&name);
        }
        for n in nodes {
            self.set_node(n);
        }
    }

    fn place(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.nodes
            .entry(node.to_string())
            .or_insert_with(|| NodeInfo::new(node))
            .add_pod(pod);
    }

    fn unplace(&mut self, key: &str, node: &str) {
        if let Some(info) = self.nodes.get_mut(node) {
            info.remove_pod(key);
            if info.node.is_none() && info.pods.is_empty() {
                self.nodes.remove(node);
            }
        }
    }

    /// Count a pod on a node before its binding is confirmed.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) -> Result<(), CacheError> {
        if self.pods.contains_key(&pod.key) {
            return Err(CacheError::AlreadyPresent(pod.key.clone()));
        }
        self.pods.insert(
            pod.key.clone(),
            PodState {
                node: node.to_string(),
                assumed: true,
            },
        );
        self.place(pod, node);
        Ok(())
    }

    /// Binding failed: take the assumed pod back out.
    pub fn forget(&mut self, key: &str) {
        if let Some(state) = self.pods.get(key) {
            if state.assumed {
                let node = state.node.clone();
                self.pods.remove(key);
                self.unplace(key, &node);
            }
        }
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|s| s.assumed)
    }

    pub fn contains_pod(&self, key: &str) -> bool {
        self.pods.contains_key(key)
    }

    /// A bound pod seen through the watch: confirms an assumption (possibly on another node,
    /// if someone else bound it) or adds the pod.
    pub fn add_bound_pod(&mut self, pod: Arc<PodInfo>, node: &str) {
        if let Some(old) = self.pods.get(&pod.key) {
            if old.node != node {
                let old_node = old.node.clone();
                self.unplace(&pod.key, &old_node);
            }
        }
        self.pods.insert(
            pod.key.clone(),
            PodState {
                node: node.to_string(),
                assumed: false,
            },
        );
        self.place(pod, node);
    }

    /// A pod was deleted or finished: its resources are free again.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        match self.pods.remove(key) {
            Some(state) => {
                self.unplace(key, &state.node);
                true
            }
            None => false,
        }
    }

    /// Replace the bound pods after a relist; assumed pods not in the list stay assumed.
    pub fn resync_pods(&mut self, bound: Vec<(Arc<PodInfo>, String)>) {
        let listed: std::collections::HashSet<PodKey> =
            bound.iter().map(|(p, _)| p.key.clone()).collect();
        let stale: Vec<PodKey> = self
            .pods
            .iter()
            .filter(|(k, s)| !s.assumed && !listed.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.remove_pod(&k);
        }
        for (p, node) in bound {
            self.add_bound_pod(p, &node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testutil::*;
    use serde_json::json;

    fn node_obj(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "10"}}}))
                .unwrap(),
        )
    }

    #[test]
    fn assume_then_confirm_or_forget() {
        let mut c = Cache::new();
        assert_eq!(c.set_node(node_obj("n1")), NodeChange::Added);
        assert_eq!(c.set_node(node_obj("n1")), NodeChange::Irrelevant);
        let p = pod_req("a", "1", "1Gi");
        c.assume(p.clone(), "n1").unwrap();
        assert_eq!(
            c.assume(p.clone(), "n1"),
            Err(CacheError::AlreadyPresent("default/a".into()))
        );
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 1000);
        c.forget("default/a");
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 0);

        c.assume(p.clone(), "n1").unwrap();
        c.add_bound_pod(p.clone(), "n1");
        assert!(!c.is_assumed("default/a"));
        c.forget("default/a"); // confirmed pods are not forgotten
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 1000);
        assert!(c.remove_pod("default/a"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 0);
    }

    #[test]
    fn confirmation_on_another_node_moves_the_pod() {
        let mut c = Cache::new();
        c.set_node(node_obj("n1"));
        c.set_node(node_obj("n2"));
        let p = pod_req("a", "1", "1Gi");
        c.assume(p.clone(), "n1").unwrap();
        c.add_bound_pod(p, "n2");
        assert_eq!(c.node("n1").unwrap().pods.len(), 0);
        assert_eq!(c.node("n2").unwrap().pods.len(), 1);
    }

    #[test]
    fn pods_on_unknown_nodes_are_kept_but_not_candidates() {
        let mut c = Cache::new();
        c.add_bound_pod(pod_req("a", "1", "1Gi"), "ghost");
        assert_eq!(c.node_count(), 0);
        assert_eq!(c.set_node(node_obj("ghost")), NodeChange::Added);
        assert_eq!(c.node("ghost").unwrap().requested.milli_cpu, 1000);
        c.resync_nodes(vec![]);
        assert_eq!(c.node_count(), 0);
        c.resync_pods(vec![]);
        assert!(c.node("ghost").is_none());
    }
}
