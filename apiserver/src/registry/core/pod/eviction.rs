//! `pods/eviction`: delete a pod on behalf of `kubectl drain`, with the eviction's
//! DeleteOptions.

use axum::http::StatusCode;
use axum::response::Response;
use futures::future::BoxFuture;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::registry::generic::delete::{delete_one, DeleteOptions};
use crate::registry::strategy::{
    CustomSubresource, SubresourceDef, SubresourceHandler, SubresourceRequest,
};
use crate::wire::{decode_body, json_response};

pub const EVICTION: SubresourceDef = SubresourceDef {
    name: "eviction",
    kind: "Eviction",
    group: "policy",
    version: "v1",
    verbs: &["create"],
    handler: SubresourceHandler::Custom(&Evict),
};

struct Evict;

impl CustomSubresource for Evict {
    fn handle<'a>(&'a self, req: SubresourceRequest<'a>) -> BoxFuture<'a, ApiResult<Response>> {
        Box::pin(evict(req))
    }
}

async fn evict(req: SubresourceRequest<'_>) -> ApiResult<Response> {
    if req.method != axum::http::Method::POST {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let eviction = if req.body.is_empty() {
        json!({})
    } else {
        decode_body(req.headers, req.body)?
    };
    let opts: DeleteOptions = eviction
        .get("deleteOptions")
        .map(|o| serde_json::from_value(o.clone()))
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("invalid deleteOptions: {e}")))?
        .unwrap_or_default();
    delete_one(req.resource, &req.key(), req.name, &opts).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}
