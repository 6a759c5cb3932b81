//! PreferredAffinity: the sum of the weights of the pod's preferred node-affinity terms the
//! node matches, scaled so the best node gets 100.

use super::node_affinity::term_matches;
use crate::framework::{normalize_to_max, CycleState, NodeInfo, PodInfo, ScorePlugin};

pub struct PreferredAffinity;

impl ScorePlugin for PreferredAffinity {
    fn name(&self) -> &'static str {
        "PreferredAffinity"
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(prefs) = pod
            .spec()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
        else {
            return 0;
        };
        prefs
            .iter()
            .filter(|p| p.weight > 0 && term_matches(&p.preference, node.labels(), &node.name))
            .map(|p| i64::from(p.weight))
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        normalize_to_max(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testutil::*;
    use serde_json::json;

    #[test]
    fn matching_preferences_add_their_weights() {
        let p = pod(
            json!({"spec": {"containers": [{"name": "c", "image": "i"}], "affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 80, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
                {"weight": 20, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}
            ]}}}}),
        );
        let both = node(json!({"metadata": {"name": "a", "labels": {"disk": "ssd", "zone": "1"}}}));
        let ssd = node(json!({"metadata": {"name": "b", "labels": {"disk": "ssd"}}}));
        let none = named("c");
        let s = CycleState::default();
        let mut scores: Vec<i64> = [&both, &ssd, &none]
            .iter()
            .map(|n| PreferredAffinity.score(&s, &p, n))
            .collect();
        assert_eq!(scores, vec![100, 80, 0]);
        PreferredAffinity.normalize(&mut scores);
        assert_eq!(scores, vec![100, 80, 0]);
    }
}
