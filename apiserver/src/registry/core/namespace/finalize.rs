//! `namespaces/<name>/finalize`: the namespace controller clears `spec.finalizers` once the
//! namespace is empty; only that field changes.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use futures::future::BoxFuture;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::registry::generic::metadata::check_type_meta;
use crate::registry::generic::update::{
    body_precondition, guaranteed_update, Scope, UpdateOptions,
};
use crate::registry::strategy::{
    CustomSubresource, SubresourceDef, SubresourceHandler, SubresourceRequest,
};
use crate::wire::{decode_body, json_response};

pub const FINALIZE: SubresourceDef = SubresourceDef {
    name: "finalize",
    kind: "Namespace",
    group: "",
    version: "",
    verbs: &["update"],
    handler: SubresourceHandler::Custom(&Finalize),
};

struct Finalize;

impl CustomSubresource for Finalize {
    fn handle<'a>(&'a self, req: SubresourceRequest<'a>) -> BoxFuture<'a, ApiResult<Response>> {
        Box::pin(finalize(req))
    }
}

/// The stored namespace with the desired one's `spec.finalizers`.
fn take_finalizers(current: &Value, desired: &Value) -> Value {
    let mut n = current.clone();
    n["spec"]["finalizers"] = desired
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or(json!([]));
    n
}

async fn finalize(req: SubresourceRequest<'_>) -> ApiResult<Response> {
    if req.method != Method::PUT {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let mut obj = decode_body(req.headers, req.body)?;
    check_type_meta(req.resource.info(), &mut obj)?;
    let precondition = body_precondition(&obj)?;
    let opts = UpdateOptions {
        writer: None,
        scope: Scope::Custom(take_finalizers),
        dry_run: req.params.dry_run(),
        field_manager: None,
    };
    let (stored, _) = guaranteed_update(req.resource, None, req.name, opts, |_| {
        Ok((obj.clone(), precondition))
    })
    .await?;
    Ok(json_response(StatusCode::OK, &stored))
}
