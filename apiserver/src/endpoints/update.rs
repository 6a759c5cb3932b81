//! PUT (update), PATCH (JSON, merge, strategic merge) and server-side apply, of the object or
//! of its status.

use axum::http::{header, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::negotiation::respond;
use super::HandlerRequest;
use crate::error::{ApiError, ApiResult, Reason};
use crate::managed_fields;
use crate::object;
use crate::patch::{self, PatchType};
use crate::registry::generic::create::{create as create_object, CreateOptions};
use crate::registry::generic::fields::{duplicate_fields, field_validation};
use crate::registry::generic::metadata::check_type_meta;
pub use crate::registry::generic::update::Scope;
use crate::registry::generic::update::{body_precondition, guaranteed_update, UpdateOptions};
use crate::resource::ResourceInfo;
use crate::wire::{decode_body, with_warnings};

pub async fn update(req: &HandlerRequest<'_>, scope: Scope) -> ApiResult<Response> {
    let t = &req.target;
    let strategy = t.strategy();
    let mut obj = decode_body(req.headers, req.body)?;
    check_type_meta(strategy.info(), &mut obj)?;
    if let (Some(ns), Some(given)) = (&t.namespace, object::namespace(&obj)) {
        if !given.is_empty() && given != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let precondition = body_precondition(&obj)?;
    // Unknown and duplicate fields are judged before anything is written.
    let warnings = if matches!(scope, Scope::Main) {
        let decoded = strategy.decode_and_default(obj.clone(), false)?;
        field_validation(
            req.params.get("fieldValidation"),
            &obj,
            &decoded,
            &duplicate_fields(req.body),
        )?
    } else {
        Vec::new()
    };
    let manager = req.field_manager();
    let opts = UpdateOptions {
        writer: Some(req.writer()),
        scope,
        dry_run: req.params.dry_run(),
        field_manager: Some(&manager),
    };
    let (stored, _) = guaranteed_update(
        req.resource(),
        t.namespace.as_deref(),
        t.name(),
        opts,
        |_| Ok((obj.clone(), precondition)),
    )
    .await?;
    Ok(with_warnings(
        respond(req.headers, strategy, StatusCode::OK, &stored),
        &warnings,
    ))
}

/// The patch type named by the request's Content-Type.
pub fn patch_type(req: &HandlerRequest<'_>) -> ApiResult<PatchType> {
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    PatchType::from_content_type(content_type)
}

pub async fn patch(req: &HandlerRequest<'_>, scope: Scope) -> ApiResult<Response> {
    let t = &req.target;
    let strategy = t.strategy();
    let ty = patch_type(req)?;
    let patch_body = patch::parse_body(ty, req.body)?;
    if ty == PatchType::Apply {
        return server_side_apply(req, patch_body, scope).await;
    }
    let manager = req.field_manager();
    let opts = UpdateOptions {
        writer: Some(req.writer()),
        scope,
        dry_run: req.params.dry_run(),
        field_manager: Some(&manager),
    };
    let (stored, _) = guaranteed_update(
        req.resource(),
        t.namespace.as_deref(),
        t.name(),
        opts,
        |current| {
            let patched = patch::apply(strategy, ty, current, &patch_body)?;
            // A resourceVersion in the patch is a precondition, unless the patch left it as it was.
            let pinned = match ty {
                PatchType::Json => None,
                _ => patch_body
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            let precondition = pinned
                .map(|rv| {
                    rv.parse::<i64>().map_err(|_| {
                        ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                    })
                })
                .transpose()?;
            Ok((patched, precondition))
        },
    )
    .await?;
    Ok(respond(req.headers, strategy, StatusCode::OK, &stored))
}

/// Server-side apply: merge the applied configuration, remove what this manager applied before
/// and no longer does, and refuse (409) to change fields another manager owns unless forced.
async fn server_side_apply(
    req: &HandlerRequest<'_>,
    mut applied: Value,
    scope: Scope,
) -> ApiResult<Response> {
    let t = &req.target;
    let strategy = t.strategy();
    let info = strategy.info();
    let Some(manager) = req.params.get("fieldManager").map(str::to_string) else {
        return Err(ApiError::invalid(
            info,
            t.name(),
            vec![crate::error::Cause {
                reason: "FieldValueRequired",
                field: "fieldManager".into(),
                message: "Required value: is required for apply patch".into(),
            }],
        ));
    };
    if !applied.is_object() {
        return Err(ApiError::bad_request("apply patch must be an object"));
    }
    check_type_meta(info, &mut applied)?;
    let given = object::name(&applied);
    if !given.is_empty() && given != t.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({})",
            t.name()
        )));
    }
    let force = req.params.flag("force");
    let av = info.api_version();
    let schema = Some(strategy.patch_schema());
    let exists = req.resource().storage.get(&t.key()).await?.is_some();
    if matches!(scope, Scope::Main) && !exists {
        object::meta_mut(&mut applied).insert("name".into(), json!(t.name()));
        let created =
            managed_fields::apply(None, &applied, &manager, &av, schema, force, &object::now())
                .map_err(|c| conflict_error(info, t.name(), &c))?;
        let opts = CreateOptions {
            writer: Some(req.writer()),
            dry_run: req.params.dry_run(),
            field_manager: None,
            field_validation: req.params.get("fieldValidation"),
            duplicates: &[],
        };
        let (created, warnings) = create_object(
            &req.state.registry,
            req.resource(),
            t.namespace.as_deref(),
            created,
            &opts,
        )
        .await?;
        return Ok(with_warnings(
            respond(req.headers, strategy, StatusCode::CREATED, &created),
            &warnings,
        ));
    }
    let precondition = body_precondition(&applied)?;
    let opts = UpdateOptions {
        writer: Some(req.writer()),
        scope,
        dry_run: req.params.dry_run(),
        field_manager: None,
    };
    let (stored, _) = guaranteed_update(
        req.resource(),
        t.namespace.as_deref(),
        t.name(),
        opts,
        |current| {
            let merged = managed_fields::apply(
                Some(current),
                &applied,
                &manager,
                &av,
                schema,
                force,
                &object::now(),
            )
            .map_err(|c| conflict_error(info, t.name(), &c))?;
            Ok((merged, precondition))
        },
    )
    .await?;
    Ok(respond(req.headers, strategy, StatusCode::OK, &stored))
}

/// 409 Conflict naming each field and its owner, as kube-apiserver reports apply conflicts.
fn conflict_error(
    info: &ResourceInfo,
    name: &str,
    conflicts: &[managed_fields::Conflict],
) -> ApiError {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with \"{}\" using {}: {}",
                c.manager,
                c.api_version,
                managed_fields::render_path(&c.path)
            )
        })
        .collect();
    let message = if lines.len() == 1 {
        format!("Apply failed with 1 conflict: {}", lines[0])
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            lines.len(),
            lines.join("\n")
        )
    };
    let mut err = ApiError::new(409, Reason::Conflict, message);
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version), "field": managed_fields::render_path(&c.path)}))
        .collect();
    let mut details = json!({"name": name, "kind": info.plural, "causes": causes});
    if !info.group.is_empty() {
        details["group"] = json!(info.group);
    }
    err.details = Some(Box::new(details));
    err
}
