//! Which objects a list or watch returns: label selectors, and the field selectors each kind
//! supports in Kubernetes.

use serde_json::Value;
use skiff_common::fields::FieldSelector;
use skiff_common::labels::LabelSelector;

use crate::error::ApiError;
use crate::registry::ResourceInfo;

/// The fields a kind can be selected on, besides metadata.name and metadata.namespace.
fn extra_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.schedulerName",
            "spec.restartPolicy",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Node" => &["spec.unschedulable"],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["type"],
        "Namespace" => &["status.phase"],
        "ReplicaSet" => &["status.replicas"],
        "Job" => &["status.successful"],
        _ => &[],
    }
}

/// The value of a selectable field, rendered as Kubernetes renders it for field selectors.
pub fn field_value(obj: &Value, field: &str) -> Option<String> {
    let pointer = match field {
        "source" => "/source/component".to_string(),
        other => format!("/{}", other.replace('.', "/")),
    };
    match obj.pointer(&pointer) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        // Kubernetes renders absent booleans and counters as their zero value.
        None if field == "spec.unschedulable" || field == "spec.hostNetwork" => {
            Some("false".into())
        }
        None if field == "status.replicas" || field == "status.successful" => Some("0".into()),
        _ => None,
    }
}

/// A parsed `labelSelector` + `fieldSelector` pair.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selection {
    pub fn parse(
        info: &ResourceInfo,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(labels.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(fields.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
        let allowed = extra_fields(info.kind);
        for req in fields.requirements() {
            let field = req.field.as_str();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !allowed.contains(&field)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
        }
        Ok(Selection { labels, fields })
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_json(obj.pointer("/metadata/labels"))
            && self.fields.matches(|f| field_value(obj, f))
    }

    /// A `metadata.name=X` requirement narrows a list to one key.
    pub fn exact_name(&self) -> Option<&str> {
        self.fields.exact_value("metadata.name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find;
    use serde_json::json;

    #[test]
    fn pods_select_on_node_and_phase() {
        let pods = find("", "v1", "pods").unwrap();
        let sel = Selection::parse(
            pods,
            Some("app=web"),
            Some("spec.nodeName=n1,status.phase!=Failed"),
        )
        .unwrap();
        let pod = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert!(sel.matches(&pod));
        let other = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": "n2"}});
        assert!(!sel.matches(&other));
    }

    #[test]
    fn unsupported_field_is_a_bad_request() {
        let cms = find("", "v1", "configmaps").unwrap();
        let err = Selection::parse(cms, None, Some("spec.nodeName=x")).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.contains("spec.nodeName"));
    }

    #[test]
    fn unset_unschedulable_selects_as_false() {
        let nodes = find("", "v1", "nodes").unwrap();
        let sel = Selection::parse(nodes, None, Some("spec.unschedulable=false")).unwrap();
        assert!(sel.matches(&json!({"metadata": {"name": "n"}, "spec": {}})));
    }
}
