//! Which objects a list or watch returns: label selectors, and the field selectors each kind
//! supports in Kubernetes.

use serde_json::Value;
use skiff_common::fields::FieldSelector;
use skiff_common::labels::LabelSelector;

use crate::error::ApiError;
use crate::registry::strategy::{KindStrategy, SelectableField};

/// The value of a selectable field, rendered as Kubernetes renders it for field selectors.
fn field_value(obj: &Value, field: &str, selectable: &[SelectableField]) -> Option<String> {
    let pointer = match field {
        "metadata.name" => "/metadata/name",
        "metadata.namespace" => "/metadata/namespace",
        other => selectable.iter().find(|f| f.name == other)?.pointer,
    };
    match obj.pointer(pointer) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        // Kubernetes renders absent booleans and counters as their zero value.
        None => selectable
            .iter()
            .find(|f| f.name == field)
            .and_then(|f| f.absent)
            .map(str::to_string),
        _ => None,
    }
}

/// A parsed `labelSelector` + `fieldSelector` pair.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    selectable: &'static [SelectableField],
}

impl Selection {
    pub fn parse(
        strategy: &dyn KindStrategy,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(labels.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(fields.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
        let selectable = strategy.selectable_fields();
        for req in fields.requirements() {
            let field = req.field.as_str();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !selectable.iter().any(|f| f.name == field)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
        }
        Ok(Selection {
            labels,
            fields,
            selectable,
        })
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_json(obj.pointer("/metadata/labels"))
            && self
                .fields
                .matches(|f| field_value(obj, f, self.selectable))
    }

    /// A `metadata.name=X` requirement narrows a list to one key.
    pub fn exact_name(&self) -> Option<&str> {
        self.fields.exact_value("metadata.name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::core::configmap::ConfigMapStrategy;
    use crate::registry::core::node::NodeStrategy;
    use crate::registry::core::pod::PodStrategy;
    use serde_json::json;

    #[test]
    fn pods_select_on_node_and_phase() {
        let sel = Selection::parse(
            &PodStrategy,
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
        let err = Selection::parse(&ConfigMapStrategy, None, Some("spec.nodeName=x")).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.contains("spec.nodeName"));
    }

    #[test]
    fn unset_unschedulable_selects_as_false() {
        let sel = Selection::parse(&NodeStrategy, None, Some("spec.unschedulable=false")).unwrap();
        assert!(sel.matches(&json!({"metadata": {"name": "n"}, "spec": {}})));
    }
}
