//! LeastAllocated: prefer nodes with the most free cpu and memory after placing the pod.

use crate::framework::{CycleState, NodeInfo, PodInfo, ScorePlugin, MAX_NODE_SCORE};

/// 0..=100: the free share of one resource after adding `want`.
pub fn free_share(allocatable: i64, requested: i64, want: i64) -> i64 {
    let used = requested + want;
    if allocatable <= 0 || used > allocatable {
        return 0;
    }
    (allocatable - used) * MAX_NODE_SCORE / allocatable
}

pub struct LeastAllocated;

impl ScorePlugin for LeastAllocated {
    fn name(&self) -> &'static str {
        "LeastAllocated"
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let cpu = free_share(
            node.allocatable.milli_cpu,
            node.non_zero_requested.0,
            pod.non_zero.0,
        );
        let mem = free_share(
            node.allocatable.memory,
            node.non_zero_requested.1,
            pod.non_zero.1,
        );
        (cpu + mem) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testutil::*;

    #[test]
    fn emptier_node_scores_higher() {
        let mut busy = named("busy");
        busy.add_pod(pod_req("a", "2", "4Gi"));
        let idle = named("idle");
        let p = pod_req("p", "1", "2Gi");
        let s = CycleState::default();
        // 4 cpu / 8Gi nodes: idle keeps 3/4 and 6/8 free, busy 1/4 and 2/8.
        assert_eq!(LeastAllocated.score(&s, &p, &idle), 75);
        assert_eq!(LeastAllocated.score(&s, &p, &busy), 25);
    }
}
