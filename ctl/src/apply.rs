//! `apply`, `create` and `delete`: kubectl's client-side apply (the last-applied-configuration
//! annotation and a three-way strategic merge patch), creation, and deletion with cascading and
//! waiting.

use clap::Args;
use http::Method;
use serde_json::{json, Value};

use crate::client::{query, Ctx};
use crate::discovery::Resource;
use crate::error::{CtlError, Result};
use crate::manifest::{self, Doc};
use crate::{printer, split_targets, FileArgs, Io};

pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The field manager of client-side apply: kubectl's, so the two tools share ownership.
const APPLY_MANAGER: &str = "kubectl-client-side-apply";

/// The object as `kubectl apply` sends it: the last-applied annotation holds the object itself
/// (keys sorted, compact, with a trailing newline), without that annotation.
pub fn with_last_applied(obj: &Value) -> Value {
    let mut modified = obj.clone();
    let meta = modified
        .as_object_mut()
        .expect("manifests are objects")
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if !meta["annotations"].is_object() {
        meta["annotations"] = json!({});
    }
    meta["annotations"]
        .as_object_mut()
        .expect("annotations is an object")
        .remove(LAST_APPLIED);
    let annotation = format!("{}\n", printer::to_compact_json(&modified));
    modified["metadata"]["annotations"][LAST_APPLIED] = Value::String(annotation);
    modified
}

/// The patch apply sends to go from `current` to `modified`, and its content type.
pub fn apply_patch(modified: &Value, current: &Value) -> Result<(Value, &'static str)> {
    let original: Option<Value> = current["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok());
    let api_version = modified["apiVersion"].as_str().unwrap_or_default();
    let kind = modified["kind"].as_str().unwrap_or_default();
    let schema = skiff_common::schema_for(api_version, kind);
    let patch = skiff_common::create_three_way_patch(original.as_ref(), modified, current, schema)
        .map_err(|e| CtlError::Other(anyhow::anyhow!("computing the patch: {e}")))?;
    let content_type = if schema.is_some() {
        "application/strategic-merge-patch+json"
    } else {
        "application/merge-patch+json"
    };
    Ok((patch, content_type))
}

/// The resource and namespace a manifest object goes to.
async fn locate<'c>(ctx: &'c Ctx, doc: &Doc) -> Result<(&'c Resource, Option<String>, String)> {
    let api_version = doc.value["apiVersion"].as_str().unwrap_or_default();
    let kind = doc.value["kind"].as_str().unwrap_or_default();
    let res = ctx.discovery().await?.for_kind(api_version, kind).ok_or_else(|| {
        CtlError::usage(format!(
            "{}: the server does not serve kind \"{kind}\" in version \"{api_version}\" (see `skiffctl api-resources`)",
            doc.where_()
        ))
    })?;
    let name = doc.value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let namespace = if res.namespaced {
        let own = doc.value["metadata"]["namespace"].as_str();
        match own {
            Some(ns) if ctx.namespace_explicit && ns != ctx.namespace => {
                return Err(CtlError::usage(format!(
                    "the namespace from the provided object \"{ns}\" does not match the namespace \"{}\". You must pass '--namespace={ns}' to perform this operation.",
                    ctx.namespace
                )))
            }
            Some(ns) => Some(ns.to_string()),
            None => Some(ctx.namespace.clone()),
        }
    } else {
        None
    };
    Ok((res, namespace, name))
}

/// Runs `each` on every document, printing errors as kubectl does and carrying on; fails at
/// the end if any failed.
async fn for_each_doc<F>(io: &mut Io<'_>, docs: Vec<Doc>, mut each: F) -> Result<()>
where
    F: AsyncFnMut(&mut Io<'_>, Doc) -> Result<()>,
{
    let mut failed = 0;
    for doc in docs {
        if let Err(e) = each(io, doc).await {
            if matches!(e, CtlError::Connection { .. }) {
                return Err(e);
            }
            io.err(&format!("{}\n", e.render()));
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(CtlError::usage(format!(
            "{failed} object(s) could not be processed; see the errors above"
        )));
    }
    Ok(())
}

pub async fn apply(ctx: &Ctx, io: &mut Io<'_>, args: &FileArgs) -> Result<()> {
    let docs = manifest::read_all(&args.files, args.recursive)?;
    for_each_doc(io, docs, async |io: &mut Io<'_>, doc: Doc| {
        let (res, ns, name) = locate(ctx, &doc).await?;
        if name.is_empty() {
            return Err(CtlError::usage(format!(
                "{}: metadata.name is required for apply",
                doc.where_()
            )));
        }
        let mut obj = doc.value.clone();
        if let Some(ns) = &ns {
            obj["metadata"]["namespace"] = Value::String(ns.clone());
        }
        let modified = with_last_applied(&obj);
        let path = res.item(ns.as_deref(), &name);
        let label = format!("{}/{name}", res.kind_group());
        let source = doc.source.clone();
        match ctx.get(&path).await {
            Err(e) if e.is_not_found() => {
                let path = format!(
                    "{}?fieldManager={APPLY_MANAGER}",
                    res.collection(ns.as_deref())
                );
                ctx.post(&path, &modified)
                    .await
                    .map_err(|e| e.with_context(format!("error when creating \"{source}\"")))?;
                io.out(&format!("{label} created\n"));
            }
            Err(e) => return Err(e),
            Ok(current) => {
                let (patch, content_type) = apply_patch(&modified, &current)?;
                if patch.as_object().is_some_and(|p| p.is_empty()) {
                    io.out(&format!("{label} unchanged\n"));
                } else {
                    let path = format!("{path}?fieldManager={APPLY_MANAGER}");
                    ctx.patch(&path, &patch, content_type).await.map_err(|e| {
                        e.with_context(format!(
                            "error when applying patch:\n{patch}\n\nto:\n{label}\nfor: \"{source}\""
                        ))
                    })?;
                    io.out(&format!("{label} configured\n"));
                }
            }
        }
        Ok(())
    })
    .await
}

pub async fn create(ctx: &Ctx, io: &mut Io<'_>, args: &FileArgs) -> Result<()> {
    let docs = manifest::read_all(&args.files, args.recursive)?;
    for_each_doc(io, docs, async |io: &mut Io<'_>, doc: Doc| {
        let (res, ns, _) = locate(ctx, &doc).await?;
        let created = ctx
            .post(&res.collection(ns.as_deref()), &doc.value)
            .await
            .map_err(|e| e.with_context(format!("error when creating \"{}\"", doc.source)))?;
        let name = created["metadata"]["name"].as_str().unwrap_or_default();
        io.out(&format!("{}/{name} created\n", res.kind_group()));
        Ok(())
    })
    .await
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// TYPE NAME..., TYPE/NAME..., or TYPE with -l / --all.
    pub targets: Vec<String>,
    /// Delete the objects in these manifests.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// With -l or --all: in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Seconds the objects get to terminate (-1: their own default; 0: immediately).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// background, foreground or orphan.
    #[arg(long, default_value = "background")]
    pub cascade: String,
    /// Wait until the objects are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// How long --wait waits (e.g. 60s; 0: as long as it takes).
    #[arg(long, default_value = "0", value_parser = skiff_common::parse_duration)]
    pub timeout: std::time::Duration,
    /// Treat missing objects as deleted.
    #[arg(long)]
    pub ignore_not_found: bool,
}

/// The DeleteOptions body for `--cascade` and `--grace-period`.
pub fn delete_options(cascade: &str, grace_period: i64) -> Result<Value> {
    let policy = match cascade {
        "background" | "true" => "Background",
        "foreground" => "Foreground",
        "orphan" | "false" => "Orphan",
        other => {
            return Err(CtlError::usage(format!(
                "invalid cascade value ({other}). Must be \"background\", \"foreground\", or \"orphan\""
            )))
        }
    };
    let mut body =
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy});
    if grace_period >= 0 {
        // kubectl turns 0 into 1 unless --force; skiff has no --force, so 0 means now.
        body["gracePeriodSeconds"] = json!(grace_period);
    }
    Ok(body)
}

pub async fn delete(ctx: &Ctx, io: &mut Io<'_>, args: &DeleteArgs) -> Result<()> {
    let options = delete_options(&args.cascade, args.grace_period)?;
    // (resource, namespace, name, source file)
    let mut victims: Vec<(Resource, Option<String>, String, Option<String>)> = Vec::new();
    if !args.files.is_empty() {
        for doc in manifest::read_all(&args.files, args.recursive)? {
            let (res, ns, name) = locate(ctx, &doc).await?;
            victims.push((res.clone(), ns, name, Some(doc.source.clone())));
        }
    } else {
        let disc = ctx.discovery().await?;
        for (ty, name) in split_targets(&args.targets)? {
            let res = disc.resolve(&ty)?;
            let ns = res.namespaced.then(|| ctx.namespace.clone());
            match name {
                Some(_) if args.all_namespaces => {
                    return Err(CtlError::usage(
                        "a resource cannot be retrieved by name across all namespaces; drop -A or the name",
                    ))
                }
                Some(n) => victims.push((res.clone(), ns, n, None)),
                None => {
                    if args.selector.is_none() && !args.all {
                        return Err(CtlError::usage(
                            "resource(s) were provided, but no name was specified; give names, -l SELECTOR or --all",
                        ));
                    }
                    let sel = args.selector.clone().unwrap_or_default();
                    let scope = if args.all_namespaces { None } else { ns.as_deref() };
                    let list = ctx
                        .get(&format!(
                            "{}{}",
                            res.collection(scope),
                            query(&[("labelSelector", sel)])
                        ))
                        .await?;
                    for item in list["items"].as_array().into_iter().flatten() {
                        let n = item["metadata"]["name"].as_str().unwrap_or_default();
                        let item_ns = item["metadata"]["namespace"].as_str().map(String::from);
                        victims.push((res.clone(), item_ns.or(ns.clone()), n.to_string(), None));
                    }
                }
            }
        }
        if victims.is_empty() {
            io.err(&no_resources_message(Some(&ctx.namespace)));
            return Ok(());
        }
    }
    let mut failed = 0;
    let mut deleted = Vec::new();
    for (res, ns, name, source) in victims {
        let path = res.item(ns.as_deref(), &name);
        match ctx
            .request(
                Method::DELETE,
                &path,
                Some((&options, "application/json")),
                "application/json",
            )
            .await
        {
            Ok(_) => {
                io.out(&format!("{} \"{name}\" deleted\n", res.kind_group()));
                deleted.push((res, ns, name));
            }
            Err(e) if e.is_not_found() && args.ignore_not_found => {}
            Err(e @ CtlError::Connection { .. }) => return Err(e),
            Err(e) => {
                let e = match source {
                    Some(s) => e.with_context(format!("error when deleting \"{s}\"")),
                    None => e,
                };
                io.err(&format!("{}\n", e.render()));
                failed += 1;
            }
        }
    }
    if args.wait && args.cascade != "orphan" {
        let wait_all = async {
            for (res, ns, name) in &deleted {
                io.progress(&format!(
                    "waiting for {}/{name} to be deleted...",
                    res.kind_group()
                ));
                crate::watch::wait_for_object(ctx, res, ns.as_deref(), name, |obj| {
                    obj.is_none().then_some(())
                })
                .await?;
            }
            Ok::<(), CtlError>(())
        };
        let waited = if args.timeout.is_zero() {
            wait_all.await
        } else {
            tokio::time::timeout(args.timeout, wait_all)
                .await
                .unwrap_or_else(|_| {
                    Err(CtlError::usage(format!(
                        "timed out after {:?} waiting for the objects to be deleted; they are still terminating (see: skiffctl get pods)",
                        args.timeout
                    )))
                })
        };
        io.progress_done();
        waited?;
    }
    if failed > 0 {
        return Err(CtlError::usage(format!(
            "{failed} object(s) could not be deleted"
        )));
    }
    Ok(())
}

/// kubectl's message for an empty result.
pub fn no_resources_message(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("No resources found in {ns} namespace.\n"),
        None => "No resources found\n".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_applied_is_the_sorted_object_without_itself() {
        let obj = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "a", "namespace": "default"}, "data": {"k": "v"}});
        let m = with_last_applied(&obj);
        assert_eq!(
            m["metadata"]["annotations"][LAST_APPLIED],
            "{\"apiVersion\":\"v1\",\"data\":{\"k\":\"v\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"a\",\"namespace\":\"default\"}}\n"
        );
        // Applying the result again yields the same annotation.
        assert_eq!(with_last_applied(&m), m);
    }

    #[test]
    fn unchanged_objects_give_an_empty_patch_and_edits_a_strategic_one() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "a", "ports": [{"containerPort": 80}, {"containerPort": 90}]}]}}}});
        let modified = with_last_applied(&obj);
        let mut current = modified.clone();
        current["metadata"]["uid"] = json!("u");
        current["status"] = json!({"replicas": 2});
        let (patch, ct) = apply_patch(&modified, &current).unwrap();
        assert_eq!(patch, json!({}));
        assert_eq!(ct, "application/strategic-merge-patch+json");

        let mut edited = obj.clone();
        edited["spec"]["replicas"] = json!(3);
        edited["spec"]["template"]["spec"]["containers"][0]["ports"] =
            json!([{"containerPort": 80}]);
        let (patch, _) = apply_patch(&with_last_applied(&edited), &current).unwrap();
        assert_eq!(patch["spec"]["replicas"], 3);
        let patch_text = patch.to_string();
        assert!(
            patch_text.contains("\"$patch\":\"delete\"") || patch_text.contains("$setElementOrder"),
            "{patch_text}"
        );
    }

    #[test]
    fn cascade_values() {
        assert_eq!(
            delete_options("foreground", 0).unwrap()["propagationPolicy"],
            "Foreground"
        );
        assert_eq!(
            delete_options("orphan", -1)
                .unwrap()
                .get("gracePeriodSeconds"),
            None
        );
        assert_eq!(
            delete_options("background", 5).unwrap()["gracePeriodSeconds"],
            5
        );
        assert!(delete_options("sideways", 0).is_err());
    }
}
