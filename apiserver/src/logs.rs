//! `pods/log`: served by the node's agent; the apiserver proxies to it.

use axum::response::Response;

use crate::error::{ApiError, ApiResult};
use crate::rest::{Params, Target};
use crate::server::AppState;

pub async fn pod_log(state: &AppState, t: &Target, _params: &Params) -> ApiResult<Response> {
    let pod = state
        .store
        .get(&t.key_for_log())
        .await?
        .ok_or_else(|| ApiError::not_found(t.info, t.name.as_deref().unwrap_or("")))?;
    let node = pod
        .value
        .pointer("/spec/nodeName")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {} does not have a host assigned",
            t.name.as_deref().unwrap_or("")
        )));
    }
    Err(ApiError::unavailable(format!(
        "no agent endpoint is known for node {node}"
    )))
}
