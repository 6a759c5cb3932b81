//! HTTP handlers of the discovery and OpenAPI documents.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::discovery;
use crate::error::ApiError;
use crate::openapi;
use crate::state::AppState;
use crate::wire::json_response;

fn found(doc: Option<Value>) -> Response {
    match doc {
        Some(d) => json_response(StatusCode::OK, &d),
        None => ApiError::not_found_path().into_response(),
    }
}

pub async fn version() -> Response {
    json_response(StatusCode::OK, &discovery::version())
}

pub async fn core_versions(State(state): State<Arc<AppState>>) -> Response {
    json_response(
        StatusCode::OK,
        &discovery::core_versions(&state.address.to_string()),
    )
}

pub async fn groups(State(state): State<Arc<AppState>>) -> Response {
    json_response(
        StatusCode::OK,
        &discovery::groups(state.registry.resources()),
    )
}

pub async fn core_resources(
    State(state): State<Arc<AppState>>,
    Path(version): Path<String>,
) -> Response {
    found(discovery::resources(
        state.registry.resources(),
        "",
        &version,
    ))
}

pub async fn api_group(State(state): State<Arc<AppState>>, Path(group): Path<String>) -> Response {
    found(discovery::group(state.registry.resources(), &group))
}

pub async fn group_resources(
    State(state): State<Arc<AppState>>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    found(discovery::resources(
        state.registry.resources(),
        &group,
        &version,
    ))
}

pub async fn openapi_v2(headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("protobuf") {
        let content_type = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
        return (
            [(header::CONTENT_TYPE, content_type)],
            openapi::openapi_v2_protobuf(),
        )
            .into_response();
    }
    json_response(StatusCode::OK, &openapi::openapi_v2_json())
}

pub async fn openapi_v3_index(State(state): State<Arc<AppState>>) -> Response {
    json_response(
        StatusCode::OK,
        &openapi::openapi_v3_index(state.registry.resources()),
    )
}

pub async fn openapi_v3(State(state): State<Arc<AppState>>, Path(path): Path<String>) -> Response {
    let kinds = state.registry.resources();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let doc = match segs.as_slice() {
        ["api", v] => openapi::openapi_v3_document(kinds, "", v),
        ["apis", g, v] => openapi::openapi_v3_document(kinds, g, v),
        _ => None,
    };
    found(doc)
}
