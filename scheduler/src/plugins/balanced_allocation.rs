//! BalancedAllocation: prefer nodes whose cpu and memory use stay in proportion after placing
//! the pod (score 100 minus the standard deviation of the used fractions, in percent).

use crate::framework::{CycleState, NodeInfo, PodInfo, ScorePlugin, MAX_NODE_SCORE};

pub fn balance_score(fractions: &[f64]) -> i64 {
    if fractions.is_empty() {
        return MAX_NODE_SCORE;
    }
    let n = fractions.len() as f64;
    let mean = fractions.iter().sum::<f64>() / n;
    let var = fractions
        .iter()
        .map(|f| (f - mean) * (f - mean))
        .sum::<f64>()
        / n;
    ((1.0 - var.sqrt()) * MAX_NODE_SCORE as f64) as i64
}

fn fraction(allocatable: i64, used: i64) -> f64 {
    if allocatable <= 0 {
        return 1.0;
    }
    (used as f64 / allocatable as f64).min(1.0)
}

pub struct BalancedAllocation;

impl ScorePlugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "BalancedAllocation"
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let cpu = fraction(
            node.allocatable.milli_cpu,
            node.requested.milli_cpu + pod.requests.milli_cpu,
        );
        let mem = fraction(
            node.allocatable.memory,
            node.requested.memory + pod.requests.memory,
        );
        balance_score(&[cpu, mem])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testutil::*;

    #[test]
    fn node_left_in_proportion_scores_higher() {
        // Both nodes 4 cpu / 8Gi. One already uses much memory, the other much cpu.
        let mut mem_heavy = named("mem");
        mem_heavy.add_pod(pod_req("a", "0", "6Gi"));
        let mut cpu_heavy = named("cpu");
        cpu_heavy.add_pod(pod_req("b", "3", "0"));
        // A cpu-heavy pod balances the memory-heavy node.
        let p = pod_req("p", "3", "1");
        let s = CycleState::default();
        let on_mem = BalancedAllocation.score(&s, &p, &mem_heavy);
        let on_cpu = BalancedAllocation.score(&s, &p, &cpu_heavy);
        assert!(on_mem > on_cpu, "{on_mem} vs {on_cpu}");
        assert_eq!(balance_score(&[0.5, 0.5]), 100);
        assert_eq!(balance_score(&[1.0, 0.0]), 50);
    }
}
