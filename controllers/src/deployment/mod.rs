//! The Deployment controller: one ReplicaSet per pod template (named and labelled with the
//! pod-template-hash), rolled over with RollingUpdate (maxSurge/maxUnavailable) or Recreate,
//! revision annotations, history cleanup, pause, progress deadline, and the status fields and
//! conditions `kubectl rollout status` reads.
//!
//! Split by concern as Kubernetes' deployment controller is: [`sync`] (claiming, scaling,
//! creating, cleanup, status writes), [`rolling`], [`recreate`], [`progress`] (status and
//! conditions), [`rollback`] (revisions) and [`template`] (hashing). This file only wires them:
//! the reconcile reads the shared stores, picks the strategy and writes the status.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::Controller;
use kube::ResourceExt;

use crate::context::Context;
use crate::expectations::{owner_key, Expectations};
use crate::informers::Informer;
use crate::reconcile::{self, ReconcileError};
use crate::registration::Registration;
use crate::util::{self, InvalidIntOrString, InvalidSelector};

pub mod progress;
pub mod recreate;
pub mod rollback;
pub mod rolling;
pub mod sync;
pub mod template;

pub use progress::compute_status;
pub use rollback::revision;
pub use rolling::{fenceposts, new_rs_replicas, scale_down_old, RsCounts};
pub use sync::history_to_delete;
pub use template::{pod_template_hash, safe_encode, templates_equal};

pub const NAME: &str = "deployment-controller";
pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

pub const REGISTRATION: Registration = Registration {
    name: "deployment",
    reporter: NAME,
    start,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Selector(#[from] InvalidSelector),
    #[error(transparent)]
    IntOrString(#[from] InvalidIntOrString),
    #[error("deployment has no spec")]
    NoSpec,
}

impl ReconcileError for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(e) if reconcile::is_conflict(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The controller's state: the shared stores it reads and the writes it waits to see there.
pub(crate) struct State {
    ctx: Arc<Context>,
    sets: Informer<ReplicaSet>,
    deployments: Informer<Deployment>,
    /// Writes to ReplicaSets, per Deployment.
    rs_writes: Expectations<ReplicaSet>,
    /// Writes to the Deployment itself (status, revision annotation).
    own_writes: Expectations<Deployment>,
}

async fn reconcile(d: Arc<Deployment>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    let now = util::now();
    let ns = d.namespace().unwrap_or_default();
    if util::is_deleting(&d.metadata) {
        return Ok(Action::await_change());
    }
    let key = owner_key(d.as_ref());
    if !state.rs_writes.satisfied(&key, &state.sets)
        || !state.own_writes.satisfied(&key, &state.deployments)
    {
        return Ok(reconcile::wait_for_store());
    }
    let spec = d.spec.clone().ok_or(Error::NoSpec)?;
    let selector = util::selector(Some(&spec.selector))?;
    let desired = spec.replicas.unwrap_or(1);
    let (_, max_unavailable) = fenceposts(&d)?;
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let paused = spec.paused == Some(true);

    let mut w = sync::Writes {
        state: &state,
        deployment: &d,
        key,
        sets: Api::namespaced(ctx.client.clone(), &ns),
        deployments: Api::namespaced(ctx.client.clone(), &ns),
        max_old_revision: 0,
    };
    let owned = w
        .claim(util::in_namespace(&state.sets.store(), &ns), &selector)
        .await?;
    let (mut new_rs, mut old) = split_new_and_old(owned, &spec.template);
    let found_new = new_rs.is_some();
    w.max_old_revision = rollback::max_revision(&old);
    let mut event = None;

    if !paused {
        sync::sync_revision(&w, new_rs.as_mut(), w.max_old_revision).await?;
        let outcome = if recreate {
            recreate::rollout(&w, &mut new_rs, found_new, &mut old).await?
        } else {
            rolling::rollout(&w, &mut new_rs, found_new, &mut old).await?
        };
        match outcome {
            sync::NewReplicaSet::Progress(e) => event = e,
            sync::NewReplicaSet::Requeue(after) => return Ok(Action::requeue(after)),
        }
    } else if let Some(rs) = new_rs.as_mut() {
        // Paused: no rollout, but a plain scale of a settled Deployment still applies.
        if old.iter().all(|r| sync::spec_replicas(r) == 0) && sync::spec_replicas(rs) != desired {
            w.scale(rs, desired).await?;
        }
    }

    let mut all: Vec<&ReplicaSet> = old.iter().collect();
    if let Some(rs) = new_rs.as_ref() {
        all.push(rs);
    }
    let status = compute_status(&d, new_rs.as_ref(), &all, max_unavailable, event, now);
    let complete = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
    if complete || paused {
        w.clean_up_history(&old).await?;
    }
    if let Some(rs) = new_rs.as_ref() {
        w.sync_revision_annotation(rs).await?;
    }
    w.write_status(&status).await?;
    ctx.metrics.reconcile(NAME, true);
    Ok(match progress::deadline_requeue(&d, &status, now) {
        Some(after) => Action::requeue(after),
        None => Action::requeue(Duration::from_secs(300)),
    })
}

/// The ReplicaSet whose template is the Deployment's (the new one), and the others (pure).
pub fn split_new_and_old(
    mut owned: Vec<ReplicaSet>,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
    let new_idx = owned.iter().position(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| templates_equal(t, template))
    });
    let new_rs = new_idx.map(|i| owned.remove(i));
    (new_rs, owned)
}

fn deployments_of_rs(rs: &ReplicaSet, store: &Store<Deployment>) -> Vec<ObjectRef<Deployment>> {
    util::interested_owners(&rs.metadata, "Deployment", store, |o| {
        o.spec.as_ref().map(|s| &s.selector)
    })
}

fn start(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let deployments = ctx.informers.get::<Deployment>();
    let sets = ctx.informers.get::<ReplicaSet>();
    let store = deployments.store();
    let metrics = ctx.metrics.clone();
    let state = Arc::new(State {
        ctx,
        sets: sets.clone(),
        deployments: deployments.clone(),
        rs_writes: Expectations::default(),
        own_writes: Expectations::default(),
    });
    let controller = Controller::for_stream(deployments.stream(), deployments.store())
        .watches_stream(sets.stream(), move |rs| deployments_of_rs(&rs, &store));
    reconcile::drain(controller.run(reconcile, reconcile::error_policy(NAME, metrics), state))
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::progress::condition;
    use super::template::{fnv32a, new_replica_set};
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::jiff::{SignedDuration, Timestamp};
    use serde_json::{json, Value};

    fn deploy(replicas: i32, surge: Value, unavailable: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 3},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "progressDeadlineSeconds": 600,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }))
        .unwrap()
    }

    fn counts(name: &str, replicas: i32, available: i32) -> RsCounts {
        RsCounts {
            name: name.into(),
            replicas,
            available,
        }
    }

    #[test]
    fn safe_encoding_uses_the_kubernetes_alphabet() {
        assert_eq!(safe_encode("0123"), "4567");
        let t: PodTemplateSpec =
            serde_json::from_value(json!({"metadata": {"labels": {"a": "b"}}})).unwrap();
        let h = pod_template_hash(&t, None);
        assert_eq!(h, pod_template_hash(&t, None));
        assert_ne!(h, pod_template_hash(&t, Some(1)));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert!(h.len() <= 10);
    }

    #[test]
    fn fnv32a_matches_reference_vectors() {
        assert_eq!(fnv32a(b"", 2166136261), 0x811c9dc5);
        assert_eq!(fnv32a(b"a", 2166136261), 0xe40c292c);
        assert_eq!(fnv32a(b"Hello world", 2166136261), 1498229191);
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let a: PodTemplateSpec =
            serde_json::from_value(json!({"metadata": {"labels": {"app": "x"}}})).unwrap();
        let b: PodTemplateSpec = serde_json::from_value(
            json!({"metadata": {"labels": {"app": "x", "pod-template-hash": "abc"}}}),
        )
        .unwrap();
        let c: PodTemplateSpec =
            serde_json::from_value(json!({"metadata": {"labels": {"app": "y"}}})).unwrap();
        assert!(templates_equal(&a, &b));
        assert!(!templates_equal(&a, &c));
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        assert_eq!(
            fenceposts(&deploy(10, json!("25%"), json!("25%"))).unwrap(),
            (3, 2)
        );
        assert_eq!(fenceposts(&deploy(3, json!(1), json!(0))).unwrap(), (1, 0));
        assert_eq!(fenceposts(&deploy(3, json!(0), json!(0))).unwrap(), (0, 1));
        assert_eq!(
            fenceposts(&deploy(1, json!("0%"), json!("10%"))).unwrap(),
            (0, 1)
        );
    }

    #[test]
    fn new_replica_set_grows_within_surge() {
        // 3 desired, surge 1: 3 old + 0 new → new may have 1.
        assert_eq!(new_rs_replicas(3, 1, 3, 0, true), 1);
        // Already at the maximum total: unchanged.
        assert_eq!(new_rs_replicas(3, 1, 4, 1, true), 1);
        // Old scaled down to 1: new may reach 3.
        assert_eq!(new_rs_replicas(3, 1, 3, 2, true), 3);
        // Nothing old: straight to desired (scale up or down).
        assert_eq!(new_rs_replicas(5, 1, 3, 3, false), 5);
        assert_eq!(new_rs_replicas(1, 1, 3, 3, false), 1);
    }

    #[test]
    fn old_replica_sets_shrink_keeping_minimum_available() {
        // 3 desired, maxUnavailable 0: new has 1 unavailable pod → nothing may go.
        assert!(
            scale_down_old(&[counts("old", 3, 3)], Some(&counts("new", 1, 0)), 3, 0).is_empty()
        );
        // The new pod became available → one old pod may go.
        assert_eq!(
            scale_down_old(&[counts("old", 3, 3)], Some(&counts("new", 1, 1)), 3, 0),
            vec![("old".into(), 2)]
        );
        // maxUnavailable 1, nothing new yet: one old pod may go at once.
        assert_eq!(
            scale_down_old(&[counts("old", 3, 3)], Some(&counts("new", 0, 0)), 3, 1),
            vec![("old".into(), 2)]
        );
        // Unhealthy old pods go first, regardless of availability.
        assert_eq!(
            scale_down_old(&[counts("old", 3, 1)], Some(&counts("new", 1, 1)), 3, 1),
            vec![("old".into(), 1)]
        );
        // Oldest first across several old sets.
        assert_eq!(
            scale_down_old(
                &[counts("a", 1, 1), counts("b", 2, 2)],
                Some(&counts("new", 3, 3)),
                3,
                0
            ),
            vec![("a".into(), 0), ("b".into(), 0)]
        );
    }

    #[test]
    fn status_sums_replica_sets_and_reports_progress() {
        let d = deploy(3, json!(1), json!(0));
        let mut new_rs = new_replica_set(&d, "abc", 3, 2, 1);
        new_rs.metadata.name = Some("web-abc".into());
        new_rs.status = Some(
            serde_json::from_value(
                json!({"replicas": 3, "readyReplicas": 3, "availableReplicas": 3}),
            )
            .unwrap(),
        );
        let now = Timestamp::now();
        let s = compute_status(&d, Some(&new_rs), &[&new_rs], 0, None, now);
        assert_eq!(
            (
                s.replicas,
                s.updated_replicas,
                s.available_replicas,
                s.unavailable_replicas
            ),
            (Some(3), Some(3), Some(3), Some(0))
        );
        assert_eq!(s.observed_generation, Some(3));
        let conds = s.conditions.unwrap();
        assert_eq!(conds[0].type_, "Available");
        assert_eq!(conds[0].status, "True");
        assert_eq!(conds[1].reason.as_deref(), Some("NewReplicaSetAvailable"));

        // Mid-rollout, stuck: 2 old pods available, 2 new ones wanted but not available.
        // Unavailable counts what the ReplicaSets want (4), as Kubernetes does.
        let mut old_rs = new_replica_set(&d, "old", 2, 1, 1);
        old_rs.status =
            Some(serde_json::from_value(json!({"replicas": 2, "availableReplicas": 2})).unwrap());
        let mut stuck = new_replica_set(&d, "new", 2, 2, 1);
        stuck.status = Some(serde_json::from_value(json!({"replicas": 2})).unwrap());
        let s = compute_status(&d, Some(&stuck), &[&old_rs, &stuck], 1, None, now);
        assert_eq!(
            (s.replicas, s.available_replicas, s.unavailable_replicas),
            (Some(4), Some(2), Some(2))
        );
    }

    #[test]
    fn stalled_rollouts_exceed_their_deadline() {
        let mut d = deploy(3, json!(1), json!(0));
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(5);
        let now = Timestamp::now();
        let earlier = now - SignedDuration::from_secs(10);
        let mut new_rs = new_replica_set(&d, "abc", 1, 2, 1);
        new_rs.status = Some(
            serde_json::from_value(
                json!({"replicas": 1, "readyReplicas": 0, "availableReplicas": 0}),
            )
            .unwrap(),
        );
        d.status = Some(DeploymentStatus {
            replicas: Some(4),
            updated_replicas: Some(1),
            available_replicas: Some(3),
            ready_replicas: Some(3),
            conditions: Some(vec![condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                "x".into(),
                earlier,
            )]),
            ..Default::default()
        });
        let mut old_rs = new_rs.clone();
        old_rs.status = Some(
            serde_json::from_value(
                json!({"replicas": 3, "readyReplicas": 3, "availableReplicas": 3}),
            )
            .unwrap(),
        );
        let s = compute_status(&d, Some(&new_rs), &[&old_rs, &new_rs], 0, None, now);
        let p = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Progressing")
            .unwrap();
        assert_eq!(
            (p.status.as_str(), p.reason.as_deref()),
            ("False", Some("ProgressDeadlineExceeded"))
        );
    }

    #[test]
    fn history_keeps_the_newest_empty_sets() {
        let d = deploy(1, json!(1), json!(0));
        let sets: Vec<ReplicaSet> = (1..=4)
            .map(|rev| {
                let mut rs = new_replica_set(&d, &format!("h{rev}"), 0, rev, 1);
                rs.metadata.name = Some(format!("rs{rev}"));
                rs
            })
            .collect();
        let refs: Vec<&ReplicaSet> = sets.iter().collect();
        assert_eq!(history_to_delete(&refs, 2), vec!["rs1", "rs2"]);
        assert!(history_to_delete(&refs, 10).is_empty());
    }
}
