//! Recreate: scale every old ReplicaSet to zero, and only once no old pod is left create or
//! scale up the new one (Kubernetes' recreate.go).

use k8s_openapi::api::apps::v1::ReplicaSet;

use super::rolling::fenceposts;
use super::sync::{spec_replicas, NewReplicaSet, Writes};
use super::Result;

/// Whether any old ReplicaSet still wants or has pods.
pub fn old_pods_exist(old: &[ReplicaSet]) -> bool {
    old.iter()
        .any(|r| spec_replicas(r) > 0 || r.status.as_ref().is_some_and(|s| s.replicas > 0))
}

/// The new ReplicaSet's size: nothing while old pods exist, then all of them (pure).
pub fn new_replicas(desired: i32, old_pods_exist: bool) -> i32 {
    if old_pods_exist {
        0
    } else {
        desired
    }
}

pub(super) async fn rollout(
    w: &Writes<'_>,
    new_rs: &mut Option<ReplicaSet>,
    found_new: bool,
    old: &mut [ReplicaSet],
) -> Result<NewReplicaSet> {
    let d = w.deployment;
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let (max_surge, _) = fenceposts(d)?;
    let old_pods_exist = old_pods_exist(old);
    for rs in old.iter_mut().filter(|r| spec_replicas(r) > 0) {
        w.scale(rs, 0).await?;
    }
    let target_new = new_replicas(desired, old_pods_exist);
    w.sync_new_replica_set(new_rs, found_new, target_new, !old_pods_exist, max_surge)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_set_waits_for_old_pods_to_go() {
        assert_eq!(new_replicas(3, true), 0);
        assert_eq!(new_replicas(3, false), 3);
        let old: ReplicaSet = serde_json::from_value(serde_json::json!({
            "spec": {"replicas": 0, "selector": {}}, "status": {"replicas": 1}
        }))
        .unwrap();
        assert!(old_pods_exist(std::slice::from_ref(&old)));
    }
}
