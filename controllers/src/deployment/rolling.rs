//! RollingUpdate: grow the new ReplicaSet within maxSurge, shrink old ones keeping
//! maxUnavailable (Kubernetes' rolling.go).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::ResourceExt;

use super::sync::{spec_replicas, NewReplicaSet, Writes};
use super::{Error, Result};
use crate::util;

/// (maxSurge, maxUnavailable) as absolute numbers; both zero would never progress, so then
/// one pod may be unavailable.
pub fn fenceposts(d: &Deployment) -> Result<(i32, i32)> {
    let spec = d.spec.as_ref().ok_or(Error::NoSpec)?;
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

/// One rolling step: size the new ReplicaSet, then scale old ones down as far as availability
/// allows. Returns what to report as progress (or a requeue).
pub(super) async fn rollout(
    w: &Writes<'_>,
    new_rs: &mut Option<ReplicaSet>,
    found_new: bool,
    old: &mut [ReplicaSet],
) -> Result<NewReplicaSet> {
    let d = w.deployment;
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let (max_surge, max_unavailable) = fenceposts(d)?;
    let old_active = old.iter().any(|r| spec_replicas(r) > 0);
    let total: i32 = old.iter().map(spec_replicas).sum::<i32>()
        + new_rs.as_ref().map(spec_replicas).unwrap_or(0);
    let target_new = new_rs_replicas(
        desired,
        max_surge,
        total,
        new_rs.as_ref().map(spec_replicas).unwrap_or(0),
        old_active,
    );
    let outcome = w
        .sync_new_replica_set(new_rs, found_new, target_new, true, max_surge)
        .await?;
    if let NewReplicaSet::Requeue(_) = outcome {
        return Ok(outcome);
    }
    let old_counts: Vec<RsCounts> = old.iter().map(rs_counts).collect();
    let new_counts = new_rs.as_ref().map(rs_counts);
    for (name, replicas) in
        scale_down_old(&old_counts, new_counts.as_ref(), desired, max_unavailable)
    {
        if let Some(rs) = old.iter_mut().find(|r| r.name_any() == name) {
            w.scale(rs, replicas).await?;
        }
    }
    Ok(outcome)
}
