//! Node lifecycle: a node whose Lease (in `kube-node-lease`) and status heartbeat are both
//! older than the grace period becomes Ready=Unknown and gets the `node.kubernetes.io/unreachable`
//! NoExecute taint (a node reporting Ready=False gets `node.kubernetes.io/not-ready`); pods on a
//! tainted node are marked not ready and evicted once their toleration runs out; a node that
//! reports Ready again loses the taint.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::json;
use skiff_component::EventKind;

use crate::context::Context;
use crate::expectations::{owner_key, Expectations};
use crate::informers::Informer;
use crate::registration::Registration;
use crate::util::{self, ignore_missing};

pub const NAME: &str = "node-lifecycle-controller";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

pub const REGISTRATION: Registration = Registration {
    name: "nodelifecycle",
    reporter: NAME,
    start,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The shared stores this controller reads, and the writes it waits to see there.
struct State {
    ctx: Arc<Context>,
    nodes: Informer<Node>,
    leases: Informer<Lease>,
    pods: Informer<Pod>,
    node_writes: Expectations<Node>,
    evictions: Expectations<Pod>,
}

/// What the controller should do to one node.
#[derive(Debug, Default, PartialEq)]
pub struct Assessment {
    /// The node stopped reporting: set its conditions to Unknown.
    pub mark_unknown: bool,
    /// The node's effective Ready status: "True", "False" or "Unknown".
    pub ready: String,
    /// The NoExecute taints it should carry (a subset of unreachable / not-ready).
    pub taints: Vec<Taint>,
    /// Whether the taints differ from what it has.
    pub taints_changed: bool,
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

pub fn assess(node: &Node, lease: Option<&Lease>, now: Timestamp, grace: Duration) -> Assessment {
    let ready = ready_condition(node);
    let last_seen = [
        lease.and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0)),
        ready.and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0)),
        node.metadata.creation_timestamp.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .max();
    let stale = last_seen.is_none_or(|t| {
        now.duration_since(t) > SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX)
    });
    let current = ready
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "Unknown".into());
    let effective = if stale {
        "Unknown".to_string()
    } else {
        current.clone()
    };
    let mut out = Assessment {
        mark_unknown: stale && current != "Unknown",
        ready: effective.clone(),
        ..Default::default()
    };
    let existing: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let wanted_key = match effective.as_str() {
        "False" => Some(NOT_READY),
        // A node that never reported and is still in its grace period is left alone above;
        // one that is stale or whose status says Unknown is unreachable.
        "Unknown" if stale || ready.is_some() => Some(UNREACHABLE),
        _ => None,
    };
    let mut taints: Vec<Taint> = existing
        .iter()
        .filter(|t| {
            !((t.key == UNREACHABLE || t.key == NOT_READY)
                && t.effect == "NoExecute"
                && Some(t.key.as_str()) != wanted_key)
        })
        .cloned()
        .collect();
    if let Some(key) = wanted_key {
        if !taints
            .iter()
            .any(|t| t.key == key && t.effect == "NoExecute")
        {
            taints.push(Taint {
                key: key.into(),
                effect: "NoExecute".into(),
                time_added: Some(Time(now)),
                value: None,
            });
        }
    }
    out.taints_changed = taints != existing;
    out.taints = taints;
    out
}

fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key_ok = match t.key.as_deref() {
        None | Some("") => t.operator.as_deref() == Some("Exists"),
        Some(k) => k == taint.key,
    };
    let value_ok = match t.operator.as_deref() {
        Some("Exists") => true,
        _ => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
    };
    effect_ok && key_ok && value_ok
}

/// When a pod on a node with these NoExecute taints must be evicted: `Some(0)` now, `Some(d)`
/// after `d`, `None` never (it tolerates them all indefinitely).
pub fn eviction_in(pod: &Pod, taints: &[Taint], now: Timestamp) -> Option<Duration> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut due: Option<Duration> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(Duration::ZERO);
        }
        if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            continue;
        }
        let secs = matching
            .iter()
            .filter_map(|t| t.toleration_seconds)
            .min()
            .unwrap_or(0)
            .max(0);
        let added = taint.time_added.as_ref().map(|t| t.0).unwrap_or(now);
        let at = added + SignedDuration::from_secs(secs);
        let left = util::until(at, now);
        due = Some(due.map_or(left, |d| d.min(left)));
    }
    due
}

async fn pass(state: &State) -> Result<()> {
    let ctx = &state.ctx;
    let now = util::now();
    let grace = ctx.config.node_monitor_grace_period;
    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    let leases: HashMap<String, Lease> = util::in_namespace(&state.leases.store(), LEASE_NAMESPACE)
        .into_iter()
        .map(|l| (l.name_any(), l))
        .collect();
    let mut pods: Option<Vec<Pod>> = None;
    for node in state.nodes.store().state() {
        let name = node.name_any();
        // Our last write to this node is not in the store yet: judge it next pass.
        if !state.node_writes.satisfied(&name, &state.nodes) {
            continue;
        }
        let a = assess(&node, leases.get(&name), now, grace);
        // The taint patch below is guarded by this; a status write first moves it on.
        let mut resource_version = node.resource_version();
        if a.mark_unknown {
            let mut conditions = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            for c in conditions.iter_mut() {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
            }
            if !conditions.iter().any(|c| c.type_ == "Ready") {
                conditions.push(NodeCondition {
                    type_: "Ready".into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_transition_time: Some(Time(now)),
                    last_heartbeat_time: None,
                });
            }
            let patch = json!({"status": {"conditions": conditions}});
            match nodes_api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(updated) => {
                    state.node_writes.wrote(&name, &updated);
                    resource_version = updated.resource_version()
                }
                r => ignore_missing(r)?,
            }
            ctx.recorder
                .publish_for(
                    node.as_ref(),
                    EventKind::Normal,
                    "NodeNotReady",
                    &format!("Node {name} status is now: NodeNotReady"),
                )
                .await;
        }
        if a.taints_changed {
            let patch = json!({"metadata": {"resourceVersion": resource_version}, "spec": {"taints": a.taints}});
            let patched = nodes_api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            if let Ok(updated) = &patched {
                state.node_writes.wrote(&name, updated);
            }
            ignore_missing(patched)?;
            if a.ready == "True" {
                ctx.recorder
                    .publish_for(
                        node.as_ref(),
                        EventKind::Normal,
                        "NodeReady",
                        &format!("Node {name} status is now: NodeReady"),
                    )
                    .await;
            }
        }
        let no_execute: Vec<Taint> = a
            .taints
            .iter()
            .filter(|t| t.key == UNREACHABLE || t.key == NOT_READY)
            .cloned()
            .collect();
        if no_execute.is_empty() {
            continue;
        }
        if pods.is_none() {
            pods = Some(
                state
                    .pods
                    .store()
                    .state()
                    .iter()
                    .map(|p| (**p).clone())
                    .collect(),
            );
        }
        for pod in pods
            .iter()
            .flatten()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()))
        {
            let key = owner_key(pod);
            if util::is_deleting(&pod.metadata) || !state.evictions.satisfied(&key, &state.pods) {
                continue;
            }
            let ns = pod.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            if eviction_in(pod, &no_execute, now) == Some(Duration::ZERO) {
                tracing::info!(pod = %pod.name_any(), node = %name, "evicting pod from unready node");
                state.evictions.deleted(&key, pod);
                ignore_missing(
                    api.delete(&pod.name_any(), &DeleteParams::default())
                        .await
                        .map(|_| ()),
                )?;
                ctx.recorder
                    .publish_for(
                        pod,
                        EventKind::Normal,
                        "TaintManagerEviction",
                        &format!("Marking for deletion Pod {ns}/{}", pod.name_any()),
                    )
                    .await;
            } else if util::pod_is_ready(pod) {
                let mut conditions = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.clone())
                    .unwrap_or_default();
                for c in conditions.iter_mut().filter(|c| c.type_ == "Ready") {
                    c.status = "False".into();
                    c.last_transition_time = Some(Time(now));
                }
                let patch = json!({"status": {"conditions": conditions}});
                let patched = api
                    .patch_status(
                        &pod.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await;
                if let Ok(p) = &patched {
                    state.evictions.wrote(&key, p);
                }
                ignore_missing(patched)?;
            }
        }
    }
    Ok(())
}

fn start(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let state = State {
        nodes: ctx.informers.get::<Node>(),
        leases: ctx.informers.get::<Lease>(),
        pods: ctx.informers.get::<Pod>(),
        node_writes: Expectations::default(),
        evictions: Expectations::default(),
        ctx,
    };
    run(state).boxed()
}

/// A pass over every node each monitor period (node health is a matter of time passing, not of
/// events).
async fn run(state: State) {
    let ctx = state.ctx.clone();
    loop {
        match pass(&state).await {
            Ok(()) => ctx.metrics.reconcile(NAME, true),
            Err(e) => {
                ctx.metrics.reconcile(NAME, false);
                tracing::warn!(error = %e, "node lifecycle pass failed");
            }
        }
        tokio::time::sleep(ctx.config.node_monitor_period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(ready: &str, heartbeat_ago: i64, taints: serde_json::Value) -> Node {
        let hb = Timestamp::now() - SignedDuration::from_secs(heartbeat_ago);
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "creationTimestamp": (Timestamp::now() - SignedDuration::from_secs(3600)).to_string()},
            "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": hb.to_string()}]}
        }))
        .unwrap()
    }

    fn lease(renewed_ago: i64) -> Lease {
        serde_json::from_value(json!({"metadata": {"name": "n1"}, "spec": {"renewTime": (Timestamp::now() - SignedDuration::from_secs(renewed_ago)).to_string()}})).unwrap()
    }

    #[test]
    fn silent_nodes_become_unknown_and_unreachable() {
        let grace = Duration::from_secs(40);
        let a = assess(
            &node("True", 100, json!([])),
            Some(&lease(100)),
            Timestamp::now(),
            grace,
        );
        assert!(a.mark_unknown);
        assert_eq!(a.taints[0].key, UNREACHABLE);
        assert!(a.taints_changed);
        // A fresh lease keeps the node healthy even with an old status heartbeat.
        let b = assess(
            &node("True", 100, json!([])),
            Some(&lease(1)),
            Timestamp::now(),
            grace,
        );
        assert!(!b.mark_unknown);
        assert!(b.taints.is_empty());
        assert!(!b.taints_changed);
    }

    #[test]
    fn nodes_that_come_back_are_untainted_and_others_keep_their_taints() {
        let taints = json!([{"key": UNREACHABLE, "effect": "NoExecute"}, {"key": "dedicated", "value": "x", "effect": "NoSchedule"}]);
        let a = assess(
            &node("True", 1, taints),
            Some(&lease(1)),
            Timestamp::now(),
            Duration::from_secs(40),
        );
        assert!(a.taints_changed);
        assert_eq!(
            a.taints.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
            ["dedicated"]
        );
        let b = assess(
            &node("False", 1, json!([])),
            None,
            Timestamp::now(),
            Duration::from_secs(40),
        );
        assert_eq!(b.taints[0].key, NOT_READY);
    }

    #[test]
    fn eviction_follows_toleration_seconds() {
        let now = Timestamp::now();
        let taint = Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(now - SignedDuration::from_secs(10))),
            value: None,
        };
        let pod = |tols: serde_json::Value| -> Pod {
            serde_json::from_value(
                json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": tols}}),
            )
            .unwrap()
        };
        assert_eq!(
            eviction_in(&pod(json!([])), std::slice::from_ref(&taint), now),
            Some(Duration::ZERO)
        );
        let t300 = pod(
            json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
        );
        assert_eq!(
            eviction_in(&t300, std::slice::from_ref(&taint), now),
            Some(Duration::from_secs(290))
        );
        let t5 = pod(
            json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]),
        );
        assert_eq!(
            eviction_in(&t5, std::slice::from_ref(&taint), now),
            Some(Duration::ZERO)
        );
        let forever = pod(json!([{"operator": "Exists"}]));
        assert_eq!(eviction_in(&forever, &[taint], now), None);
    }
}
