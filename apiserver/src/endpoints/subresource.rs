//! Subresources other than status: `scale` (generic over spec.replicas) and the ones a kind
//! serves itself (binding, eviction, log, finalize).

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::update::patch_type;
use super::HandlerRequest;
use crate::error::{ApiError, ApiResult};
use crate::patch::{self, PatchType};
use crate::registry::generic::update::{
    body_precondition, guaranteed_update, Scope, UpdateOptions,
};
use crate::registry::scale::{desired_replicas, scale_of};
use crate::registry::strategy::{CustomSubresource, SubresourceRequest};
use crate::wire::{decode_body, json_response};

pub async fn custom(
    req: &HandlerRequest<'_>,
    handler: &'static dyn CustomSubresource,
) -> ApiResult<Response> {
    let t = &req.target;
    handler
        .handle(SubresourceRequest {
            registry: &req.state.registry,
            resource: req.resource(),
            namespace: t.namespace.as_deref(),
            name: t.name(),
            method: req.method,
            headers: req.headers,
            params: req.params,
            body: req.body,
            user: req.user,
            agent_client: req.state.auth.agent_client.as_ref(),
            service_account_tokens: &req.state.auth.service_account_tokens,
        })
        .await
}

pub async fn scale(req: &HandlerRequest<'_>) -> ApiResult<Response> {
    match *req.method {
        Method::GET => {
            let t = &req.target;
            let current = req
                .resource()
                .storage
                .get(&t.key())
                .await?
                .ok_or_else(|| ApiError::not_found(t.kind.info(), t.name()))?;
            Ok(json_response(StatusCode::OK, &scale_of(&current.value)))
        }
        Method::PUT => {
            let scale = decode_body(req.headers, req.body)?;
            update_scale(req, scale).await
        }
        Method::PATCH => patch_scale(req).await,
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

async fn update_scale(req: &HandlerRequest<'_>, scale: Value) -> ApiResult<Response> {
    let t = &req.target;
    let replicas = desired_replicas(t.kind.info(), t.name(), &scale)?;
    let precondition = body_precondition(&scale)?;
    let manager = req.field_manager();
    let opts = UpdateOptions {
        writer: Some(req.writer()),
        scope: Scope::Main,
        dry_run: false,
        field_manager: Some(&manager),
    };
    let (stored, _) = guaranteed_update(
        req.resource(),
        t.namespace.as_deref(),
        t.name(),
        opts,
        |current| {
            let mut next = current.clone();
            next["spec"]["replicas"] = serde_json::json!(replicas);
            Ok((next, precondition))
        },
    )
    .await?;
    Ok(json_response(StatusCode::OK, &scale_of(&stored)))
}

async fn patch_scale(req: &HandlerRequest<'_>) -> ApiResult<Response> {
    let t = &req.target;
    let ty = patch_type(req)?;
    let patch_body = patch::parse_body(ty, req.body)?;
    let current = req
        .resource()
        .storage
        .get(&t.key())
        .await?
        .ok_or_else(|| ApiError::not_found(t.kind.info(), t.name()))?;
    // A Scale has no patch strategies of its own: strategic merge is a merge patch here.
    let ty = if ty == PatchType::Json {
        ty
    } else {
        PatchType::Merge
    };
    let mut scale = patch::apply(t.strategy(), ty, &scale_of(&current.value), &patch_body)?;
    if let Some(m) = scale["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    update_scale(req, scale).await
}
