//! `pods/binding`: the scheduler assigns a pod to a node, once.

use futures::future::BoxFuture;
use serde_json::{json, Value};

use axum::http::StatusCode;
use axum::response::Response;

use crate::error::{ApiError, ApiResult, Cause};
use crate::object;
use crate::registry::generic::WRITE_ATTEMPTS;
use crate::registry::strategy::{
    CustomSubresource, SubresourceDef, SubresourceHandler, SubresourceRequest,
};
use crate::storage::{SideKeys, WriteOutcome};
use crate::wire::{decode_body, json_response};

pub const BINDING: SubresourceDef = SubresourceDef {
    name: "binding",
    kind: "Binding",
    group: "",
    version: "",
    verbs: &["create"],
    handler: SubresourceHandler::Custom(&Bind),
};

struct Bind;

impl CustomSubresource for Bind {
    fn handle<'a>(&'a self, req: SubresourceRequest<'a>) -> BoxFuture<'a, ApiResult<Response>> {
        Box::pin(bind(req))
    }
}

async fn bind(req: SubresourceRequest<'_>) -> ApiResult<Response> {
    if req.method != axum::http::Method::POST {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let pods = req.resource.info();
    let name = req.name;
    let binding = decode_body(req.headers, req.body)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            pods,
            name,
            vec![Cause::required("target.name")],
        ));
    }
    let key = req.key();
    let store = &req.resource.storage.store;
    let expected_uid = binding
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    for _ in 0..WRITE_ATTEMPTS {
        let current = store
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::not_found(pods, name))?;
        let mut pod = current.value.clone();
        if expected_uid
            .as_deref()
            .is_some_and(|u| u != object::uid(&pod))
        {
            return Err(ApiError::conflict(
                pods,
                name,
                "the pod's UID does not match the binding",
            ));
        }
        if object::is_deleting(&pod) {
            return Err(ApiError::conflict(
                pods,
                name,
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        if let Some(existing) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::conflict(
                pods,
                name,
                &format!("pod {name} is already assigned to node \"{existing}\""),
            ));
        }
        pod["spec"]["nodeName"] = json!(node);
        set_condition(&mut pod, "PodScheduled", "True", None, None);
        match store
            .update(&key, current.revision, &pod, &SideKeys::default())
            .await?
        {
            WriteOutcome::Written(_) => {
                return Ok(json_response(
                    StatusCode::CREATED,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                ));
            }
            _ => continue,
        }
    }
    Err(ApiError::stale(pods, name))
}

/// Set a status condition, keeping lastTransitionTime when the status does not change.
pub fn set_condition(
    obj: &mut Value,
    ty: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) {
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    let conditions = obj["status"]
        .as_object_mut()
        .expect("status is an object")
        .entry("conditions")
        .or_insert_with(|| json!([]));
    let Some(list) = conditions.as_array_mut() else {
        return;
    };
    let mut cond = json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": object::now()});
    if let Some(r) = reason {
        cond["reason"] = json!(r);
    }
    if let Some(m) = message {
        cond["message"] = json!(m);
    }
    match list.iter_mut().find(|c| c["type"] == ty) {
        Some(existing) => {
            if existing["status"] == status {
                cond["lastTransitionTime"] = existing["lastTransitionTime"].clone();
            }
            *existing = cond;
        }
        None => list.push(cond),
    }
}
