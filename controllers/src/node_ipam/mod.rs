//! Node IPAM: gives every Node a distinct `spec.podCIDR` carved from the cluster CIDR.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller};
use kube::ResourceExt;
use serde_json::json;
use tokio::sync::Mutex;

use crate::events::EventType;
use crate::util::{self, Context, Error, Result};

pub const NAME: &str = "node-ipam-controller";

/// The first block of `mask` bits in `cluster` that no node uses.
pub fn next_free(cluster: Ipv4Net, mask: u8, used: &BTreeSet<Ipv4Net>) -> Option<Ipv4Net> {
    let mut subnets = cluster.subnets(mask).ok()?;
    subnets.find(|s| !used.iter().any(|u| u.contains(s) || s.contains(u)))
}

struct Ipam {
    cluster: Ipv4Net,
    mask: u8,
    /// Allocation is serialized so two nodes never get the same block.
    lock: Mutex<()>,
}

async fn reconcile(node: Arc<Node>, ctx: Arc<(Arc<Context>, Ipam)>) -> Result<Action> {
    let (ctx, ipam) = (&ctx.0, &ctx.1);
    if node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .is_some_and(|c| !c.is_empty())
    {
        return Ok(Action::await_change());
    }
    let _guard = ipam.lock.lock().await;
    let api: Api<Node> = Api::all(ctx.client.clone());
    let nodes = api.list(&ListParams::default()).await?.items;
    if let Some(current) = nodes.iter().find(|n| n.uid() == node.uid()) {
        if current
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .is_some_and(|c| !c.is_empty())
        {
            return Ok(Action::await_change());
        }
    }
    let used: BTreeSet<Ipv4Net> = nodes
        .iter()
        .filter_map(|n| n.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok())
        .collect();
    let Some(cidr) = next_free(ipam.cluster, ipam.mask, &used) else {
        ctx.recorder.publish(
            node.as_ref(),
            EventType::Warning,
            "CIDRNotAvailable",
            format!(
                "Node {} has no CIDR available in {}",
                node.name_any(),
                ipam.cluster
            ),
        );
        return Err(Error::Invalid(format!(
            "no free /{} left in {}",
            ipam.mask, ipam.cluster
        )));
    };
    let patch = json!({"metadata": {"resourceVersion": node.resource_version()}, "spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
    api.patch(
        &node.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    ctx.recorder.publish(
        node.as_ref(),
        EventType::Normal,
        "CIDRAssignmentSucceeded",
        format!("Node {} got podCIDR {cidr}", node.name_any()),
    );
    ctx.metrics.reconcile(NAME, true);
    Ok(Action::await_change())
}

pub async fn run(ctx: Arc<Context>, cluster: Ipv4Net, mask: u8) {
    let ipam = Ipam {
        cluster,
        mask,
        lock: Mutex::new(()),
    };
    Controller::new(
        Api::<Node>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .run(
        reconcile,
        |_n, e, c: Arc<(Arc<Context>, Ipam)>| util::error_policy(NAME)(_n, e, c.0.clone()),
        Arc::new((ctx, ipam)),
    )
    .for_each(|_| futures::future::ready(()))
    .await;
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
}
