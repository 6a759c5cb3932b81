//! DELETE of one object and of a collection.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::list::list_value;
use super::HandlerRequest;
use crate::error::{ApiError, ApiResult};
use crate::object;
use crate::registry::generic::delete::{delete_one, DeleteOptions, DeleteOutcome};
use crate::selection::Selection;
use crate::storage::ListResult;
use crate::wire::{decode_body, json_response};

/// DeleteOptions from the body, overridden by query parameters, as kube-apiserver merges them.
fn delete_options(req: &HandlerRequest<'_>) -> ApiResult<DeleteOptions> {
    let params = req.params;
    let mut opts: DeleteOptions = if req.body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        serde_json::from_value(decode_body(req.headers, req.body)?)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    if let Some(g) = params.int("gracePeriodSeconds")? {
        opts.grace_period_seconds = Some(g);
    }
    if let Some(p) = params.get("propagationPolicy") {
        opts.propagation_policy = Some(p.to_string());
    }
    if let Some(o) = params.get("orphanDependents") {
        opts.orphan_dependents = Some(o == "true");
    }
    if params.dry_run() {
        opts.dry_run = vec!["All".into()];
    }
    opts.validate()?;
    Ok(opts)
}

pub async fn delete(req: &HandlerRequest<'_>) -> ApiResult<Response> {
    let opts = delete_options(req)?;
    let t = &req.target;
    Ok(
        match delete_one(req.resource(), &t.key(), t.name(), &opts).await? {
            DeleteOutcome::Deleted(body) => json_response(StatusCode::OK, &body),
            DeleteOutcome::Pending(obj) => json_response(StatusCode::ACCEPTED, &obj),
        },
    )
}

pub async fn delete_collection(req: &HandlerRequest<'_>) -> ApiResult<Response> {
    let opts = delete_options(req)?;
    let t = &req.target;
    let strategy = t.strategy();
    let selection = Selection::parse(
        strategy,
        req.params.get("labelSelector"),
        req.params.get("fieldSelector"),
    )?;
    // Read from etcd, so no object the cache has not seen yet survives.
    let page = req
        .resource()
        .storage
        .store
        .list(&t.prefix(), None, 0, 0)
        .await?;
    let mut deleted = Vec::new();
    for (key, v) in page.items {
        if !selection.matches(&v.value) {
            continue;
        }
        match delete_one(req.resource(), &key, object::name(&v.value), &opts).await {
            Ok(DeleteOutcome::Deleted(body)) if body.get("kind") == Some(&json!("Status")) => {
                deleted.push(v.value)
            }
            Ok(DeleteOutcome::Deleted(obj) | DeleteOutcome::Pending(obj)) => deleted.push(obj),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let result = ListResult {
        items: Vec::new(),
        revision: page.revision,
        continue_token: None,
        remaining: None,
    };
    Ok(json_response(
        StatusCode::OK,
        &list_value(strategy.info(), deleted, &result),
    ))
}
