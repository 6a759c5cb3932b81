//! Progress: the Deployment's status summed from its ReplicaSets, the Available and
//! Progressing conditions, the progress deadline and when to look again for it (Kubernetes'
//! progress.go and syncDeploymentStatus).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::util;

pub(super) fn condition(
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
pub(super) fn deadline_requeue(
    d: &Deployment,
    status: &DeploymentStatus,
    now: Timestamp,
) -> Option<Duration> {
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
