//! TaintToleration: a node's NoSchedule and NoExecute taints must be tolerated (filter); each
//! untolerated PreferNoSchedule taint lowers the node's score.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::framework::{
    normalize_to_max, CycleState, FilterPlugin, FilterResult, NodeInfo, PodInfo, ScorePlugin,
};

/// Whether `toleration` tolerates `taint` (Kubernetes' matching rules).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    if let Some(key) = toleration.key.as_deref().filter(|k| !k.is_empty()) {
        if key != taint.key {
            return false;
        }
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

pub fn tolerated_by(tolerations: Option<&Vec<Toleration>>, taint: &Taint) -> bool {
    tolerations
        .into_iter()
        .flatten()
        .any(|t| tolerates(t, taint))
}

fn taints(node: &NodeInfo) -> &[Taint] {
    node.node
        .as_ref()
        .and_then(|n| n.spec.as_ref())
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

pub struct TaintToleration;

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> FilterResult {
        let tolerations = pod.spec().and_then(|s| s.tolerations.as_ref());
        match taints(node)
            .iter()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .find(|t| !tolerated_by(tolerations, t))
        {
            None => Ok(()),
            Some(t) => Err(vec![format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            )]),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let tolerations = pod.spec().and_then(|s| s.tolerations.as_ref());
        taints(node)
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule" && !tolerated_by(tolerations, t))
            .count() as i64
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

    fn tainted(key: &str, value: &str, effect: &str) -> NodeInfo {
        node(
            json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": key, "value": value, "effect": effect}]}}),
        )
    }

    #[test]
    fn untolerated_no_schedule_taint_refuses_with_kube_message() {
        let n = tainted("dedicated", "gpu", "NoSchedule");
        let p = pod(json!({}));
        assert_eq!(
            TaintToleration.filter(&CycleState::default(), &p, &n),
            Err(vec![
                "node(s) had untolerated taint {dedicated: gpu}".to_string()
            ])
        );
        let n = tainted("gone", "", "NoExecute");
        assert_eq!(
            TaintToleration.filter(&CycleState::default(), &p, &n),
            Err(vec!["node(s) had untolerated taint {gone: }".to_string()])
        );
    }

    #[test]
    fn tolerations_match_by_key_value_effect_and_operator() {
        let n = tainted("dedicated", "gpu", "NoSchedule");
        let s = CycleState::default();
        let with = |tol: serde_json::Value| {
            pod(
                json!({"spec": {"containers": [{"name": "c", "image": "i"}], "tolerations": [tol]}}),
            )
        };
        assert!(TaintToleration
            .filter(&s, &with(json!({"key": "dedicated", "value": "gpu"})), &n)
            .is_ok());
        assert!(TaintToleration
            .filter(
                &s,
                &with(json!({"key": "dedicated", "operator": "Exists"})),
                &n
            )
            .is_ok());
        assert!(TaintToleration
            .filter(&s, &with(json!({"operator": "Exists"})), &n)
            .is_ok());
        assert!(TaintToleration
            .filter(&s, &with(json!({"key": "dedicated", "value": "cpu"})), &n)
            .is_err());
        assert!(TaintToleration
            .filter(
                &s,
                &with(json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"})),
                &n
            )
            .is_err());
    }

    #[test]
    fn prefer_no_schedule_only_lowers_score() {
        let soft = tainted("slow", "yes", "PreferNoSchedule");
        let plain = named("m");
        let p = pod(json!({}));
        let s = CycleState::default();
        assert!(TaintToleration.filter(&s, &p, &soft).is_ok());
        let mut scores = vec![
            TaintToleration.score(&s, &p, &soft),
            TaintToleration.score(&s, &p, &plain),
        ];
        TaintToleration.normalize(&mut scores);
        assert_eq!(scores, vec![0, 100]);
    }
}
