//! The Deployment controller: one ReplicaSet per pod template (named and labelled with the
//! pod-template-hash), rolled over with RollingUpdate (maxSurge/maxUnavailable) or Recreate,
//! revision annotations, history cleanup, pause, progress deadline, and the status fields and
//! conditions `kubectl rollout status` reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller};
use kube::ResourceExt;
use serde_json::{json, Value};

use crate::events::EventType;
use crate::util::ignore_missing;
use crate::util::{self, Context, Error, Result};

pub const NAME: &str = "deployment-controller";
pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// FNV-1a, 32 bits.
fn fnv32a(data: &[u8], mut h: u32) -> u32 {
    for b in data {
        h ^= *b as u32;
        h = h.wrapping_mul(16777619);
    }
    h
}

/// apimachinery's SafeEncodeString: each byte mapped onto an alphabet without vowels or
/// look-alike digits, so the result never spells words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// The pod-template-hash of a template, as Kubernetes' ComputeHash builds it: FNV-32a over the
/// template, then the collision count as 8 little-endian bytes, the sum printed in decimal and
/// safe-encoded. Kubernetes feeds the hasher a Go `spew` dump of the struct, which has no
/// equivalent outside Go; skiff hashes the canonical JSON of the template instead, so hashes
/// are stable and well distributed but not byte-identical to kube-controller-manager's.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let mut h = fnv32a(&bytes, 2166136261);
    if let Some(c) = collision_count {
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv32a(&buf, h);
    }
    safe_encode(&h.to_string())
}

fn template_without_hash(t: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    v
}

/// Same template apart from the pod-template-hash label (Kubernetes' EqualIgnoreHash).
pub fn templates_equal(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    template_without_hash(a) == template_without_hash(b)
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// (maxSurge, maxUnavailable) as absolute numbers; both zero would never progress, so then
/// one pod may be unavailable.
pub fn fenceposts(d: &Deployment) -> Result<(i32, i32)> {
    let spec = d
        .spec
        .as_ref()
        .ok_or_else(|| Error::Invalid("deployment has no spec".into()))?;
    let desired = spec.replicas.unwrap_or(1);
    let ru = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    if spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        return Ok((0, desired));
    }
    let surge = util::scaled_value(ru.and_then(|r| r.max_surge.as_ref()), desired, true, "25%")?;
    let unavailable = util::scaled_value(
        ru.and_then(|r| r.max_unavailable.as_ref()),
        desired,
        false,
        "25%",
    )?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

/// How many replicas the new ReplicaSet should have in a rolling update (NewRSNewReplicas).
pub fn new_rs_replicas(
    desired: i32,
    max_surge: i32,
    total_replicas: i32,
    new_replicas: i32,
    old_active: bool,
) -> i32 {
    if !old_active {
        // Nothing left to replace: a plain scale to the desired count.
        return desired;
    }
    let max_total = desired + max_surge;
    if total_replicas >= max_total {
        return new_replicas;
    }
    let up = (max_total - total_replicas).min(desired - new_replicas);
    new_replicas + up
}

/// A ReplicaSet as the rolling-update arithmetic sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct RsCounts {
    pub name: String,
    pub replicas: i32,
    pub available: i32,
}

/// New sizes for old ReplicaSets (oldest first) so that at least `desired - max_unavailable`
/// pods stay available (reconcileOldReplicaSets: unhealthy pods go first, then healthy ones).
pub fn scale_down_old(
    old: &[RsCounts],
    new: Option<&RsCounts>,
    desired: i32,
    max_unavailable: i32,
) -> Vec<(String, i32)> {
    let old_pods: i32 = old.iter().map(|r| r.replicas).sum();
    if old_pods == 0 {
        return vec![];
    }
    let (new_replicas, new_available) = new.map(|n| (n.replicas, n.available)).unwrap_or((0, 0));
    let all_pods = old_pods + new_replicas;
    let min_available = desired - max_unavailable;
    let new_unavailable = (new_replicas - new_available).max(0);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return vec![];
    }
    let mut sizes: Vec<RsCounts> = old.to_vec();
    let mut cleaned = 0;
    for rs in sizes.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = rs.replicas - rs.available.min(rs.replicas);
        if rs.replicas == 0 || unhealthy <= 0 {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(unhealthy);
        rs.replicas -= down;
        cleaned += down;
    }
    let available: i32 = old.iter().map(|r| r.available).sum::<i32>() + new_available;
    if available > min_available {
        let total = available - min_available;
        let mut scaled = 0;
        for rs in sizes.iter_mut() {
            if scaled >= total {
                break;
            }
            if rs.replicas == 0 {
                continue;
            }
            let down = rs.replicas.min(total - scaled);
            rs.replicas -= down;
            scaled += down;
        }
    }
    sizes
        .into_iter()
        .zip(old)
        .filter(|(n, o)| n.replicas != o.replicas)
        .map(|(n, _)| (n.name, n.replicas))
        .collect()
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

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Put `cond` into `conds`, keeping lastTransitionTime when the status did not change.
fn set_condition(conds: &mut Vec<DeploymentCondition>, mut cond: DeploymentCondition) {
    if let Some(existing) = conds.iter_mut().find(|c| c.type_ == cond.type_) {
        if existing.status == cond.status && existing.reason == cond.reason {
            // Nothing new: keep the times, so the progress deadline keeps counting.
            return;
        }
        if existing.status == cond.status {
            cond.last_transition_time = existing.last_transition_time.clone();
        }
        *existing = cond;
    } else {
        conds.push(cond);
    }
}

/// The Deployment's status from its ReplicaSets, with Available and Progressing conditions.
/// `event` names what the reconcile just did to the new ReplicaSet, if anything.
pub fn compute_status(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    all: &[&ReplicaSet],
    max_unavailable: i32,
    event: Option<(&str, String)>,
    now: Timestamp,
) -> DeploymentStatus {
    let spec = d.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let st = |rs: &&ReplicaSet| rs.status.clone().unwrap_or_default();
    let replicas: i32 = all.iter().map(|r| st(r).replicas).sum();
    let ready: i32 = all.iter().map(|r| st(r).ready_replicas.unwrap_or(0)).sum();
    let available: i32 = all
        .iter()
        .map(|r| st(r).available_replicas.unwrap_or(0))
        .sum();
    let updated = new_rs
        .map(|r| r.status.clone().unwrap_or_default().replicas)
        .unwrap_or(0);
    let wanted: i32 = all
        .iter()
        .map(|r| r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0))
        .sum();
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        // As Kubernetes counts it: the pods the ReplicaSets want, less those available.
        unavailable_replicas: Some((wanted - available).max(0)),
        collision_count: old.collision_count,
        conditions: None,
        ..Default::default()
    };
    let mut conds = old.conditions.clone().unwrap_or_default();
    if available >= desired - max_unavailable {
        set_condition(
            &mut conds,
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut conds,
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    let rs_name = new_rs.map(|r| r.name_any()).unwrap_or_default();
    let progressing = conds.iter().find(|c| c.type_ == "Progressing").cloned();
    if spec.paused == Some(true) {
        set_condition(
            &mut conds,
            condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
                now,
            ),
        );
    } else if progressing.as_ref().and_then(|c| c.reason.as_deref()) == Some("DeploymentPaused") {
        set_condition(
            &mut conds,
            condition(
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
                now,
            ),
        );
    }
    let complete =
        updated == desired && replicas == desired && available == desired && new_rs.is_some();
    if spec.paused != Some(true) {
        if let Some((reason, message)) = event {
            set_condition(
                &mut conds,
                condition("Progressing", "True", reason, message, now),
            );
        }
        let made_progress = updated > old.updated_replicas.unwrap_or(0)
            || replicas - updated < old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0)
            || available > old.available_replicas.unwrap_or(0)
            || ready > old.ready_replicas.unwrap_or(0);
        let current = conds.iter().find(|c| c.type_ == "Progressing").cloned();
        if complete {
            set_condition(
                &mut conds,
                condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                    now,
                ),
            );
        } else if made_progress {
            let mut c = condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{rs_name}\" is progressing."),
                now,
            );
            if let Some(cur) = current.as_ref().filter(|c| c.status == "True") {
                c.last_transition_time = cur.last_transition_time.clone();
            }
            conds.retain(|c| c.type_ != "Progressing");
            conds.push(c);
        } else if let Some(deadline) = spec.progress_deadline_seconds {
            if let Some(cur) = current {
                let last = cur.last_update_time.as_ref().map(|t| t.0).unwrap_or(now);
                let reason = cur.reason.as_deref().unwrap_or("");
                if reason != "NewReplicaSetAvailable"
                    && reason != "ProgressDeadlineExceeded"
                    && last + SignedDuration::from_secs(deadline as i64) < now
                {
                    set_condition(
                        &mut conds,
                        condition(
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                            now,
                        ),
                    );
                }
            }
        }
    }
    conds.sort_by_key(|c| if c.type_ == "Available" { 0 } else { 1 });
    status.conditions = Some(conds);
    status
}

/// How long until the progress deadline could pass, if a rollout is under way.
fn deadline_requeue(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> Option<Duration> {
    let deadline = d.spec.as_ref()?.progress_deadline_seconds?;
    let c = status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Progressing")?;
    if c.status != "True" || c.reason.as_deref() == Some("NewReplicaSetAvailable") {
        return None;
    }
    let at = c.last_update_time.as_ref()?.0 + SignedDuration::from_secs(deadline as i64 + 1);
    Some(util::until(at, now).max(Duration::from_millis(100)))
}

fn rs_counts(rs: &ReplicaSet) -> RsCounts {
    RsCounts {
        name: rs.name_any(),
        replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        available: rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
    }
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// The ReplicaSet for the Deployment's current template.
fn new_replica_set(
    d: &Deployment,
    hash: &str,
    replicas: i32,
    revision: i64,
    max_surge: i32,
) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.into());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.into());
    let mut labels = meta.labels.clone().unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.into());
    let desired = spec.replicas.unwrap_or(1);
    let annotations = BTreeMap::from([
        (REVISION.to_string(), revision.to_string()),
        (DESIRED_REPLICAS.to_string(), desired.to_string()),
        (MAX_REPLICAS.to_string(), (desired + max_surge).to_string()),
    ]);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", d.name_any())),
            namespace: d.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![util::owner_ref(d)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

async fn scale(
    api: &Api<ReplicaSet>,
    rs: &mut ReplicaSet,
    replicas: i32,
    ctx: &Context,
    d: &Deployment,
) -> Result<()> {
    let from = spec_replicas(rs);
    let patch = json!({"spec": {"replicas": replicas}});
    *rs = api
        .patch(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    let verb = if replicas > from { "up" } else { "down" };
    ctx.recorder.publish(
        d,
        EventType::Normal,
        "ScalingReplicaSet",
        format!(
            "Scaled {verb} replica set {} from {from} to {replicas}",
            rs.name_any()
        ),
    );
    Ok(())
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action> {
    let now = util::now();
    let ns = d.namespace().unwrap_or_default();
    let uid = d.uid().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    if util::is_deleting(&d.metadata) {
        return Ok(Action::await_change());
    }
    let spec = d
        .spec
        .clone()
        .ok_or_else(|| Error::Invalid("deployment has no spec".into()))?;
    let selector = util::selector(Some(&spec.selector))?;
    let desired = spec.replicas.unwrap_or(1);
    let (max_surge, max_unavailable) = fenceposts(&d)?;
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");

    // Claim: our ReplicaSets, adopting matching orphans and releasing ones that stopped matching.
    let mut owned: Vec<ReplicaSet> = Vec::new();
    for rs in api.list(&ListParams::default()).await?.items {
        let matches = selector.matches(&util::labels(&rs.metadata));
        match util::controller_ref(&rs.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    owned.push(rs);
                } else {
                    let refs: Vec<_> = rs
                        .owner_references()
                        .iter()
                        .filter(|r| r.uid != uid)
                        .cloned()
                        .collect();
                    let patch = json!({"metadata": {"ownerReferences": refs}});
                    ignore_missing(
                        api.patch(
                            &rs.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await,
                    )?;
                }
            }
            None if matches && !util::is_deleting(&rs.metadata) => {
                let mut refs = rs.owner_references().to_vec();
                refs.push(util::owner_ref(d.as_ref()));
                let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.resource_version()}});
                owned.push(
                    api.patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?,
                );
            }
            _ => {}
        }
    }
    owned.sort_by_key(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let new_idx = owned.iter().position(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| templates_equal(t, &spec.template))
    });
    let mut new_rs = new_idx.map(|i| owned.remove(i));
    let mut old = owned;
    let max_old_revision = old.iter().map(revision).max().unwrap_or(0);
    let mut event: Option<(&str, String)> = None;

    if spec.paused != Some(true) {
        // The new ReplicaSet's revision is the newest, also when an old template came back.
        if let Some(rs) = new_rs.as_mut() {
            if revision(rs) <= max_old_revision {
                let patch = json!({"metadata": {"annotations": {REVISION: (max_old_revision + 1).to_string()}}});
                *rs = api
                    .patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
            }
        }
        let old_active = old.iter().any(|r| spec_replicas(r) > 0);
        let old_pods_exist = old
            .iter()
            .any(|r| spec_replicas(r) > 0 || r.status.as_ref().is_some_and(|s| s.replicas > 0));
        if recreate {
            for rs in old.iter_mut().filter(|r| spec_replicas(r) > 0) {
                scale(&api, rs, 0, &ctx, &d).await?;
            }
        }
        let target_new = if recreate {
            if old_pods_exist {
                0
            } else {
                desired
            }
        } else {
            let total: i32 = old.iter().map(spec_replicas).sum::<i32>()
                + new_rs.as_ref().map(spec_replicas).unwrap_or(0);
            new_rs_replicas(
                desired,
                max_surge,
                total,
                new_rs.as_ref().map(spec_replicas).unwrap_or(0),
                old_active,
            )
        };
        match new_rs.as_mut() {
            None if !(recreate && old_pods_exist) => {
                let collision = d.status.as_ref().and_then(|s| s.collision_count);
                let hash = pod_template_hash(&spec.template, collision);
                let rs = new_replica_set(&d, &hash, target_new, max_old_revision + 1, max_surge);
                match api.create(&PostParams::default(), &rs).await {
                    Ok(created) => {
                        ctx.recorder.publish(
                            d.as_ref(),
                            EventType::Normal,
                            "ScalingReplicaSet",
                            format!(
                                "Scaled up replica set {} from 0 to {target_new}",
                                created.name_any()
                            ),
                        );
                        event = Some((
                            "NewReplicaSetCreated",
                            format!("Created new replica set \"{}\"", created.name_any()),
                        ));
                        new_rs = Some(created);
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        // A ReplicaSet of that name exists with another template: a hash collision.
                        let existing = api.get_opt(&rs.name_any()).await?;
                        let ours = existing.as_ref().is_some_and(|e| {
                            util::controller_ref(&e.metadata).is_some_and(|r| r.uid == uid)
                                && e.spec
                                    .as_ref()
                                    .and_then(|s| s.template.as_ref())
                                    .is_some_and(|t| templates_equal(t, &spec.template))
                        });
                        if !ours {
                            let count = collision.unwrap_or(0) + 1;
                            let patch = json!({"status": {"collisionCount": count}});
                            dapi.patch_status(
                                &d.name_any(),
                                &PatchParams::default(),
                                &Patch::Merge(&patch),
                            )
                            .await?;
                        }
                        return Ok(Action::requeue(Duration::from_millis(100)));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            None => {}
            Some(rs) => {
                if spec_replicas(rs) != target_new {
                    scale(&api, rs, target_new, &ctx, &d).await?;
                    event = Some((
                        "ReplicaSetUpdated",
                        format!("ReplicaSet \"{}\" is progressing.", rs.name_any()),
                    ));
                } else if new_idx.is_some()
                    && d.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_none()
                {
                    event = Some((
                        "FoundNewReplicaSet",
                        format!("Found new replica set \"{}\"", rs.name_any()),
                    ));
                }
            }
        }
        if !recreate {
            let old_counts: Vec<RsCounts> = old.iter().map(rs_counts).collect();
            let new_counts = new_rs.as_ref().map(rs_counts);
            for (name, replicas) in
                scale_down_old(&old_counts, new_counts.as_ref(), desired, max_unavailable)
            {
                if let Some(rs) = old.iter_mut().find(|r| r.name_any() == name) {
                    scale(&api, rs, replicas, &ctx, &d).await?;
                }
            }
        }
    } else if let Some(rs) = new_rs.as_mut() {
        // Paused: no rollout, but a plain scale of a settled Deployment still applies.
        if old.iter().all(|r| spec_replicas(r) == 0) && spec_replicas(rs) != desired {
            scale(&api, rs, desired, &ctx, &d).await?;
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
    if complete || spec.paused == Some(true) {
        let limit = spec.revision_history_limit.unwrap_or(10);
        let old_refs: Vec<&ReplicaSet> = old.iter().collect();
        for name in history_to_delete(&old_refs, limit) {
            ignore_missing(
                api.delete(&name, &DeleteParams::default())
                    .await
                    .map(|_| ()),
            )?;
        }
    }

    // The Deployment carries its current revision, as `kubectl rollout history` expects.
    if let Some(rs) = new_rs.as_ref() {
        let rev = revision(rs).to_string();
        if d.annotations().get(REVISION) != Some(&rev) {
            let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
            dapi.patch(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        }
    }
    if d.status.as_ref() != Some(&status) {
        let patch = json!({"status": status});
        dapi.patch_status(
            &d.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    ctx.metrics.reconcile(NAME, true);
    Ok(match deadline_requeue(&d, &status, now) {
        Some(after) => Action::requeue(after),
        None => Action::requeue(Duration::from_secs(300)),
    })
}

fn deployments_of_rs(rs: &ReplicaSet, store: &Store<Deployment>) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    if let Some(r) = util::controller_ref(&rs.metadata) {
        return if r.kind == "Deployment" {
            vec![ObjectRef::new(&r.name).within(&ns)]
        } else {
            vec![]
        };
    }
    let labels = util::labels(&rs.metadata);
    store
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
        .filter(|d| {
            util::selector(d.spec.as_ref().map(|s| &s.selector)).is_ok_and(|s| s.matches(&labels))
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let controller = Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    controller
        .watches(
            Api::<ReplicaSet>::all(client),
            watcher::Config::default(),
            move |rs| deployments_of_rs(&rs, &store),
        )
        .run(reconcile, util::error_policy(NAME), ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

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
