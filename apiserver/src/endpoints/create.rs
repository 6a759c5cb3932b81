//! POST of a new object.

use axum::http::StatusCode;
use axum::response::Response;

use super::negotiation::respond;
use super::HandlerRequest;
use crate::error::{ApiError, ApiResult};
use crate::registry::generic::create::{create as create_object, CreateOptions};
use crate::registry::generic::fields::duplicate_fields;
use crate::registry::generic::metadata::check_type_meta;
use crate::registry::strategy::{VirtualCreate, VirtualRequest};
use crate::wire::{decode_body, with_warnings};

pub async fn create(req: &HandlerRequest<'_>) -> ApiResult<Response> {
    let obj = decode_body(req.headers, req.body)?;
    let manager = req.field_manager();
    let duplicates = duplicate_fields(req.body);
    let opts = CreateOptions {
        writer: Some(req.writer()),
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

/// POST of a computed resource (an access review): decoded and validated like any object,
/// answered by the kind, never stored.
pub fn create_virtual(
    req: &HandlerRequest<'_>,
    computed: &dyn VirtualCreate,
) -> ApiResult<Response> {
    let strategy = req.target.strategy();
    let info = strategy.info();
    let mut obj = decode_body(req.headers, req.body)?;
    check_type_meta(info, &mut obj)?;
    let obj = strategy.decode_and_default(obj, true)?;
    // No metadata rules: reviews have no name.
    let mut causes = Vec::new();
    strategy.validate(&obj, &mut causes);
    if !causes.is_empty() {
        return Err(ApiError::invalid(info, "", causes));
    }
    let answered = computed.create(VirtualRequest {
        user: req.user,
        authorizer: req.state.auth.authorizer.as_ref(),
        namespace: req.target.namespace.as_deref(),
        object: obj,
    })?;
    Ok(respond(
        req.headers,
        strategy,
        StatusCode::CREATED,
        &answered,
    ))
}
