//! The garbage collector: deletes objects whose owners are all gone (background cascading),
//! finishes foreground deletions (deletes the dependents of an owner that carries the
//! `foregroundDeletion` finalizer, then removes the finalizer once no blocking dependent is
//! left) and orphan deletions (removes the owner's references from its dependents, then the
//! `orphan` finalizer).
//!
//! It works on a fixed table of the kinds the skiff apiserver serves, as dynamic objects kept
//! in reflector stores (one watch per kind). Every scan is a full pass over those stores,
//! triggered by any watch event (coalesced) and by a periodic resync. Because stores lag, every
//! destructive step is confirmed against the apiserver first, as Kubernetes' garbage collector
//! does: before deleting an object because its owner looks gone, the owner is looked up again
//! by name; before a finalizer comes off, a fresh LIST of every kind must agree.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams,
    PropagationPolicy,
};
use kube::core::GroupVersionKind;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;
use tokio::sync::Notify;

use crate::context::Context;
use crate::registration::Registration;

pub const NAME: &str = "garbage-collector";

pub const REGISTRATION: Registration = Registration {
    name: "garbagecollector",
    reporter: NAME,
    start,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// (group, version, kind, plural, namespaced) of every kind that can own or be owned.
pub const KINDS: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "Pod", "pods", true),
    ("", "v1", "Service", "services", true),
    ("", "v1", "Endpoints", "endpoints", true),
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "Secret", "secrets", true),
    ("", "v1", "Node", "nodes", false),
    ("apps", "v1", "Deployment", "deployments", true),
    ("apps", "v1", "ReplicaSet", "replicasets", true),
    ("batch", "v1", "Job", "jobs", true),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
    ),
    ("coordination.k8s.io", "v1", "Lease", "leases", true),
];

pub fn api_resource(i: usize) -> ApiResource {
    let (g, v, k, p, _) = KINDS[i];
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), p)
}

fn kind_index(api_version: &str, kind: &str) -> Option<usize> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    KINDS
        .iter()
        .position(|(g, v, k, _, _)| *g == group && *v == version && *k == kind)
}

/// One object as the collector sees it.
#[derive(Clone, Debug)]
pub struct Node {
    pub kind: usize,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub owners: Vec<(usize, String, String, bool)>, // (kind, name, uid, blockOwnerDeletion)
    pub deleting: bool,
    pub finalizers: Vec<String>,
    pub resource_version: Option<String>,
}

impl Node {
    pub fn from_object(kind: usize, obj: &DynamicObject) -> Node {
        let m = &obj.metadata;
        Node {
            kind,
            namespace: m.namespace.clone(),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            owners: m
                .owner_references
                .iter()
                .flatten()
                .map(|r| {
                    (
                        kind_index(&r.api_version, &r.kind).unwrap_or(usize::MAX),
                        r.name.clone(),
                        r.uid.clone(),
                        r.block_owner_deletion == Some(true),
                    )
                })
                .collect(),
            deleting: m.deletion_timestamp.is_some(),
            finalizers: m.finalizers.clone().unwrap_or_default(),
            resource_version: m.resource_version.clone(),
        }
    }
}

/// What one pass should do.
#[derive(Debug, Default, PartialEq)]
pub struct Actions {
    /// Objects whose owners all look gone (to be confirmed by a live lookup): delete, background.
    pub delete_orphaned: Vec<usize>,
    /// Dependents of foreground-deleting owners: delete, foreground.
    pub delete_foreground: Vec<usize>,
    /// (dependent, owner uids to drop from its ownerReferences).
    pub drop_owner_refs: Vec<(usize, Vec<String>)>,
    /// (object, finalizer) to remove.
    pub remove_finalizer: Vec<(usize, &'static str)>,
}

/// The pure pass over a snapshot of every object.
pub fn plan(objects: &[Node]) -> Actions {
    let uids: HashMap<&str, usize> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| (o.uid.as_str(), i))
        .collect();
    let mut dependents: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, o) in objects.iter().enumerate() {
        for (_, _, uid, _) in &o.owners {
            dependents.entry(uid.as_str()).or_default().push(i);
        }
    }
    let mut out = Actions::default();
    let mut orphaning: HashMap<usize, Vec<String>> = HashMap::new();
    let mut fg: BTreeSet<usize> = BTreeSet::new();
    for (i, o) in objects.iter().enumerate() {
        let deps = dependents.get(o.uid.as_str()).cloned().unwrap_or_default();
        if o.deleting && o.finalizers.iter().any(|f| f == ORPHAN) {
            for &d in &deps {
                orphaning.entry(d).or_default().push(o.uid.clone());
            }
            out.remove_finalizer.push((i, ORPHAN));
        } else if o.deleting && o.finalizers.iter().any(|f| f == FOREGROUND) {
            for &d in &deps {
                if !objects[d].deleting {
                    fg.insert(d);
                }
            }
            let blocking = deps.iter().any(|&d| {
                objects[d]
                    .owners
                    .iter()
                    .any(|(_, _, uid, block)| *uid == o.uid && *block)
            });
            if !blocking {
                out.remove_finalizer.push((i, FOREGROUND));
            }
        }
        if !o.deleting && !o.owners.is_empty() && !fg.contains(&i) {
            let missing: Vec<String> = o
                .owners
                .iter()
                .filter(|(kind, _, uid, _)| *kind != usize::MAX && !uids.contains_key(uid.as_str()))
                .map(|(_, _, uid, _)| uid.clone())
                .collect();
            if missing.len() == o.owners.len() {
                out.delete_orphaned.push(i);
            } else if !missing.is_empty() {
                orphaning.entry(i).or_default().extend(missing);
            }
        }
    }
    // A dependent found before its foreground owner was scanned may also be listed as orphaned.
    out.delete_orphaned.retain(|i| !fg.contains(i));
    out.delete_foreground = fg.into_iter().collect();
    let mut drops: Vec<(usize, Vec<String>)> = orphaning.into_iter().collect();
    drops.sort();
    out.drop_owner_refs = drops;
    out
}

fn api_for(ctx: &Context, kind: usize, namespace: Option<&str>) -> Api<DynamicObject> {
    let ar = api_resource(kind);
    match (KINDS[kind].4, namespace) {
        (true, Some(ns)) => Api::namespaced_with(ctx.client.clone(), ns, &ar),
        _ => Api::all_with(ctx.client.clone(), &ar),
    }
}

/// Is the owner really gone? (Or replaced by a new object of the same name.)
async fn owner_gone(ctx: &Context, dependent: &Node) -> Result<bool> {
    for (kind, name, uid, _) in &dependent.owners {
        if *kind == usize::MAX {
            return Ok(false);
        }
        let ns = if KINDS[*kind].4 {
            dependent.namespace.as_deref()
        } else {
            None
        };
        let found = api_for(ctx, *kind, ns).get_opt(name).await?;
        if found.is_some_and(|o| o.metadata.uid.as_deref() == Some(uid.as_str())) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Every object of every kind, as the stores show them.
fn snapshot_of(stores: &[Store<DynamicObject>]) -> Vec<Node> {
    stores
        .iter()
        .enumerate()
        .flat_map(|(kind, store)| {
            store
                .state()
                .into_iter()
                .map(move |obj| Node::from_object(kind, &obj))
        })
        .collect()
}

/// Every object of every kind, listed from the apiserver now (to confirm a finalizer removal).
async fn fresh_snapshot(ctx: &Context) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    for kind in 0..KINDS.len() {
        let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &api_resource(kind));
        for obj in api.list(&ListParams::default()).await?.items {
            nodes.push(Node::from_object(kind, &obj));
        }
    }
    Ok(nodes)
}

/// Whether a finalizer may really come off: the lists of one snapshot are not taken at one
/// instant, so a dependent created between two of them may be missing. A second snapshot,
/// taken entirely after the owner was seen being deleted, must agree.
fn confirmed(fresh: &[Node], uid: &str, finalizer: &str) -> bool {
    let again = plan(fresh);
    let removes = again
        .remove_finalizer
        .iter()
        .any(|(i, f)| fresh[*i].uid == uid && *f == finalizer);
    let drops = again
        .drop_owner_refs
        .iter()
        .any(|(_, uids)| uids.iter().any(|u| u == uid));
    removes && !drops
}

/// One pass; returns whether another pass is needed at once.
async fn scan(ctx: &Context, stores: &[Store<DynamicObject>]) -> Result<bool> {
    let nodes = snapshot_of(stores);
    let actions = plan(&nodes);
    let mut again = false;
    let ok_missing = |r: std::result::Result<(), kube::Error>| match r {
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        other => other,
    };
    for &i in &actions.delete_orphaned {
        let n = &nodes[i];
        if owner_gone(ctx, n).await? {
            tracing::info!(kind = KINDS[n.kind].2, name = %n.name, "deleting object whose owners are gone");
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(n.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            ok_missing(
                api_for(ctx, n.kind, n.namespace.as_deref())
                    .delete(&n.name, &dp)
                    .await
                    .map(|_| ()),
            )?;
        }
    }
    for &i in &actions.delete_foreground {
        let n = &nodes[i];
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..Default::default()
        };
        ok_missing(
            api_for(ctx, n.kind, n.namespace.as_deref())
                .delete(&n.name, &dp)
                .await
                .map(|_| ()),
        )?;
    }
    for (i, drop) in &actions.drop_owner_refs {
        let n = &nodes[*i];
        let api = api_for(ctx, n.kind, n.namespace.as_deref());
        let Some(current) = api.get_opt(&n.name).await? else {
            continue;
        };
        let refs: Vec<_> = current
            .metadata
            .owner_references
            .iter()
            .flatten()
            .filter(|r| !drop.contains(&r.uid))
            .cloned()
            .collect();
        let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": current.metadata.resource_version}});
        ok_missing(
            api.patch(&n.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ()),
        )?;
    }
    let mut fresh: Option<Vec<Node>> = None;
    for (i, finalizer) in &actions.remove_finalizer {
        let n = &nodes[*i];
        if fresh.is_none() {
            fresh = Some(fresh_snapshot(ctx).await?);
        }
        if !confirmed(fresh.as_deref().unwrap_or_default(), &n.uid, finalizer) {
            again = true;
            continue;
        }
        // Orphaning finished above (an error would have returned), so the owner may go.
        let rest: Vec<&String> = n
            .finalizers
            .iter()
            .filter(|f| f.as_str() != *finalizer)
            .collect();
        let patch =
            json!({"metadata": {"finalizers": rest, "resourceVersion": n.resource_version}});
        let api = api_for(ctx, n.kind, n.namespace.as_deref());
        ok_missing(
            api.patch(&n.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ()),
        )?;
    }
    Ok(again)
}

fn start(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    run(ctx).boxed()
}

async fn run(ctx: Arc<Context>) {
    let notify = Arc::new(Notify::new());
    // Owned here, so the watches end when this controller is stopped (dropped).
    let mut watches = tokio::task::JoinSet::new();
    let mut stores = Vec::new();
    for kind in 0..KINDS.len() {
        let ar = api_resource(kind);
        let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ar);
        let writer = reflector::store::Writer::new(ar);
        stores.push(writer.as_reader());
        let notify = notify.clone();
        watches.spawn(async move {
            // With back-off: without it a failing watch (apiserver down) is retried in a busy
            // loop.
            let mut stream =
                reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
                    .default_backoff()
                    .boxed();
            while let Some(ev) = stream.next().await {
                if ev.is_ok() {
                    notify.notify_one();
                }
            }
        });
    }
    // Judge only complete stores.
    for store in &stores {
        let _ = store.wait_until_ready().await;
    }
    loop {
        match scan(&ctx, &stores).await {
            Ok(true) => {
                ctx.metrics.reconcile(NAME, true);
                continue;
            }
            Ok(false) => ctx.metrics.reconcile(NAME, true),
            Err(e) => {
                ctx.metrics.reconcile(NAME, false);
                tracing::warn!(error = %e, "garbage collection pass failed");
            }
        }
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(ctx.config.gc_resync_period) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, owners: &[(&str, bool)], deleting: bool, finalizers: &[&str]) -> Node {
        Node {
            kind: 0,
            namespace: Some("default".into()),
            name: name.into(),
            uid: format!("uid-{name}"),
            owners: owners
                .iter()
                .map(|(o, b)| (7, o.to_string(), format!("uid-{o}"), *b))
                .collect(),
            deleting,
            finalizers: finalizers.iter().map(|s| s.to_string()).collect(),
            resource_version: None,
        }
    }

    #[test]
    fn dependents_of_missing_owners_are_deleted() {
        let objs = vec![
            node("rs", &[], false, &[]),
            node("a", &[("rs", true)], false, &[]),
            node("b", &[("gone", true)], false, &[]),
        ];
        let a = plan(&objs);
        assert_eq!(a.delete_orphaned, vec![2]);
        assert!(a.remove_finalizer.is_empty());
    }

    #[test]
    fn a_dangling_reference_beside_a_live_owner_is_dropped() {
        let objs = vec![
            node("rs", &[], false, &[]),
            node("a", &[("rs", true), ("gone", false)], false, &[]),
        ];
        let a = plan(&objs);
        assert!(a.delete_orphaned.is_empty());
        assert_eq!(a.drop_owner_refs, vec![(1, vec!["uid-gone".to_string()])]);
    }

    #[test]
    fn foreground_waits_for_blocking_dependents() {
        let objs = vec![
            node("rs", &[], true, &[FOREGROUND]),
            node("a", &[("rs", true)], false, &[]),
        ];
        let a = plan(&objs);
        assert_eq!(a.delete_foreground, vec![1]);
        assert!(a.remove_finalizer.is_empty());
        let done = plan(&[node("rs", &[], true, &[FOREGROUND])]);
        assert_eq!(done.remove_finalizer, vec![(0, FOREGROUND)]);
    }

    #[test]
    fn finalizers_come_off_only_when_a_fresh_snapshot_agrees() {
        let owner = node("rs", &[], true, &[ORPHAN]);
        assert!(confirmed(std::slice::from_ref(&owner), "uid-rs", ORPHAN));
        let late_dependent = node("a", &[("rs", true)], false, &[]);
        assert!(!confirmed(&[owner, late_dependent], "uid-rs", ORPHAN));
    }

    #[test]
    fn orphaning_drops_references_then_the_finalizer() {
        let objs = vec![
            node("rs", &[], true, &[ORPHAN]),
            node("a", &[("rs", true)], false, &[]),
        ];
        let a = plan(&objs);
        assert_eq!(a.drop_owner_refs, vec![(1, vec!["uid-rs".to_string()])]);
        assert_eq!(a.remove_finalizer, vec![(0, ORPHAN)]);
        assert!(a.delete_orphaned.is_empty());
    }
}
