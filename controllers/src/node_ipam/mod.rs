//! Node IPAM: gives every Node a distinct `spec.podCIDR` carved from the cluster CIDR.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::runtime::Controller;
use kube::ResourceExt;
use serde_json::json;
use skiff_component::EventKind;
use tokio::sync::Mutex;

use crate::context::Context;
use crate::reconcile::{self, ReconcileError};
use crate::registration::Registration;

pub const NAME: &str = "node-ipam-controller";

pub const REGISTRATION: Registration = Registration {
    name: "nodeipam",
    reporter: NAME,
    start,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("no free /{mask} left in {cluster}")]
    Exhausted { mask: u8, cluster: Ipv4Net },
}

impl ReconcileError for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(e) if reconcile::is_conflict(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The first block of `mask` bits in `cluster` that no node uses.
pub fn next_free(cluster: Ipv4Net, mask: u8, used: &BTreeSet<Ipv4Net>) -> Option<Ipv4Net> {
    let mut subnets = cluster.subnets(mask).ok()?;
    subnets.find(|s| !used.iter().any(|u| u.contains(s) || s.contains(u)))
}

fn pod_cidr(node: &Node) -> Option<&str> {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .filter(|c| !c.is_empty())
}

/// The blocks in use: those the store shows, and those we assigned that it does not show yet
/// (pure; `in_flight` is by node uid).
pub fn used_blocks<'a>(
    nodes: impl Iterator<Item = &'a Node>,
    in_flight: &HashMap<String, Ipv4Net>,
) -> BTreeSet<Ipv4Net> {
    nodes
        .filter_map(|n| pod_cidr(n)?.parse().ok())
        .chain(in_flight.values().copied())
        .collect()
}

struct Ipam {
    ctx: Arc<Context>,
    nodes: Store<Node>,
    cluster: Ipv4Net,
    mask: u8,
    /// Blocks assigned but not yet seen in the store, by node uid. Allocation is serialized
    /// through this lock so two nodes never get the same block.
    in_flight: Mutex<HashMap<String, Ipv4Net>>,
}

async fn reconcile(node: Arc<Node>, ipam: Arc<Ipam>) -> Result<Action> {
    let ctx = &ipam.ctx;
    if pod_cidr(&node).is_some() {
        return Ok(Action::await_change());
    }
    let mut in_flight = ipam.in_flight.lock().await;
    let nodes = ipam.nodes.state();
    // Forget assignments the store now shows.
    in_flight.retain(|uid, _| {
        !nodes
            .iter()
            .any(|n| n.uid().as_deref() == Some(uid.as_str()) && pod_cidr(n).is_some())
    });
    let uid = node.uid().unwrap_or_default();
    let assigned = nodes
        .iter()
        .any(|n| n.uid().as_deref() == Some(uid.as_str()) && pod_cidr(n).is_some());
    if assigned || in_flight.contains_key(&uid) {
        return Ok(Action::await_change());
    }
    let used = used_blocks(nodes.iter().map(|n| n.as_ref()), &in_flight);
    let Some(cidr) = next_free(ipam.cluster, ipam.mask, &used) else {
        ctx.recorder
            .publish_for(
                node.as_ref(),
                EventKind::Warning,
                "CIDRNotAvailable",
                &format!(
                    "Node {} has no CIDR available in {}",
                    node.name_any(),
                    ipam.cluster
                ),
            )
            .await;
        return Err(Error::Exhausted {
            mask: ipam.mask,
            cluster: ipam.cluster,
        });
    };
    let api: Api<Node> = Api::all(ctx.client.clone());
    let patch = json!({"metadata": {"resourceVersion": node.resource_version()}, "spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
    api.patch(
        &node.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    in_flight.insert(uid, cidr);
    drop(in_flight);
    ctx.recorder
        .publish_for(
            node.as_ref(),
            EventKind::Normal,
            "CIDRAssignmentSucceeded",
            &format!("Node {} got podCIDR {cidr}", node.name_any()),
        )
        .await;
    ctx.metrics.reconcile(NAME, true);
    Ok(Action::await_change())
}

fn start(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    // Without a cluster CIDR the nodes bring their own podCIDRs.
    let Some(cluster) = ctx.config.cluster_cidr else {
        return futures::future::pending().boxed();
    };
    let nodes = ctx.informers.get::<Node>();
    let metrics = ctx.metrics.clone();
    let ipam = Arc::new(Ipam {
        mask: ctx.config.node_cidr_mask_size,
        ctx,
        nodes: nodes.store(),
        cluster,
        in_flight: Mutex::default(),
    });
    let controller = Controller::for_stream(nodes.stream(), nodes.store());
    reconcile::drain(controller.run(reconcile, reconcile::error_policy(NAME, metrics), ipam))
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_handed_out_in_order_skipping_used_ones() {
        let cluster: Ipv4Net = "10.244.0.0/16".parse().unwrap();
        let mut used = BTreeSet::new();
        let first = next_free(cluster, 24, &used).unwrap();
        assert_eq!(first.to_string(), "10.244.0.0/24");
        used.insert(first);
        used.insert("10.244.2.0/24".parse().unwrap());
        assert_eq!(
            next_free(cluster, 24, &used).unwrap().to_string(),
            "10.244.1.0/24"
        );
        used.insert("10.244.1.0/24".parse().unwrap());
        assert_eq!(
            next_free(cluster, 24, &used).unwrap().to_string(),
            "10.244.3.0/24"
        );
        let tiny: Ipv4Net = "10.0.0.0/24".parse().unwrap();
        let full = BTreeSet::from([tiny]);
        assert_eq!(next_free(tiny, 24, &full), None);
    }

    #[test]
    fn blocks_in_flight_count_as_used() {
        let node: Node = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"podCIDR": "10.244.0.0/24"}}),
        )
        .unwrap();
        let in_flight = HashMap::from([("b".to_string(), "10.244.1.0/24".parse().unwrap())]);
        let used = used_blocks([&node].into_iter(), &in_flight);
        assert_eq!(used.len(), 2);
    }
}
