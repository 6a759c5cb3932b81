//! LIST: selection, then the storage layer's answer (cache or etcd, its decision), written
//! item by item from the shared cached objects, or as a Table.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::negotiation::Format;
use super::HandlerRequest;
use crate::error::ApiResult;
use crate::resource::ResourceInfo;
use crate::selection::Selection;
use crate::storage::{ListOptions, ListResult};
use crate::wire::json_response;

/// The list's `metadata`: its revision, and where to continue when paged.
fn list_meta(result: &ListResult) -> Value {
    let mut meta = json!({"resourceVersion": result.revision.to_string()});
    if let Some(c) = &result.continue_token {
        meta["continue"] = json!(c);
        if let Some(r) = result.remaining.filter(|r| *r > 0) {
            meta["remainingItemCount"] = json!(r);
        }
    }
    meta
}

/// A list body serialized item by item from shared cached objects, without copying them.
fn list_response(info: &ResourceInfo, result: &ListResult) -> Response {
    let mut out = Vec::with_capacity(256 + result.items.len() * 1024);
    let head = json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": list_meta(result)});
    let head = serde_json::to_vec(&head).unwrap_or_default();
    // `{"kind":..,"metadata":{..}}` minus its closing brace, then the items array.
    out.extend_from_slice(&head[..head.len() - 1]);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in result.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, &**item).expect("JSON values serialize");
    }
    out.extend_from_slice(b"]}");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

/// The list as one JSON value (for Tables and deletecollection answers).
pub fn list_value(info: &ResourceInfo, items: Vec<Value>, result: &ListResult) -> Value {
    json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": list_meta(result), "items": items})
}

pub fn list_options(req: &HandlerRequest<'_>) -> ApiResult<ListOptions> {
    let p = req.params;
    Ok(ListOptions {
        resource_version: p.get("resourceVersion").map(str::to_string),
        resource_version_match: p.get("resourceVersionMatch").map(str::to_string),
        limit: p.int("limit")?.unwrap_or(0).max(0),
        continue_token: p.get("continue").map(str::to_string),
    })
}

pub async fn list(req: &HandlerRequest<'_>) -> ApiResult<Response> {
    let t = &req.target;
    let strategy = t.strategy();
    let selection = Selection::parse(
        strategy,
        req.params.get("labelSelector"),
        req.params.get("fieldSelector"),
    )?;
    let opts = list_options(req)?;
    let result = req
        .resource()
        .storage
        .list(&t.prefix(), &opts, |o| {
            selection.is_everything() || selection.matches(o)
        })
        .await?;
    let format = Format::of(req.headers, req.params);
    if format.table.is_none() {
        return Ok(list_response(strategy.info(), &result));
    }
    let items = result.items.iter().map(|o| Value::clone(o)).collect();
    let value = list_value(strategy.info(), items, &result);
    Ok(json_response(
        StatusCode::OK,
        &format.list(strategy, &value),
    ))
}
