//! The scheduling framework: per-pod and per-node precomputed views, the plugin traits, and the
//! filter → score → select pipeline. Everything here is synchronous and pure over its inputs, so
//! it can be tested and benchmarked without an apiserver.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use rand::Rng;
use skiff_common::Quantity;

/// Requests assumed for scoring when a container names none (as kube-scheduler does), so that
/// pods without requests still spread.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;
/// Pod capacity of a node that reports none.
pub const DEFAULT_MAX_PODS: i64 = 110;
/// Highest score a plugin gives a node after normalisation.
pub const MAX_NODE_SCORE: i64 = 100;

/// `namespace/name` of a pod.
pub type PodKey = String;

pub fn pod_key(pod: &Pod) -> PodKey {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// A set of resource amounts: cpu in millicores, everything else in whole units.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Extended resources (`example.com/gpu`, `hugepages-2Mi`, ...).
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Read a resource list. Unparseable quantities count as zero (admission rejects them).
    pub fn from_list(list: Option<&BTreeMap<String, K8sQuantity>>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list.into_iter().flatten() {
            let Ok(q) = Quantity::parse(&q.0) else {
                continue;
            };
            match name.as_str() {
                "cpu" => r.milli_cpu = q.milli(),
                "memory" => r.memory = q.units(),
                "ephemeral-storage" => r.ephemeral_storage = q.units(),
                "pods" => {}
                other => {
                    r.scalar.insert(other.to_string(), q.units());
                }
            }
        }
        r
    }

    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Element-wise maximum.
    pub fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

fn requests_of(r: Option<&ResourceRequirements>) -> Resources {
    Resources::from_list(r.and_then(|r| r.requests.as_ref()))
}

/// The effective requests of a pod, by Kubernetes rules: the larger of (sum of app containers
/// plus restartable init containers) and (each init container plus the restartable init
/// containers started before it), plus the pod overhead.
pub fn pod_requests(pod: &Pod) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&requests_of(c.resources.as_ref()));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let req = requests_of(c.resources.as_ref());
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&req);
            init_peak.max_with(&sidecars);
        } else {
            let mut during = sidecars.clone();
            during.add(&req);
            init_peak.max_with(&during);
        }
    }
    total.add(&sidecars);
    total.max_with(&init_peak);
    total.add(&Resources::from_list(spec.overhead.as_ref()));
    total
}

/// Requests used for scoring: cpu and memory with defaults for containers that set none.
pub fn non_zero_requests(pod: &Pod) -> (i64, i64) {
    let Some(spec) = pod.spec.as_ref() else {
        return (0, 0);
    };
    let mut cpu = 0;
    let mut mem = 0;
    for c in &spec.containers {
        let r = requests_of(c.resources.as_ref());
        let has = |name: &str| {
            c.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .is_some_and(|m| m.contains_key(name))
        };
        cpu += if has("cpu") {
            r.milli_cpu
        } else {
            DEFAULT_MILLI_CPU_REQUEST
        };
        mem += if has("memory") {
            r.memory
        } else {
            DEFAULT_MEMORY_REQUEST
        };
    }
    (cpu, mem)
}

/// A host port a container asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    /// Two host ports conflict when protocol and port match and either address is a wildcard
    /// or they are the same address.
    pub fn conflicts(&self, o: &HostPort) -> bool {
        let wildcard = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.port == o.port
            && self.protocol == o.protocol
            && (wildcard(&self.ip) || wildcard(&o.ip) || self.ip == o.ip)
    }
}

pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return vec![];
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|p| *p > 0)?;
            Some(HostPort {
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ip: p.host_ip.clone().unwrap_or_default(),
                port,
            })
        })
        .collect()
}

/// The uid of the controlling owner (or the first owner) of a pod: pods sharing it are one
/// workload for spreading.
pub fn owner_uid(pod: &Pod) -> Option<String> {
    let refs = pod.metadata.owner_references.as_ref()?;
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
        .map(|r| r.uid.clone())
}

/// What the scheduler computes once per pod.
#[derive(Debug)]
pub struct PodInfo {
    pub key: PodKey,
    pub pod: Arc<Pod>,
    pub requests: Resources,
    pub non_zero: (i64, i64),
    pub host_ports: Vec<HostPort>,
    pub owner: Option<String>,
    /// Selectors of the services selecting this pod (filled in by the scheduler loop).
    pub services: Vec<BTreeMap<String, String>>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        PodInfo {
            key: pod_key(&pod),
            requests: pod_requests(&pod),
            non_zero: non_zero_requests(&pod),
            host_ports: host_ports(&pod),
            owner: owner_uid(&pod),
            services: Vec::new(),
            pod,
        }
    }

    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// Whether every service selector of this pod selects `other` (same namespace).
    pub fn same_service(&self, other: &PodInfo) -> bool {
        !self.services.is_empty()
            && self.namespace() == other.namespace()
            && self.services.iter().all(|sel| {
                let labels = other.pod.metadata.labels.as_ref();
                sel.iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            })
    }

    pub fn spec(&self) -> Option<&k8s_openapi::api::core::v1::PodSpec> {
        self.pod.spec.as_ref()
    }
}

/// A node with everything placed on it (bound and assumed pods).
#[derive(Debug, Default)]
pub struct NodeInfo {
    pub name: String,
    /// `None` while pods name a node the scheduler has not seen (or that was deleted).
    pub node: Option<Arc<Node>>,
    pub allocatable: Resources,
    pub allowed_pods: i64,
    pub requested: Resources,
    pub non_zero_requested: (i64, i64),
    pub pods: HashMap<PodKey, Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    pub owner_counts: HashMap<String, u32>,
}

impl NodeInfo {
    pub fn new(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn with_node(node: Arc<Node>) -> NodeInfo {
        let mut n = NodeInfo::new(node.metadata.name.as_deref().unwrap_or(""));
        n.set_node(node);
        n
    }

    pub fn set_node(&mut self, node: Arc<Node>) {
        let status = node.status.as_ref();
        let list = status
            .and_then(|s| s.allocatable.as_ref())
            .or_else(|| status.and_then(|s| s.capacity.as_ref()));
        self.allocatable = Resources::from_list(list);
        self.allowed_pods = list
            .and_then(|l| l.get("pods"))
            .and_then(|q| Quantity::parse(&q.0).ok())
            .map(|q| q.units())
            .unwrap_or(DEFAULT_MAX_PODS);
        self.node = Some(node);
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        if let Some(old) = self.pods.remove(&pod.key) {
            self.account(&old, -1);
        }
        self.account(&pod, 1);
        self.pods.insert(pod.key.clone(), pod);
    }

    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let old = self.pods.remove(key)?;
        self.account(&old, -1);
        Some(old)
    }

    fn account(&mut self, pod: &PodInfo, sign: i64) {
        if sign > 0 {
            self.requested.add(&pod.requests);
            self.used_ports.extend(pod.host_ports.iter().cloned());
        } else {
            self.requested.sub(&pod.requests);
            for p in &pod.host_ports {
                if let Some(i) = self.used_ports.iter().position(|u| u == p) {
                    self.used_ports.swap_remove(i);
                }
            }
        }
        self.non_zero_requested.0 += sign * pod.non_zero.0;
        self.non_zero_requested.1 += sign * pod.non_zero.1;
        if let Some(owner) = &pod.owner {
            let c = self.owner_counts.entry(owner.clone()).or_default();
            if sign > 0 {
                *c += 1;
            } else {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    self.owner_counts.remove(owner);
                }
            }
        }
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.node.as_ref().and_then(|n| n.metadata.labels.as_ref())
    }
}

/// Per-cycle scratch space plugins fill in `pre_filter` and read in `filter` and `score`.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
}

impl CycleState {
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        self.data.insert(key, Box::new(value));
    }

    pub fn read<T: Any>(&self, key: &'static str) -> Option<&T> {
        self.data.get(key).and_then(|b| b.downcast_ref())
    }
}

/// Why a node cannot take a pod: one or more reasons in kube-scheduler's words.
pub type FilterResult = Result<(), Vec<String>>;

pub trait FilterPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    /// Compute per-pod data once per cycle.
    fn pre_filter(&self, _state: &mut CycleState, _pod: &PodInfo) {}
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> FilterResult;
}

pub trait ScorePlugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn pre_score(&self, _state: &mut CycleState, _pod: &PodInfo, _feasible: &[&NodeInfo]) {}
    /// A raw score; `normalize` maps the raw scores of all feasible nodes into 0..=100.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64;
    fn normalize(&self, _scores: &mut [i64]) {}
}

/// Scale scores so the highest becomes 100 (`reverse`: the lowest raw score becomes 100).
pub fn normalize_to_max(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    for s in scores.iter_mut() {
        *s = if max == 0 {
            if reverse {
                MAX_NODE_SCORE
            } else {
                0
            }
        } else {
            let v = *s * MAX_NODE_SCORE / max;
            if reverse {
                MAX_NODE_SCORE - v
            } else {
                v
            }
        };
    }
}

/// Every node refused the pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FitError {
    pub num_nodes: usize,
    /// reason → number of nodes that gave it
    pub reasons: BTreeMap<String, usize>,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_nodes == 0 {
            return write!(f, "no nodes available to schedule pods");
        }
        // kube-scheduler sorts the "<count> <reason>" strings, not the reasons.
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        parts.sort();
        write!(
            f,
            "0/{} nodes are available: {}.",
            self.num_nodes,
            parts.join(", ")
        )
    }
}

/// The plugins of one profile and their weights.
pub struct Framework {
    pub filters: Vec<Box<dyn FilterPlugin>>,
    pub scorers: Vec<(Box<dyn ScorePlugin>, i64)>,
}

/// Where a pod goes and how the decision was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub node: String,
    pub feasible: usize,
}

impl Framework {
    /// Run filter and score over `nodes` and choose one, ties broken uniformly at random.
    pub fn schedule<'a>(
        &self,
        pod: &PodInfo,
        nodes: impl IntoIterator<Item = &'a NodeInfo>,
        rng: &mut impl Rng,
    ) -> Result<Placement, FitError> {
        let mut state = CycleState::default();
        for f in &self.filters {
            f.pre_filter(&mut state, pod);
        }
        let mut feasible: Vec<&NodeInfo> = Vec::new();
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut num_nodes = 0;
        'nodes: for node in nodes {
            if node.node.is_none() {
                continue;
            }
            num_nodes += 1;
            for f in &self.filters {
                if let Err(rs) = f.filter(&state, pod, node) {
                    for r in rs {
                        *reasons.entry(r).or_default() += 1;
                    }
                    continue 'nodes;
                }
            }
            feasible.push(node);
        }
        if feasible.is_empty() {
            return Err(FitError { num_nodes, reasons });
        }
        let count = feasible.len();
        if count == 1 {
            return Ok(Placement {
                node: feasible[0].name.clone(),
                feasible: 1,
            });
        }
        let mut totals = vec![0i64; count];
        let mut scores = vec![0i64; count];
        for (plugin, weight) in &self.scorers {
            if *weight == 0 {
                continue;
            }
            plugin.pre_score(&mut state, pod, &feasible);
            for (s, n) in scores.iter_mut().zip(&feasible) {
                *s = plugin.score(&state, pod, n);
            }
            plugin.normalize(&mut scores);
            for (t, s) in totals.iter_mut().zip(&scores) {
                *t += s * weight;
            }
        }
        Ok(Placement {
            node: feasible[select_best(&totals, rng)].name.clone(),
            feasible: count,
        })
    }
}

/// Index of the highest total; among equal totals each is equally likely (reservoir sampling).
pub fn select_best(totals: &[i64], rng: &mut impl Rng) -> usize {
    let mut best = 0;
    let mut ties = 0u32;
    for (i, t) in totals.iter().enumerate() {
        if *t > totals[best] {
            best = i;
            ties = 1;
        } else if *t == totals[best] {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Builders for pods and nodes in unit tests.
    use super::*;
    use serde_json::{json, Value};

    pub fn pod(v: Value) -> Arc<PodInfo> {
        let mut v = v;
        if v.get("metadata").is_none() {
            v["metadata"] = json!({"name": "p", "namespace": "default"});
        }
        if v.get("spec").is_none() {
            v["spec"] = json!({"containers": [{"name": "c", "image": "i"}]});
        }
        Arc::new(PodInfo::new(Arc::new(serde_json::from_value(v).unwrap())))
    }

    pub fn pod_req(name: &str, cpu: &str, mem: &str) -> Arc<PodInfo> {
        pod(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "i",
                "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}
        }))
    }

    pub fn node(v: Value) -> NodeInfo {
        let mut v = v;
        if v.pointer("/status/allocatable").is_none() {
            v["status"]["allocatable"] = json!({"cpu": "4", "memory": "8Gi", "pods": "110"});
        }
        if v.pointer("/status/conditions").is_none() {
            v["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        }
        NodeInfo::with_node(Arc::new(serde_json::from_value(v).unwrap()))
    }

    pub fn named(name: &str) -> NodeInfo {
        node(json!({"metadata": {"name": name}}))
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn init_containers_and_sidecars_follow_kubernetes_rules() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [
                {"name": "i1", "image": "i", "resources": {"requests": {"cpu": "2"}}},
                {"name": "side", "image": "i", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
                {"name": "i2", "image": "i", "resources": {"requests": {"cpu": "1", "memory": "3Gi"}}}
            ],
            "containers": [
                {"name": "a", "image": "i", "resources": {"requests": {"cpu": "300m", "memory": "1Gi"}}},
                {"name": "b", "image": "i", "resources": {"requests": {"cpu": "200m"}}}
            ],
            "overhead": {"cpu": "10m"}
        }}));
        // cpu: max(0.3+0.2+0.5, 2, 0.5+1) + overhead = 2.01
        assert_eq!(p.requests.milli_cpu, 2010);
        // memory: max(1Gi + 1Gi sidecar, 1Gi + 3Gi) = 4Gi
        assert_eq!(p.requests.memory, 4 << 30);
    }

    #[test]
    fn non_zero_requests_default_missing_values() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "image": "i", "resources": {"requests": {"cpu": "1"}}},
            {"name": "b", "image": "i"}
        ]}}));
        assert_eq!(p.non_zero, (1100, 2 * DEFAULT_MEMORY_REQUEST));
        assert_eq!(p.requests.milli_cpu, 1000);
    }

    #[test]
    fn node_info_accounts_add_and_remove() {
        let mut n = named("n1");
        let p = pod_req("a", "1", "1Gi");
        n.add_pod(p.clone());
        n.add_pod(p.clone()); // idempotent
        assert_eq!(n.requested.milli_cpu, 1000);
        n.remove_pod(&p.key);
        assert_eq!(
            n.requested,
            Resources {
                scalar: BTreeMap::new(),
                ..Default::default()
            }
        );
        assert!(n.pods.is_empty());
    }

    #[test]
    fn fit_error_message_sorts_count_reason_strings() {
        let mut reasons = BTreeMap::new();
        reasons.insert("Insufficient cpu".to_string(), 2);
        reasons.insert("node(s) had untolerated taint {key: value}".to_string(), 1);
        let e = FitError {
            num_nodes: 3,
            reasons,
        };
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {key: value}, 2 Insufficient cpu."
        );
        let none = FitError {
            num_nodes: 0,
            reasons: BTreeMap::new(),
        };
        assert_eq!(none.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn select_best_breaks_ties_randomly() {
        let mut rng = rand::rng();
        let mut seen = [0; 3];
        for _ in 0..300 {
            seen[select_best(&[5, 7, 7], &mut rng)] += 1;
        }
        assert_eq!(seen[0], 0);
        assert!(seen[1] > 50 && seen[2] > 50, "{seen:?}");
    }

    #[test]
    fn host_port_conflicts() {
        let a = HostPort {
            protocol: "TCP".into(),
            ip: "".into(),
            port: 80,
        };
        let b = HostPort {
            protocol: "TCP".into(),
            ip: "10.0.0.1".into(),
            port: 80,
        };
        let c = HostPort {
            protocol: "UDP".into(),
            ip: "".into(),
            port: 80,
        };
        let d = HostPort {
            protocol: "TCP".into(),
            ip: "10.0.0.2".into(),
            port: 80,
        };
        assert!(a.conflicts(&b));
        assert!(!a.conflicts(&c));
        assert!(!b.conflicts(&d));
    }
}
