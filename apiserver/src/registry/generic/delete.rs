//! Delete: preconditions, then either removal or a mark (deletionTimestamp, grace period,
//! the propagation policy's finalizer) that the agent, the garbage collector or a kind's
//! controller finishes.

use serde_json::{json, Value};

use super::WRITE_ATTEMPTS;
use crate::error::{ApiError, ApiResult, Reason};
use crate::object;
use crate::registry::strategy::KindStrategy;
use crate::registry::Resource;
use crate::resource::ResourceInfo;
use crate::storage::{set_resource_version, SideKeys, WriteOutcome};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub orphan_dependents: Option<bool>,
    pub preconditions: Option<Preconditions>,
    #[serde(default)]
    pub dry_run: Vec<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl DeleteOptions {
    /// The propagation policy must be one Kubernetes knows.
    pub fn validate(&self) -> ApiResult<()> {
        match &self.propagation_policy {
            Some(p) if !["Orphan", "Background", "Foreground"].contains(&p.as_str()) => {
                Err(ApiError::new(
                    422,
                    Reason::Invalid,
                    format!("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// How a delete ended.
#[derive(Debug)]
pub enum DeleteOutcome {
    /// The object is gone; the answer body (the object or a Status, as the kind answers).
    Deleted(Value),
    /// The object is marked and waits for its finalizers or grace period.
    Pending(Value),
}

pub fn success_status(info: &ResourceInfo, obj: &Value) -> Value {
    let mut details =
        json!({"name": object::name(obj), "kind": info.plural, "uid": object::uid(obj)});
    if !info.group.is_empty() {
        details["group"] = json!(info.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// What a delete does to an object: remove it now, or mark it and let someone finish the job.
#[derive(Debug, PartialEq)]
pub enum DeletePlan {
    Remove,
    /// Set deletionTimestamp (with this grace) and these finalizers, and leave it stored.
    Mark {
        grace: i64,
        add_finalizers: Vec<&'static str>,
    },
}

/// Decide how a delete proceeds, as kube-apiserver's generic store does with the kind's
/// graceful-deletion and finalizing rules.
pub fn plan_delete(strategy: &dyn KindStrategy, obj: &Value, opts: &DeleteOptions) -> DeletePlan {
    if strategy.deletion().always_finalizes {
        return DeletePlan::Mark {
            grace: 0,
            add_finalizers: Vec::new(),
        };
    }
    let policy = match (&opts.propagation_policy, opts.orphan_dependents) {
        (Some(p), _) => p.as_str(),
        (None, Some(true)) => "Orphan",
        _ => "Background",
    };
    let mut add = Vec::new();
    match policy {
        "Orphan" => add.push("orphan"),
        "Foreground" => add.push("foregroundDeletion"),
        _ => {}
    }
    let grace = strategy.grace_period(obj, opts.grace_period_seconds);
    let held = !object::finalizers(obj).is_empty();
    if grace == 0 && add.is_empty() && !held {
        DeletePlan::Remove
    } else {
        DeletePlan::Mark {
            grace,
            add_finalizers: add,
        }
    }
}

fn check_preconditions(
    info: &ResourceInfo,
    name: &str,
    pre: &Preconditions,
    current: &Value,
    revision: i64,
) -> ApiResult<()> {
    if pre
        .uid
        .as_deref()
        .is_some_and(|u| u != object::uid(current))
    {
        return Err(ApiError::conflict(
            info,
            name,
            &format!(
                "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                pre.uid.as_deref().unwrap_or(""),
                object::uid(current)
            ),
        ));
    }
    if let Some(rv) = &pre.resource_version {
        if *rv != revision.to_string() {
            return Err(ApiError::conflict(info, name, &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {revision}"
            )));
        }
    }
    Ok(())
}

/// Mark `obj` for deletion with `grace` and the finalizers of the propagation policy.
fn mark(strategy: &dyn KindStrategy, obj: &mut Value, grace: i64, add_finalizers: &[&str]) {
    let already = object::is_deleting(obj);
    let existing_grace = obj
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    let meta = object::meta_mut(obj);
    // A later delete may shorten the grace period, never lengthen it.
    if !already || existing_grace.is_some_and(|g| grace < g) {
        meta.insert(
            "deletionTimestamp".into(),
            json!(object::timestamp_in(grace)),
        );
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    }
    if !already {
        let list = meta.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(arr) = list.as_array_mut() {
            for f in add_finalizers {
                if !arr.iter().any(|x| x == f) {
                    arr.push(json!(f));
                }
            }
            if arr.is_empty() {
                meta.remove("finalizers");
            }
        }
    }
    strategy.on_marked_for_deletion(obj);
}

/// Delete the object stored under `key`.
pub async fn delete_one(
    resource: &Resource,
    key: &str,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<DeleteOutcome> {
    let strategy = resource.strategy.as_ref();
    let info = strategy.info();
    let rules = strategy.deletion();
    if rules.protected_names.contains(&name) {
        return Err(ApiError::forbidden(
            info,
            name,
            &format!("this {} may not be deleted", info.singular),
        ));
    }
    let store = &resource.storage.store;
    let dry_run = !opts.dry_run.is_empty();
    for _ in 0..WRITE_ATTEMPTS {
        let current = store
            .get(key)
            .await?
            .ok_or_else(|| ApiError::not_found(info, name))?;
        if let Some(pre) = &opts.preconditions {
            check_preconditions(info, name, pre, &current.value, current.revision)?;
        }
        match plan_delete(strategy, &current.value, opts) {
            DeletePlan::Remove => {
                if dry_run {
                    return Ok(DeleteOutcome::Deleted(current.value));
                }
                let side = SideKeys {
                    delete: strategy
                        .allocation()
                        .map(|a| a.held_keys(&current.value))
                        .unwrap_or_default(),
                    ..Default::default()
                };
                match store.delete(key, current.revision, &side).await? {
                    WriteOutcome::Written(rev) => {
                        let mut last = current.value;
                        set_resource_version(&mut last, rev);
                        let body = if rules.returns_object {
                            last
                        } else {
                            success_status(info, &last)
                        };
                        return Ok(DeleteOutcome::Deleted(body));
                    }
                    _ => continue,
                }
            }
            DeletePlan::Mark {
                grace,
                add_finalizers,
            } => {
                let mut marked = current.value.clone();
                mark(strategy, &mut marked, grace, &add_finalizers);
                if marked == current.value || dry_run {
                    return Ok(DeleteOutcome::Pending(marked));
                }
                match store
                    .update(key, current.revision, &marked, &SideKeys::default())
                    .await?
                {
                    WriteOutcome::Written(rev) => {
                        set_resource_version(&mut marked, rev);
                        return Ok(DeleteOutcome::Pending(marked));
                    }
                    _ => continue,
                }
            }
        }
    }
    Err(ApiError::stale(info, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::apps::deployment::DeploymentStrategy;
    use crate::registry::core::namespace::NamespaceStrategy;
    use crate::registry::core::pod::PodStrategy;

    #[test]
    fn pods_on_nodes_are_deleted_gracefully() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30}, "status": {"phase": "Running"}});
        assert_eq!(
            plan_delete(&PodStrategy, &pod, &DeleteOptions::default()),
            DeletePlan::Mark {
                grace: 30,
                add_finalizers: vec![]
            }
        );
        let now = DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        assert_eq!(plan_delete(&PodStrategy, &pod, &now), DeletePlan::Remove);
        let unscheduled = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(
            plan_delete(&PodStrategy, &unscheduled, &DeleteOptions::default()),
            DeletePlan::Remove
        );
    }

    #[test]
    fn propagation_policies_add_their_finalizers() {
        let d = json!({"metadata": {"name": "d"}});
        let fg = DeleteOptions {
            propagation_policy: Some("Foreground".into()),
            ..Default::default()
        };
        assert_eq!(
            plan_delete(&DeploymentStrategy, &d, &fg),
            DeletePlan::Mark {
                grace: 0,
                add_finalizers: vec!["foregroundDeletion"]
            }
        );
        let orphan = DeleteOptions {
            orphan_dependents: Some(true),
            ..Default::default()
        };
        assert_eq!(
            plan_delete(&DeploymentStrategy, &d, &orphan),
            DeletePlan::Mark {
                grace: 0,
                add_finalizers: vec!["orphan"]
            }
        );
        assert_eq!(
            plan_delete(&DeploymentStrategy, &d, &DeleteOptions::default()),
            DeletePlan::Remove
        );
    }

    #[test]
    fn namespaces_always_go_through_terminating() {
        let ns = json!({"metadata": {"name": "dev"}});
        let plan = plan_delete(&NamespaceStrategy, &ns, &DeleteOptions::default());
        assert_eq!(
            plan,
            DeletePlan::Mark {
                grace: 0,
                add_finalizers: vec![]
            }
        );
        let mut marked = ns.clone();
        mark(&NamespaceStrategy, &mut marked, 0, &[]);
        assert_eq!(marked["status"]["phase"], "Terminating");
        assert!(object::is_deleting(&marked));
    }
}
