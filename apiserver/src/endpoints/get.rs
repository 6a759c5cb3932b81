//! GET of one object (and of its status).

use axum::http::StatusCode;
use axum::response::Response;

use super::negotiation::Format;
use super::HandlerRequest;
use crate::error::{ApiError, ApiResult};
use crate::wire::json_response;

pub async fn get(req: &HandlerRequest<'_>) -> ApiResult<Response> {
    let t = &req.target;
    let current = req
        .resource()
        .storage
        .get(&t.key())
        .await?
        .ok_or_else(|| ApiError::not_found(t.kind.info(), t.name()))?;
    Ok(json_response(
        StatusCode::OK,
        &Format::of(req.headers, req.params).object(t.strategy(), &current.value),
    ))
}
