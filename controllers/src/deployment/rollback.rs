//! Revisions, which rollbacks rest on: `kubectl rollout undo` writes an old ReplicaSet's
//! template back into the Deployment; that ReplicaSet becomes the new one again and gets the
//! newest revision, so history reads in order (Kubernetes' rollback.go and revision sync).

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::ResourceExt;

use super::REVISION;

pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The newest revision among `sets`.
pub fn max_revision(sets: &[ReplicaSet]) -> i64 {
    sets.iter().map(revision).max().unwrap_or(0)
}

/// The revision the new ReplicaSet needs, if it is not the newest already (pure).
pub fn revision_bump(new_rs: &ReplicaSet, max_old_revision: i64) -> Option<i64> {
    (revision(new_rs) <= max_old_revision).then_some(max_old_revision + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(rev: i64) -> ReplicaSet {
        serde_json::from_value(json!({"metadata": {"annotations": {REVISION: rev.to_string()}}}))
            .unwrap()
    }

    #[test]
    fn a_returning_template_gets_the_newest_revision() {
        let old = [rs(1), rs(3)];
        assert_eq!(max_revision(&old), 3);
        assert_eq!(revision_bump(&rs(2), 3), Some(4));
        assert_eq!(revision_bump(&rs(4), 3), None);
    }
}
