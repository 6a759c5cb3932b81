//! Sync: the writes every strategy shares. Claiming ReplicaSets (adopt orphans, release those
//! that stopped matching), scaling, creating the new ReplicaSet (with hash-collision handling),
//! history cleanup, the revision annotation and the status (Kubernetes' sync.go). Every write
//! is noted as an expectation, so the next reconcile waits until the stores show it.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use skiff_common::LabelSelector;
use skiff_component::EventKind;

use super::rollback::{revision, revision_bump};
use super::template::{new_replica_set, pod_template_hash, templates_equal};
use super::{Result, State, REVISION};
use crate::util::{self, ignore_missing};

pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// What reconciling the new ReplicaSet came to.
pub(super) enum NewReplicaSet {
    /// Done; the Progressing reason and message to report, if anything happened.
    Progress(Option<(&'static str, String)>),
    /// Look again after this (a hash collision was recorded).
    Requeue(std::time::Duration),
}

/// The API handles of one reconcile, writing on behalf of one Deployment.
pub(super) struct Writes<'a> {
    pub state: &'a State,
    pub deployment: &'a Deployment,
    /// The Deployment's expectations key.
    pub key: String,
    pub sets: Api<ReplicaSet>,
    pub deployments: Api<Deployment>,
    /// The newest revision among the old ReplicaSets (a new one gets the next).
    pub max_old_revision: i64,
}

/// What claiming decides for one ReplicaSet (pure).
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    Owned,
    Adopt,
    Release,
    Ignore,
}

pub fn claim_of(rs: &ReplicaSet, owner_uid: &str, selector: &LabelSelector) -> Claim {
    let matches = selector.matches(&util::labels(&rs.metadata));
    match util::controller_ref(&rs.metadata) {
        Some(r) if r.uid == owner_uid => {
            if matches {
                Claim::Owned
            } else {
                Claim::Release
            }
        }
        None if matches && !util::is_deleting(&rs.metadata) => Claim::Adopt,
        _ => Claim::Ignore,
    }
}

impl Writes<'_> {
    pub async fn patch_replica_set(&self, name: &str, patch: &Value) -> Result<ReplicaSet> {
        let rs = self
            .sets
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        self.state.rs_writes.wrote(&self.key, &rs);
        Ok(rs)
    }

    async fn publish(&self, reason: &str, message: &str) {
        self.state
            .ctx
            .recorder
            .publish_for(self.deployment, EventKind::Normal, reason, message)
            .await;
    }

    /// Our ReplicaSets among `candidates` (the namespace's), oldest first, adopting matching
    /// orphans and releasing those that stopped matching.
    pub async fn claim(
        &self,
        candidates: Vec<ReplicaSet>,
        selector: &LabelSelector,
    ) -> Result<Vec<ReplicaSet>> {
        let d = self.deployment;
        let uid = d.uid().unwrap_or_default();
        let mut owned = Vec::new();
        for rs in candidates {
            match claim_of(&rs, &uid, selector) {
                Claim::Owned => owned.push(rs),
                Claim::Release => {
                    let refs: Vec<_> = rs
                        .owner_references()
                        .iter()
                        .filter(|r| r.uid != uid)
                        .cloned()
                        .collect();
                    let patch = json!({"metadata": {"ownerReferences": refs}});
                    match self.patch_replica_set(&rs.name_any(), &patch).await {
                        Err(super::Error::Kube(kube::Error::Api(s))) if s.code == 404 => {}
                        r => {
                            r?;
                        }
                    }
                }
                Claim::Adopt => {
                    let mut refs = rs.owner_references().to_vec();
                    refs.push(util::owner_ref(d));
                    let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.resource_version()}});
                    owned.push(self.patch_replica_set(&rs.name_any(), &patch).await?);
                }
                Claim::Ignore => {}
            }
        }
        owned.sort_by_key(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0));
        Ok(owned)
    }

    pub async fn scale(&self, rs: &mut ReplicaSet, replicas: i32) -> Result<()> {
        let from = spec_replicas(rs);
        let patch = json!({"spec": {"replicas": replicas}});
        *rs = self.patch_replica_set(&rs.name_any(), &patch).await?;
        let verb = if replicas > from { "up" } else { "down" };
        self.publish(
            "ScalingReplicaSet",
            &format!(
                "Scaled {verb} replica set {} from {from} to {replicas}",
                rs.name_any()
            ),
        )
        .await;
        Ok(())
    }

    /// Bring the new ReplicaSet to `target` replicas, creating it when it does not exist and
    /// `may_create`.
    pub async fn sync_new_replica_set(
        &self,
        new_rs: &mut Option<ReplicaSet>,
        found_existing: bool,
        target: i32,
        may_create: bool,
        max_surge: i32,
    ) -> Result<NewReplicaSet> {
        let d = self.deployment;
        let Some(rs) = new_rs.as_mut() else {
            if !may_create {
                return Ok(NewReplicaSet::Progress(None));
            }
            return self.create_new_replica_set(new_rs, target, max_surge).await;
        };
        if spec_replicas(rs) != target {
            self.scale(rs, target).await?;
            return Ok(NewReplicaSet::Progress(Some((
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{}\" is progressing.", rs.name_any()),
            ))));
        }
        if found_existing
            && d.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_none()
        {
            return Ok(NewReplicaSet::Progress(Some((
                "FoundNewReplicaSet",
                format!("Found new replica set \"{}\"", rs.name_any()),
            ))));
        }
        Ok(NewReplicaSet::Progress(None))
    }

    async fn create_new_replica_set(
        &self,
        new_rs: &mut Option<ReplicaSet>,
        target: i32,
        max_surge: i32,
    ) -> Result<NewReplicaSet> {
        let d = self.deployment;
        let uid = d.uid().unwrap_or_default();
        let template = d.spec.clone().unwrap_or_default().template;
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = pod_template_hash(&template, collision);
        let rs = new_replica_set(d, &hash, target, self.max_old_revision + 1, max_surge);
        match self.sets.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                self.state.rs_writes.wrote(&self.key, &created);
                self.publish(
                    "ScalingReplicaSet",
                    &format!(
                        "Scaled up replica set {} from 0 to {target}",
                        created.name_any()
                    ),
                )
                .await;
                let event = (
                    "NewReplicaSetCreated",
                    format!("Created new replica set \"{}\"", created.name_any()),
                );
                *new_rs = Some(created);
                Ok(NewReplicaSet::Progress(Some(event)))
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // A ReplicaSet of that name exists with another template: a hash collision.
                // Asked live: the store may not show it yet.
                let existing = self.sets.get_opt(&rs.name_any()).await?;
                let ours = existing.as_ref().is_some_and(|e| {
                    util::controller_ref(&e.metadata).is_some_and(|r| r.uid == uid)
                        && e.spec
                            .as_ref()
                            .and_then(|s| s.template.as_ref())
                            .is_some_and(|t| templates_equal(t, &template))
                });
                if !ours {
                    let count = collision.unwrap_or(0) + 1;
                    let patch = json!({"status": {"collisionCount": count}});
                    let written = self
                        .deployments
                        .patch_status(
                            &d.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await?;
                    self.state.own_writes.wrote(&self.key, &written);
                }
                Ok(NewReplicaSet::Requeue(std::time::Duration::from_millis(
                    100,
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Delete old, empty ReplicaSets beyond revisionHistoryLimit.
    pub async fn clean_up_history(&self, old: &[ReplicaSet]) -> Result<()> {
        let limit = self
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let old_refs: Vec<&ReplicaSet> = old.iter().collect();
        for name in history_to_delete(&old_refs, limit) {
            if let Some(rs) = old.iter().find(|r| r.name_any() == name) {
                self.state.rs_writes.deleted(&self.key, rs);
            }
            ignore_missing(
                self.sets
                    .delete(&name, &DeleteParams::default())
                    .await
                    .map(|_| ()),
            )?;
        }
        Ok(())
    }

    /// The Deployment carries its current revision, as `kubectl rollout history` expects.
    pub async fn sync_revision_annotation(&self, new_rs: &ReplicaSet) -> Result<()> {
        let d = self.deployment;
        let rev = revision(new_rs).to_string();
        if d.annotations().get(REVISION) != Some(&rev) {
            let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
            let written = self
                .deployments
                .patch(
                    &d.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            self.state.own_writes.wrote(&self.key, &written);
        }
        Ok(())
    }

    pub async fn write_status(&self, status: &DeploymentStatus) -> Result<()> {
        let d = self.deployment;
        if d.status.as_ref() != Some(status) {
            let patch = json!({ "status": status });
            let written = self
                .deployments
                .patch_status(
                    &d.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            self.state.own_writes.wrote(&self.key, &written);
        }
        Ok(())
    }
}

/// Old ReplicaSets beyond revisionHistoryLimit that can go (empty ones, oldest revision first).
pub fn history_to_delete(old: &[&ReplicaSet], limit: i32) -> Vec<String> {
    let mut empty: Vec<&&ReplicaSet> = old
        .iter()
        .filter(|rs| {
            rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) == 0
                && rs.status.as_ref().map(|s| s.replicas).unwrap_or(0) == 0
                && !util::is_deleting(&rs.metadata)
        })
        .collect();
    let excess = old.len() as i64 - limit.max(0) as i64;
    if excess <= 0 {
        return vec![];
    }
    empty.sort_by_key(|rs| revision(rs));
    empty
        .into_iter()
        .take(excess as usize)
        .map(|rs| rs.name_any())
        .collect()
}

/// Give the new ReplicaSet the newest revision, also when an old template came back.
pub(super) async fn sync_revision(
    w: &Writes<'_>,
    new_rs: Option<&mut ReplicaSet>,
    max_old_revision: i64,
) -> Result<()> {
    let Some(rs) = new_rs else {
        return Ok(());
    };
    if let Some(next) = revision_bump(rs, max_old_revision) {
        let patch = json!({"metadata": {"annotations": {REVISION: next.to_string()}}});
        *rs = w.patch_replica_set(&rs.name_any(), &patch).await?;
    }
    Ok(())
}
