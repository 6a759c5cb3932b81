//! NodeAffinity: the pod's nodeSelector and required node affinity must match the node. Also
//! the node-selector-term matching shared with the preferred-affinity score plugin.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};

use crate::framework::{CycleState, FilterPlugin, FilterResult, NodeInfo, PodInfo};

pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

/// Whether one requirement holds for a value looked up by key.
pub fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or(&[]);
    let as_int = |s: &str| s.trim().parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), [want]) = (value.and_then(as_int), values) else {
                return false;
            };
            let Some(want) = as_int(want) else {
                return false;
            };
            if req.operator == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

/// A term matches when all its expressions (labels) and fields (`metadata.name`) match; a term
/// with neither matches nothing.
pub fn term_matches(
    term: &NodeSelectorTerm,
    labels: Option<&BTreeMap<String, String>>,
    node_name: &str,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(node_name);
            r.key == "metadata.name" && requirement_matches(r, value)
        })
}

/// nodeSelector and required node affinity of the pod against a node.
pub fn pod_matches_node(pod: &PodInfo, node: &NodeInfo) -> bool {
    let Some(spec) = pod.spec() else { return true };
    let labels = node.labels();
    if let Some(selector) = &spec.node_selector {
        if !selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, labels, &node.name)),
    }
}

pub struct NodeAffinity;

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> FilterResult {
        if pod_matches_node(pod, node) {
            Ok(())
        } else {
            Err(vec![REASON.to_string()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testutil::*;
    use serde_json::{json, Value};

    fn labelled(name: &str, labels: Value) -> NodeInfo {
        node(json!({"metadata": {"name": name, "labels": labels}}))
    }

    fn with_affinity(exprs: Value) -> std::sync::Arc<PodInfo> {
        pod(
            json!({"spec": {"containers": [{"name": "c", "image": "i"}], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": exprs}]}}}}}),
        )
    }

    fn fits(p: &PodInfo, n: &NodeInfo) -> bool {
        NodeAffinity.filter(&CycleState::default(), p, n).is_ok()
    }

    #[test]
    fn node_selector_must_match_all_labels() {
        let p = pod(
            json!({"spec": {"containers": [{"name": "c", "image": "i"}], "nodeSelector": {"disk": "ssd", "zone": "a"}}}),
        );
        assert!(fits(
            &p,
            &labelled("n", json!({"disk": "ssd", "zone": "a", "x": "y"}))
        ));
        assert!(!fits(&p, &labelled("n", json!({"disk": "ssd"}))));
        assert_eq!(
            NodeAffinity.filter(&CycleState::default(), &p, &labelled("n", json!({}))),
            Err(vec![REASON.to_string()])
        );
    }

    #[test]
    fn every_operator_decides() {
        let n = labelled("n", json!({"zone": "a", "cores": "8"}));
        let case = |op: &str, key: &str, values: Value| {
            with_affinity(json!([{"key": key, "operator": op, "values": values}]))
        };
        assert!(fits(&case("In", "zone", json!(["a", "b"])), &n));
        assert!(!fits(&case("In", "zone", json!(["b"])), &n));
        assert!(fits(&case("NotIn", "zone", json!(["b"])), &n));
        assert!(!fits(&case("NotIn", "zone", json!(["a"])), &n));
        assert!(fits(&case("NotIn", "missing", json!(["a"])), &n));
        assert!(fits(&case("Exists", "zone", json!(null)), &n));
        assert!(!fits(&case("Exists", "missing", json!(null)), &n));
        assert!(fits(&case("DoesNotExist", "missing", json!(null)), &n));
        assert!(!fits(&case("DoesNotExist", "zone", json!(null)), &n));
        assert!(fits(&case("Gt", "cores", json!(["4"])), &n));
        assert!(!fits(&case("Gt", "cores", json!(["8"])), &n));
        assert!(fits(&case("Lt", "cores", json!(["16"])), &n));
        assert!(!fits(&case("Lt", "cores", json!(["8"])), &n));
        assert!(!fits(&case("Gt", "zone", json!(["1"])), &n));
    }

    #[test]
    fn terms_are_ored_and_match_fields_names_the_node() {
        let p = pod(
            json!({"spec": {"containers": [{"name": "c", "image": "i"}], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
            ]}}}}}),
        );
        assert!(!fits(&p, &labelled("n1", json!({"zone": "a"}))));
        assert!(fits(&p, &labelled("n2", json!({"zone": "a"}))));
        assert!(fits(&p, &labelled("n3", json!({"zone": "z"}))));
    }
}
