//! `scale`, `label`/`annotate`, `cordon`/`uncordon`/`drain`, `logs`, `cluster-info`, `version`.

use clap::Args;
use futures::StreamExt;
use serde_json::{json, Map, Value};

use crate::client::{query, Ctx, LineBuffer};
use crate::error::{CtlError, Result};
use crate::{split_targets, Io};

const MERGE: &str = "application/merge-patch+json";

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// TYPE NAME or TYPE/NAME.
    pub targets: Vec<String>,
    /// The new number of replicas.
    #[arg(long)]
    pub replicas: i32,
}

pub async fn scale(ctx: &Ctx, io: &mut Io<'_>, args: &ScaleArgs) -> Result<()> {
    if args.replicas < 0 {
        return Err(CtlError::usage(
            "the --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0",
        ));
    }
    let disc = ctx.discovery().await?;
    for (ty, name) in split_targets(&args.targets)? {
        let res = disc.resolve(&ty)?;
        let name = name.ok_or_else(|| {
            CtlError::usage("scale needs a name: skiffctl scale deploy NAME --replicas=N")
        })?;
        let ns = res.namespaced.then(|| ctx.namespace.clone());
        let path = format!("{}/scale", res.item(ns.as_deref(), &name));
        ctx.patch(&path, &json!({"spec": {"replicas": args.replicas}}), MERGE)
            .await?;
        io.out(&format!("{}/{name} scaled\n", res.kind_group()));
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct MetaArgs {
    /// TYPE NAME KEY=VALUE... KEY-... (or TYPE/NAME KEY=VALUE...).
    #[arg(required = true, num_args = 1..)]
    pub args: Vec<String>,
    /// Replace existing values.
    #[arg(long)]
    pub overwrite: bool,
    /// Label selector instead of names.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// Splits `key=value` and `key-` arguments from the object arguments.
pub fn split_changes(args: &[String]) -> (Vec<String>, Vec<(String, Option<String>)>) {
    let mut objects = Vec::new();
    let mut changes = Vec::new();
    for a in args {
        if let Some((k, v)) = a.split_once('=') {
            changes.push((k.to_string(), Some(v.to_string())));
        } else if let Some(k) = a.strip_suffix('-').filter(|_| !objects.is_empty()) {
            changes.push((k.to_string(), None));
        } else {
            objects.push(a.clone());
        }
    }
    (objects, changes)
}

/// The merge patch for label/annotation changes; an error when a key has another value and
/// `overwrite` is off.
pub fn meta_patch(
    field: &str,
    current: &Value,
    changes: &[(String, Option<String>)],
    overwrite: bool,
) -> Result<Option<Value>> {
    let mut patch = Map::new();
    for (k, v) in changes {
        let existing = current[k].as_str();
        match v {
            Some(v) => {
                if let Some(old) = existing {
                    if old != v && !overwrite {
                        return Err(CtlError::usage(format!(
                            "'{k}' already has a value ({old}), and --overwrite is false"
                        )));
                    }
                }
                patch.insert(k.clone(), Value::String(v.clone()));
            }
            None => {
                if existing.is_some() {
                    patch.insert(k.clone(), Value::Null);
                }
            }
        }
    }
    if patch.is_empty() {
        return Ok(None);
    }
    Ok(Some(json!({"metadata": {field: patch}})))
}

pub async fn label(
    ctx: &Ctx,
    io: &mut Io<'_>,
    args: &MetaArgs,
    field: &str,
    verb: &str,
) -> Result<()> {
    let (objects, changes) = split_changes(&args.args);
    if changes.is_empty() {
        return Err(CtlError::usage(format!(
            "at least one {} update is required",
            &field[..field.len() - 1]
        )));
    }
    let disc = ctx.discovery().await?;
    let mut targets = Vec::new();
    for (ty, name) in split_targets(&objects)? {
        let res = disc.resolve(&ty)?;
        let ns = res.namespaced.then(|| ctx.namespace.clone());
        match name {
            Some(n) => targets.push((res, ns, n)),
            None => {
                let sel = args
                    .selector
                    .clone()
                    .ok_or_else(|| CtlError::usage("give a name or -l SELECTOR"))?;
                let list = ctx
                    .get(&format!(
                        "{}{}",
                        res.collection(ns.as_deref()),
                        query(&[("labelSelector", sel)])
                    ))
                    .await?;
                for item in list["items"].as_array().into_iter().flatten() {
                    let n = item["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    targets.push((res, ns.clone(), n));
                }
            }
        }
    }
    for (res, ns, name) in targets {
        let path = res.item(ns.as_deref(), &name);
        let current = ctx.get(&path).await?;
        let label = format!("{}/{name}", res.kind_group());
        match meta_patch(field, &current["metadata"][field], &changes, args.overwrite)? {
            Some(patch) => {
                ctx.patch(&path, &patch, MERGE).await?;
                io.out(&format!("{label} {verb}\n"));
            }
            None => io.out(&format!("{label} not {verb}\n")),
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Node names.
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

pub async fn cordon(ctx: &Ctx, io: &mut Io<'_>, args: &NodeArgs, on: bool) -> Result<()> {
    for node in &args.nodes {
        set_unschedulable(ctx, io, node, on).await?;
    }
    Ok(())
}

async fn set_unschedulable(ctx: &Ctx, io: &mut Io<'_>, node: &str, on: bool) -> Result<()> {
    let path = format!("/api/v1/nodes/{node}");
    let current = ctx.get(&path).await?;
    let verb = if on { "cordoned" } else { "uncordoned" };
    if current["spec"]["unschedulable"].as_bool().unwrap_or(false) == on {
        io.out(&format!("node/{node} already {verb}\n"));
        return Ok(());
    }
    let value = if on { json!(true) } else { Value::Null };
    ctx.patch(&path, &json!({"spec": {"unschedulable": value}}), MERGE)
        .await?;
    io.out(&format!("node/{node} {verb}\n"));
    Ok(())
}

#[derive(Args, Debug)]
pub struct DrainArgs {
    pub node: String,
    /// Skip pods managed by a DaemonSet instead of failing.
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Also evict pods that no controller manages (they are lost).
    #[arg(long)]
    pub force: bool,
    /// Also evict pods with emptyDir volumes (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Grace period for the evicted pods (-1: their own).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
}

/// Why a pod blocks a drain (`None`: evict it; `Some(Ok(()))`: skip it silently).
pub fn drain_verdict(pod: &Value, args: &DrainArgs) -> Option<std::result::Result<(), String>> {
    let annotations = &pod["metadata"]["annotations"];
    if annotations.get("kubernetes.io/config.mirror").is_some() {
        return Some(Ok(()));
    }
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        return None;
    }
    let controller = pod["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["controller"].as_bool() == Some(true));
    if controller.is_some_and(|c| c["kind"] == "DaemonSet") {
        return Some(if args.ignore_daemonsets {
            Ok(())
        } else {
            Err("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)".into())
        });
    }
    if controller.is_none() && !args.force {
        return Some(Err(
            "cannot delete Pods that declare no controller (use --force to override)".into(),
        ));
    }
    let empty_dir = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| v.get("emptyDir").is_some());
    if empty_dir && !args.delete_emptydir_data {
        return Some(Err(
            "cannot delete Pods with local storage (use --delete-emptydir-data to override)".into(),
        ));
    }
    None
}

pub async fn drain(ctx: &Ctx, io: &mut Io<'_>, args: &DrainArgs) -> Result<()> {
    set_unschedulable(ctx, io, &args.node, true).await?;
    let pods = ctx
        .get(&format!(
            "/api/v1/pods{}",
            query(&[("fieldSelector", format!("spec.nodeName={}", args.node))])
        ))
        .await?;
    let mut evict = Vec::new();
    let mut blockers = Vec::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match drain_verdict(pod, args) {
            None => evict.push((ns, name, pod["metadata"]["uid"].clone())),
            Some(Ok(())) => {}
            Some(Err(why)) => blockers.push(format!("{why}: {ns}/{name}")),
        }
    }
    if !blockers.is_empty() {
        return Err(CtlError::usage(format!(
            "unable to drain node \"{}\" due to error: cannot delete pods:\n  {}\nThere are pending nodes to be drained:\n {}",
            args.node,
            blockers.join("\n  "),
            args.node
        )));
    }
    let pods_res = ctx.discovery().await?.resolve("pods")?.clone();
    for (ns, name, _) in &evict {
        io.out(&format!("evicting pod {ns}/{name}\n"));
        let mut body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}});
        if args.grace_period >= 0 {
            body["deleteOptions"] = json!({"gracePeriodSeconds": args.grace_period});
        }
        ctx.post(
            &format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"),
            &body,
        )
        .await?;
    }
    for (ns, name, uid) in &evict {
        crate::watch::wait_for_object(ctx, &pods_res, Some(ns), name, |p| {
            p.is_none_or(|p| p["metadata"]["uid"] != *uid).then_some(())
        })
        .await?;
        io.out(&format!("pod/{name} evicted\n"));
    }
    io.out(&format!("node/{} drained\n", args.node));
    Ok(())
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// POD, pod/NAME or TYPE/NAME (a pod of that workload).
    pub target: Option<String>,
    /// Container name (default: the only or first container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Stream new lines as they are written.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Lines from the end to show (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// The previous instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Logs of every pod matching this selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Prefix each line with [pod/NAME/CONTAINER].
    #[arg(long)]
    pub prefix: bool,
}

pub async fn logs(ctx: &Ctx, io: &mut Io<'_>, args: &LogsArgs) -> Result<()> {
    let ns = ctx.namespace.clone();
    let pods: Vec<Value> = match (&args.target, &args.selector) {
        (_, Some(sel)) => {
            let list = ctx
                .get(&format!(
                    "/api/v1/namespaces/{ns}/pods{}",
                    query(&[("labelSelector", sel.clone())])
                ))
                .await?;
            list["items"].as_array().cloned().unwrap_or_default()
        }
        (Some(t), None) => match t.split_once('/') {
            None => vec![
                ctx.get(&format!("/api/v1/namespaces/{ns}/pods/{t}"))
                    .await?,
            ],
            Some((ty, name)) => {
                let res = ctx.discovery().await?.resolve(ty)?;
                if res.kind == "Pod" {
                    vec![
                        ctx.get(&format!("/api/v1/namespaces/{ns}/pods/{name}"))
                            .await?,
                    ]
                } else {
                    let obj = ctx.get(&res.item(Some(&ns), name)).await?;
                    let sel = skiff_common::LabelSelector::from_json(&obj["spec"]["selector"])
                        .map_err(|e| {
                            CtlError::usage(format!("{ty}/{name} has no usable selector: {e}"))
                        })?;
                    let list = ctx.get(&format!("/api/v1/namespaces/{ns}/pods")).await?;
                    let pod = list["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|p| sel.matches_json(p["metadata"].get("labels")))
                        .cloned()
                        .ok_or_else(|| CtlError::usage(format!("{ty}/{name} has no pods")))?;
                    vec![pod]
                }
            }
        },
        (None, None) => return Err(CtlError::usage("expected POD or TYPE/NAME, or -l SELECTOR")),
    };
    if pods.is_empty() {
        io.err(&crate::apply::no_resources_message(Some(&ns)));
        return Ok(());
    }
    let prefix = args.prefix;
    for pod in pods {
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let containers: Vec<String> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(String::from))
            .collect();
        let container = match &args.container {
            Some(c) => c.clone(),
            None if containers.len() == 1 || args.selector.is_some() => {
                containers.first().cloned().unwrap_or_default()
            }
            None => {
                io.err(&format!(
                    "Defaulted container \"{}\" out of: {}\n",
                    containers[0],
                    containers.join(", ")
                ));
                containers[0].clone()
            }
        };
        let mut pairs = vec![("container", container.clone())];
        if args.follow {
            pairs.push(("follow", "true".into()));
        }
        if args.tail >= 0 {
            pairs.push(("tailLines", args.tail.to_string()));
        }
        if args.previous {
            pairs.push(("previous", "true".into()));
        }
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}/log{}", query(&pairs));
        let stream = ctx.stream(&path, "*/*").await?;
        futures::pin_mut!(stream);
        let mut lines = LineBuffer::new();
        let tag = format!("[pod/{name}/{container}] ");
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if prefix {
                for l in lines.push(&chunk) {
                    io.out(&format!("{tag}{l}\n"));
                }
            } else {
                io.out(&String::from_utf8_lossy(&chunk));
            }
        }
        if let Some(rest) = lines.finish() {
            io.out(&format!("{tag}{rest}\n"));
        }
    }
    Ok(())
}

pub async fn cluster_info(ctx: &Ctx, io: &mut Io<'_>) -> Result<()> {
    ctx.get("/version").await?;
    io.out(&format!(
        "Kubernetes control plane (skiff) is running at {}\n\nTo see what it serves, use 'skiffctl api-resources'.\n",
        ctx.server
    ));
    Ok(())
}

pub async fn version(ctx: &Ctx, io: &mut Io<'_>) -> Result<()> {
    io.out(&format!("Client Version: v{}\n", env!("CARGO_PKG_VERSION")));
    let v = ctx.get("/version").await?;
    io.out(&format!(
        "Server Version: {}\n",
        v["gitVersion"].as_str().unwrap_or("unknown")
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_changes_and_overwrite() {
        let args: Vec<String> = ["deploy", "web", "a=1", "b-"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (objects, changes) = split_changes(&args);
        assert_eq!(objects, ["deploy", "web"]);
        assert_eq!(
            changes,
            vec![("a".into(), Some("1".into())), ("b".into(), None)]
        );
        let current = json!({"a": "0", "b": "x"});
        assert!(meta_patch("labels", &current, &changes, false).is_err());
        assert_eq!(
            meta_patch("labels", &current, &changes, true)
                .unwrap()
                .unwrap(),
            json!({"metadata": {"labels": {"a": "1", "b": null}}})
        );
        assert_eq!(
            meta_patch(
                "labels",
                &json!({"a": "1"}),
                &[("a".into(), Some("1".into()))],
                false
            )
            .unwrap()
            .unwrap(),
            json!({"metadata": {"labels": {"a": "1"}}})
        );
        assert_eq!(
            meta_patch("labels", &json!({}), &[("z".into(), None)], false).unwrap(),
            None
        );
    }

    #[test]
    fn drain_skips_and_blocks_like_kubectl() {
        let args = DrainArgs {
            node: "n".into(),
            ignore_daemonsets: false,
            force: false,
            delete_emptydir_data: false,
            grace_period: -1,
        };
        let rs_pod =
            json!({"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "controller": true}]}});
        assert_eq!(drain_verdict(&rs_pod, &args), None);
        let bare = json!({"metadata": {}});
        assert!(matches!(drain_verdict(&bare, &args), Some(Err(_))));
        let ds =
            json!({"metadata": {"ownerReferences": [{"kind": "DaemonSet", "controller": true}]}});
        assert!(matches!(drain_verdict(&ds, &args), Some(Err(_))));
        let args = DrainArgs {
            ignore_daemonsets: true,
            ..args
        };
        assert_eq!(drain_verdict(&ds, &args), Some(Ok(())));
    }
}
