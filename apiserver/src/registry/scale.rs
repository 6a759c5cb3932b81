//! The `scale` subresource (autoscaling/v1 Scale) of kinds with `spec.replicas` and a
//! label selector: the view, and the change a Scale asks for.

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult, Cause};
use crate::object;
use crate::resource::ResourceInfo;

/// The Scale of a stored object.
pub fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector")
        .and_then(|s| skiff_common::LabelSelector::from_json(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": object::name(obj),
            "namespace": object::namespace(obj),
            "uid": object::uid(obj),
            "resourceVersion": object::resource_version(obj),
            "creationTimestamp": obj.pointer("/metadata/creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

/// The replica count a Scale asks for, validated as Kubernetes validates a Scale.
pub fn desired_replicas(info: &ResourceInfo, name: &str, scale: &Value) -> ApiResult<i64> {
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::invalid(info, name, vec![Cause::required("spec.replicas")]))?;
    if replicas < 0 {
        return Err(ApiError::new(422, crate::error::Reason::Invalid, format!(
            "Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
        )));
    }
    Ok(replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_shows_replicas_and_the_selector() {
        let d = json!({"metadata": {"name": "web", "namespace": "d", "uid": "u"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web");
    }

    #[test]
    fn negative_replicas_are_invalid() {
        let info = &crate::registry::apps::deployment::INFO;
        let err = desired_replicas(info, "web", &json!({"spec": {"replicas": -1}})).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(desired_replicas(info, "web", &json!({"spec": {}})).is_err());
    }
}
