//! The metadata the server owns: type meta checked against the URL, uid, timestamps,
//! generation, generated names.

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::object;
use crate::registry::strategy::KindStrategy;
use crate::resource::ResourceInfo;

pub fn check_type_meta(info: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    let api_version = info.api_version();
    if let Some(kind) = obj.get("kind").and_then(Value::as_str) {
        if kind != info.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                info.kind
            )));
        }
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        if av != api_version {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({api_version})"
            )));
        }
    }
    obj["kind"] = json!(info.kind);
    obj["apiVersion"] = json!(api_version);
    Ok(())
}

/// Fill the metadata the server owns on a new object.
pub fn init_metadata(
    strategy: &dyn KindStrategy,
    obj: &mut Value,
    namespace: Option<&str>,
) -> ApiResult<()> {
    let info = strategy.info();
    let meta = object::meta_mut(obj);
    if let Some(ns) = namespace {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(given) if !given.is_empty() && given != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => {
                meta.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name {
        if let Some(base) = meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            let name = format!("{base}{}", object::random_suffix());
            meta.insert("name".into(), json!(name));
        }
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(object::now()));
    for k in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(k);
    }
    if info.tracks_generation {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    if strategy.has_status_subresource() && !strategy.keeps_status_on_create() {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
    Ok(())
}
