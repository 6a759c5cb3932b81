//! Update: read, change, admit and compare-and-swap, retrying on races unless the client
//! pinned a resourceVersion. Which half of the object a write may change is its [`Scope`].

use std::collections::HashSet;

use serde_json::{json, Value};

use super::WRITE_ATTEMPTS;
use crate::error::{ApiError, ApiResult, Cause, Reason};
use crate::managed_fields;
use crate::object;
use crate::registry::strategy::{KindStrategy, WriteContext};
use crate::registry::validation::validate_changed;
use crate::registry::Resource;
use crate::storage::{set_resource_version, SideKeys, WriteOutcome};

/// What part of the stored object an update may change.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// Everything but the status, when the kind has a status subresource.
    Main,
    /// Only the status (`<resource>/status`).
    Status,
    /// A subresource's own rule: the stored object, with what the subresource takes from the
    /// desired one (a namespace's `finalize` takes `spec.finalizers`).
    Custom(fn(&Value, &Value) -> Value),
}

/// How a client's update is to be handled.
#[derive(Debug, Clone, Copy)]
pub struct UpdateOptions<'a> {
    pub scope: Scope,
    pub dry_run: bool,
    /// Who writes, for managedFields (None: not tracked by this write).
    pub field_manager: Option<&'a str>,
    /// Who writes, for kinds that check the writer's own rights (None: the server itself).
    pub writer: Option<WriteContext<'a>>,
}

/// The desired object and the resourceVersion it must apply to, if the client pinned one.
pub type Desired = (Value, Option<i64>);

/// Turn the desired object of an update into what is stored: server-owned metadata and the
/// other half of the status/spec split come from `current`; then defaults and validation.
fn admit_update(
    strategy: &dyn KindStrategy,
    current: &Value,
    desired: Value,
    scope: Scope,
) -> ApiResult<Value> {
    let info = strategy.info();
    let name = object::name(current).to_string();
    let desired_name = object::name(&desired);
    if !desired_name.is_empty() && desired_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({desired_name}) does not match the name on the URL ({name})"
        )));
    }
    let mut new = match scope {
        Scope::Main => desired,
        Scope::Status => {
            let mut n = current.clone();
            n["status"] = desired.get("status").cloned().unwrap_or(Value::Null);
            n
        }
        Scope::Custom(take) => take(current, &desired),
    };
    if let Some(m) = new.as_object_mut() {
        m.insert("kind".into(), json!(info.kind));
        m.insert("apiVersion".into(), json!(info.api_version()));
    }
    {
        let current_meta = current["metadata"].as_object().cloned().unwrap_or_default();
        let meta = object::meta_mut(&mut new);
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match current_meta.get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        meta.remove("selfLink");
    }
    if matches!(scope, Scope::Main) && strategy.has_status_subresource() {
        match current.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    let mut new = strategy.decode_and_default(new, false)?;
    if info.tracks_generation {
        let old_gen = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let bump = i64::from(new.get("spec") != current.get("spec"));
        object::meta_mut(&mut new).insert("generation".into(), json!(old_gen + bump));
    }
    let mut causes = validate_changed(strategy, &new, current);
    if object::is_deleting(current) {
        let before: HashSet<String> = object::finalizers(current).into_iter().collect();
        if object::finalizers(&new).iter().any(|f| !before.contains(f)) {
            causes.push(Cause::forbidden(
                "metadata.finalizers",
                "no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(info, &name, causes));
    }
    Ok(new)
}

/// Nothing holds the object any more once it is being deleted and its finalizers are gone.
pub fn ready_to_remove(strategy: &dyn KindStrategy, obj: &Value) -> bool {
    object::is_deleting(obj) && object::finalizers(obj).is_empty() && !strategy.held_by_spec(obj)
}

/// Read, change with `mutate`, admit and compare-and-swap. Returns the stored object and
/// whether anything was written.
pub async fn guaranteed_update<F>(
    resource: &Resource,
    namespace: Option<&str>,
    name: &str,
    opts: UpdateOptions<'_>,
    mut mutate: F,
) -> ApiResult<(Value, bool)>
where
    F: FnMut(&Value) -> ApiResult<Desired>,
{
    let strategy = resource.strategy.as_ref();
    let info = strategy.info();
    let key = info.key(namespace, name);
    let store = &resource.storage.store;
    let allocation = strategy.allocation();
    let mut taken = HashSet::new();
    for _ in 0..WRITE_ATTEMPTS {
        let current = store
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::not_found(info, name))?;
        let (desired, precondition) = mutate(&current.value)?;
        if let Some(rv) = precondition {
            if rv != current.revision {
                return Err(ApiError::stale(info, name));
            }
        }
        let mut new = admit_update(strategy, &current.value, desired, opts.scope)?;
        if let (Some(writer), Scope::Main) = (&opts.writer, opts.scope) {
            strategy.check_writer(writer, &new)?;
        }
        if let (Some(m), Scope::Main) = (opts.field_manager, opts.scope) {
            let av = info.api_version();
            managed_fields::track_update(
                Some(&current.value),
                &mut new,
                m,
                &av,
                Some(strategy.patch_schema()),
                &object::now(),
            );
        }
        if new == current.value {
            return Ok((current.value, false));
        }
        if opts.dry_run {
            return Ok((new, false));
        }
        if ready_to_remove(strategy, &new) {
            let side = SideKeys {
                delete: allocation
                    .map(|a| a.held_keys(&current.value))
                    .unwrap_or_default(),
                ..Default::default()
            };
            match store.delete(&key, current.revision, &side).await? {
                WriteOutcome::Written(rev) => {
                    set_resource_version(&mut new, rev);
                    return Ok((new, true));
                }
                _ if precondition.is_some() => return Err(ApiError::stale(info, name)),
                _ => continue,
            }
        }
        let plan = match allocation {
            Some(a) => a
                .plan(&mut new, Some(&current.value), &taken)
                .map_err(|c| ApiError::invalid(info, name, c))?,
            None => Default::default(),
        };
        match store
            .update(&key, current.revision, &new, &plan.side)
            .await?
        {
            WriteOutcome::Written(rev) => {
                set_resource_version(&mut new, rev);
                return Ok((new, true));
            }
            WriteOutcome::Conflict if precondition.is_some() => {
                return Err(ApiError::stale(info, name))
            }
            WriteOutcome::Conflict => continue,
            WriteOutcome::SideKeyTaken(k) => match allocation {
                Some(a) if plan.requested.contains(&k) => {
                    return Err(ApiError::invalid(
                        info,
                        name,
                        vec![a.taken_cause(&k, false)],
                    ))
                }
                _ => {
                    taken.insert(k);
                }
            },
        }
    }
    Err(ApiError::new(
        409,
        Reason::Conflict,
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": too many concurrent updates; try again",
            info.qualified_plural()
        ),
    ))
}

/// A resourceVersion in the body is a precondition of the update.
pub fn body_precondition(obj: &Value) -> ApiResult<Option<i64>> {
    object::resource_version(obj)
        .map(|rv| {
            rv.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))
        })
        .transpose()
}
