//! The PATCH content types: JSON merge patch (RFC 7386), JSON patch (RFC 6902), Kubernetes
//! strategic merge patch, and the apply patch of server-side apply.

use serde_json::Value;

use crate::error::Reason;
use crate::error::{ApiError, ApiResult};
use crate::registry::strategy::KindStrategy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> ApiResult<PatchType> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" => Ok(PatchType::Apply),
            other => Err(ApiError::new(
                415,
                Reason::UnsupportedMediaType,
                format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"),
            )),
        }
    }
}

/// Parse a patch body: JSON for every type; YAML too for apply patches.
pub fn parse_body(ty: PatchType, body: &[u8]) -> ApiResult<Value> {
    let parsed = if ty == PatchType::Apply {
        skiff_common::yaml::from_slice::<Value>(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Apply `patch` to the JSON form of an existing object.
pub fn apply(
    strategy: &dyn KindStrategy,
    ty: PatchType,
    current: &Value,
    patch: &Value,
) -> ApiResult<Value> {
    match ty {
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            let mut doc = current.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    Reason::Invalid,
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
            Ok(doc)
        }
        PatchType::Strategic | PatchType::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "strategic merge patch must be a JSON object",
                ));
            }
            skiff_common::apply_patch(current, patch, Some(strategy.patch_schema())).map_err(|e| {
                ApiError::new(422, Reason::Invalid, format!("unable to apply patch: {e}"))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::apps::deployment::DeploymentStrategy;
    use crate::registry::core::configmap::ConfigMapStrategy;
    use serde_json::json;

    #[test]
    fn merge_patch_null_removes_a_key() {
        let cur = json!({"data": {"a": "1", "b": "2"}});
        let out = apply(
            &ConfigMapStrategy,
            PatchType::Merge,
            &cur,
            &json!({"data": {"a": null, "c": "3"}}),
        )
        .unwrap();
        assert_eq!(out, json!({"data": {"b": "2", "c": "3"}}));
    }

    #[test]
    fn json_patch_test_failure_is_rejected() {
        let cur = json!({"data": {"a": "1"}});
        let patch = json!([{"op": "test", "path": "/data/a", "value": "2"}]);
        assert_eq!(
            apply(&ConfigMapStrategy, PatchType::Json, &cur, &patch)
                .unwrap_err()
                .code,
            422
        );
    }

    #[test]
    fn strategic_patch_merges_containers_by_name() {
        let cur = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "one"}, {"name": "b", "image": "two"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "three"}]}}}});
        let out = apply(&DeploymentStrategy, PatchType::Strategic, &cur, &patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "one"
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1]["image"],
            "three"
        );
    }

    #[test]
    fn content_types_map_to_patch_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json").unwrap(),
            PatchType::Merge
        );
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json; charset=utf-8")
                .unwrap(),
            PatchType::Strategic
        );
        assert_eq!(
            PatchType::from_content_type("text/plain").unwrap_err().code,
            415
        );
    }
}
