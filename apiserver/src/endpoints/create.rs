//! POST of a new object.

use axum::http::StatusCode;
use axum::response::Response;

use super::negotiation::respond;
use super::HandlerRequest;
use crate::error::ApiResult;
use crate::registry::generic::create::{create as create_object, CreateOptions};
use crate::registry::generic::fields::duplicate_fields;
use crate::wire::{decode_body, with_warnings};

pub async fn create(req: &HandlerRequest<'_>) -> ApiResult<Response> {
    let obj = decode_body(req.headers, req.body)?;
    let manager = req.field_manager();
    let duplicates = duplicate_fields(req.body);
    let opts = CreateOptions {
        dry_run: req.params.dry_run(),
        field_manager: Some(&manager),
        field_validation: req.params.get("fieldValidation"),
        duplicates: &duplicates,
    };
    let (created, warnings) = create_object(
        &req.state.registry,
        req.resource(),
        req.target.namespace.as_deref(),
        obj,
        &opts,
    )
    .await?;
    Ok(with_warnings(
        respond(
            req.headers,
            req.target.strategy(),
            StatusCode::CREATED,
            &created,
        ),
        &warnings,
    ))
}
