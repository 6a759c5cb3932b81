//! Create: type meta and server-owned metadata, decode and defaults, managed fields, field
//! validation, the kind's validation, admission, then an etcd create with the kind's
//! allocations in the same transaction.

use std::collections::HashSet;

use serde_json::Value;

use super::fields::field_validation;
use super::metadata::{check_type_meta, init_metadata};
use super::WRITE_ATTEMPTS;
use crate::error::{ApiError, ApiResult, Reason};
use crate::managed_fields;
use crate::object;
use crate::registry::strategy::WriteContext;
use crate::registry::validation::validate_new;
use crate::registry::{Registry, Resource};
use crate::storage::{set_resource_version, WriteOutcome};

/// How a client's create is to be handled.
#[derive(Debug, Default)]
pub struct CreateOptions<'a> {
    pub dry_run: bool,
    /// Who writes, for managedFields (None: already tracked, as by server-side apply).
    pub field_manager: Option<&'a str>,
    /// The `fieldValidation` parameter.
    pub field_validation: Option<&'a str>,
    /// Keys the body held twice.
    pub duplicates: &'a [String],
    /// Who writes, for kinds that check the writer's own rights.
    pub writer: Option<WriteContext<'a>>,
}

/// Create `obj` in `namespace`; returns the stored object and the field validation warnings.
pub async fn create(
    registry: &Registry,
    resource: &Resource,
    namespace: Option<&str>,
    mut obj: Value,
    opts: &CreateOptions<'_>,
) -> ApiResult<(Value, Vec<String>)> {
    let strategy = resource.strategy.as_ref();
    let info = strategy.info();
    check_type_meta(info, &mut obj)?;
    init_metadata(strategy, &mut obj, namespace)?;
    let name = object::name(&obj).to_string();
    let sent = obj.clone();
    let mut obj = strategy.decode_and_default(obj, true)?;
    if let Some(m) = opts.field_manager {
        let av = info.api_version();
        managed_fields::track_update(
            None,
            &mut obj,
            m,
            &av,
            Some(strategy.patch_schema()),
            &object::now(),
        );
    }
    let warnings = field_validation(opts.field_validation, &sent, &obj, opts.duplicates)?;
    if let Some(ns) = namespace {
        for plugin in registry.admission() {
            plugin.mutate_create(registry, info, ns, &mut obj).await?;
        }
    }
    let causes = validate_new(strategy, &obj);
    if !causes.is_empty() {
        return Err(ApiError::invalid(info, &name, causes));
    }
    if let Some(writer) = &opts.writer {
        strategy.check_writer(writer, &obj)?;
    }
    if let Some(ns) = namespace {
        for plugin in registry.admission() {
            plugin.admit_create(registry, info, ns, &name).await?;
        }
    }
    if opts.dry_run {
        return Ok((obj, warnings));
    }
    let key = info.key(namespace, &name);
    Ok((store_new(resource, &key, obj).await?, warnings))
}

/// Create an object on the server's own behalf (bootstrap namespaces and services).
/// Returns `Ok(None)` when it already exists.
pub async fn create_internal(
    resource: &Resource,
    namespace: Option<&str>,
    mut obj: Value,
) -> ApiResult<Option<Value>> {
    let strategy = resource.strategy.as_ref();
    let info = strategy.info();
    check_type_meta(info, &mut obj)?;
    init_metadata(strategy, &mut obj, namespace)?;
    let obj = strategy.decode_and_default(obj, true)?;
    let causes = validate_new(strategy, &obj);
    if !causes.is_empty() {
        return Err(ApiError::invalid(info, object::name(&obj), causes));
    }
    let key = info.key(namespace, object::name(&obj));
    match store_new(resource, &key, obj).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.reason == Reason::AlreadyExists => Ok(None),
        Err(e) => Err(e),
    }
}

/// Create `obj` (already admitted) under `key`, with the kind's allocations.
async fn store_new(resource: &Resource, key: &str, mut obj: Value) -> ApiResult<Value> {
    let info = resource.info();
    let allocation = resource.strategy.allocation();
    let mut taken = HashSet::new();
    for _ in 0..WRITE_ATTEMPTS {
        let plan = match allocation {
            Some(a) => a
                .plan(&mut obj, None, &taken)
                .map_err(|c| ApiError::invalid(info, object::name(&obj), c))?,
            None => Default::default(),
        };
        match resource.storage.store.create(key, &obj, &plan.side).await? {
            WriteOutcome::Written(rev) => {
                set_resource_version(&mut obj, rev);
                return Ok(obj);
            }
            WriteOutcome::Conflict => {
                return Err(ApiError::already_exists(info, object::name(&obj)))
            }
            WriteOutcome::SideKeyTaken(k) => {
                let Some(a) = allocation else {
                    return Err(ApiError::internal(format!("unexpected side key {k}")));
                };
                if plan.requested.contains(&k) {
                    return Err(ApiError::invalid(
                        info,
                        object::name(&obj),
                        vec![a.taken_cause(&k, true)],
                    ));
                }
                taken.insert(k);
                a.forget_taken(&mut obj, &taken);
            }
        }
    }
    Err(ApiError::internal(
        "could not allocate a unique IP or port; try again",
    ))
}
