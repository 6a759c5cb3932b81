//! PodSpread: prefer nodes running fewer pods of the same workload: pods with the same
//! controlling owner, or pods selected by the same services.

use crate::framework::{normalize_to_max, CycleState, NodeInfo, PodInfo, ScorePlugin};

pub struct PodSpread;

impl ScorePlugin for PodSpread {
    fn name(&self) -> &'static str {
        "PodSpread"
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let by_owner = pod
            .owner
            .as_ref()
            .and_then(|o| node.owner_counts.get(o))
            .map_or(0, |c| i64::from(*c));
        let by_service = if pod.services.is_empty() {
            0
        } else {
            node.pods
                .values()
                .filter(|p| p.key != pod.key && pod.same_service(p))
                .count() as i64
        };
        by_owner.max(by_service)
    }

    fn normalize(&self, scores: &mut [i64]) {
        normalize_to_max(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testutil::*;
    use serde_json::json;

    fn owned(name: &str, owner: &str) -> std::sync::Arc<PodInfo> {
        pod(
            json!({"metadata": {"name": name, "namespace": "default", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": owner, "controller": true}]}}),
        )
    }

    #[test]
    fn nodes_with_fewer_siblings_score_higher() {
        let mut a = named("a");
        a.add_pod(owned("x1", "rs-1"));
        a.add_pod(owned("x2", "rs-1"));
        let mut b = named("b");
        b.add_pod(owned("y1", "rs-1"));
        b.add_pod(owned("other", "rs-2"));
        let c = named("c");
        let p = owned("new", "rs-1");
        let s = CycleState::default();
        let mut scores: Vec<i64> = [&a, &b, &c]
            .iter()
            .map(|n| PodSpread.score(&s, &p, n))
            .collect();
        assert_eq!(scores, vec![2, 1, 0]);
        PodSpread.normalize(&mut scores);
        assert_eq!(scores, vec![0, 50, 100]);
        let lone = pod(json!({}));
        let mut scores: Vec<i64> = [&a, &c]
            .iter()
            .map(|n| PodSpread.score(&s, &lone, n))
            .collect();
        PodSpread.normalize(&mut scores);
        assert_eq!(scores, vec![100, 100]);
    }

    #[test]
    fn pods_of_the_same_service_spread() {
        let labelled = |name: &str, app: &str| {
            pod(json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": app}}}))
        };
        let mut a = named("a");
        a.add_pod(labelled("w1", "web"));
        a.add_pod(labelled("d1", "db"));
        let mut b = named("b");
        b.add_pod(labelled("d2", "db"));
        b.add_pod(labelled("d3", "db"));
        let mut p = PodInfo::new(labelled("w2", "web").pod.clone());
        p.services = vec![[("app".to_string(), "web".to_string())].into()];
        let s = CycleState::default();
        let mut scores: Vec<i64> = [&a, &b]
            .iter()
            .map(|n| PodSpread.score(&s, &p, n))
            .collect();
        assert_eq!(scores, vec![1, 0]);
        PodSpread.normalize(&mut scores);
        assert_eq!(scores, vec![0, 100]);
    }
}
