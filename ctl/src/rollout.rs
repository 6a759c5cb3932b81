//! `rollout status|history|undo|restart|pause|resume` for deployments, as kubectl does them.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::{query, Ctx};
use crate::discovery::Resource;
use crate::error::{CtlError, Result};
use crate::{printer, Io};

const REVISION: &str = "deployment.kubernetes.io/revision";

#[derive(Args, Debug)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Wait for a rollout to finish, printing its progress.
    Status {
        target: Vec<String>,
        /// Print the status once instead of waiting.
        #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        watch: bool,
        /// Give up after this long (e.g. 90s, 5m; 0: never).
        #[arg(long, default_value = "0", value_parser = skiff_common::parse_duration)]
        timeout: std::time::Duration,
    },
    /// List the revisions.
    History { target: Vec<String> },
    /// Roll back to the previous (or a given) revision.
    Undo {
        target: Vec<String>,
        #[arg(long, default_value_t = 0)]
        to_revision: i64,
    },
    /// Restart the pods by changing the template's restartedAt annotation.
    Restart { target: Vec<String> },
    /// Stop the controller from acting on template changes.
    Pause { target: Vec<String> },
    /// Let the controller act again.
    Resume { target: Vec<String> },
}

/// kubectl's rollout status message for a deployment, and whether the rollout is done.
pub fn deployment_status(d: &Value) -> std::result::Result<(String, bool), String> {
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    let generation = d["metadata"]["generation"].as_i64().unwrap_or(0);
    let status = &d["status"];
    let observed = status["observedGeneration"].as_i64().unwrap_or(0);
    if generation > observed {
        return Ok((
            "Waiting for deployment spec update to be observed...".into(),
            false,
        ));
    }
    let progressing = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Progressing");
    if progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
        return Err(format!(
            "deployment \"{name}\" exceeded its progress deadline"
        ));
    }
    let n = |f: &str| status[f].as_i64().unwrap_or(0);
    let updated = n("updatedReplicas");
    if let Some(want) = d["spec"]["replicas"].as_i64() {
        if updated < want {
            return Ok((format!("Waiting for deployment \"{name}\" rollout to finish: {updated} out of {want} new replicas have been updated..."), false));
        }
    }
    if n("replicas") > updated {
        return Ok((format!("Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...", n("replicas") - updated), false));
    }
    if n("availableReplicas") < updated {
        return Ok((format!("Waiting for deployment \"{name}\" rollout to finish: {} of {updated} updated replicas are available...", n("availableReplicas")), false));
    }
    Ok((
        format!("deployment \"{name}\" successfully rolled out"),
        true,
    ))
}

fn revision(obj: &Value) -> i64 {
    obj["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The deployment's ReplicaSets (controlled by it), oldest revision first.
async fn replica_sets(ctx: &Ctx, ns: &str, d: &Value) -> Result<Vec<Value>> {
    let uid = &d["metadata"]["uid"];
    let sel = skiff_common::LabelSelector::from_json(&d["spec"]["selector"])
        .map(|s| s.to_string())
        .unwrap_or_default();
    let list = ctx
        .get(&format!(
            "/apis/apps/v1/namespaces/{ns}/replicasets{}",
            query(&[("labelSelector", sel)])
        ))
        .await?;
    let mut out: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["uid"] == *uid && o["controller"] == true)
        })
        .cloned()
        .collect();
    out.sort_by_key(revision);
    Ok(out)
}

const SKIPPED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// The JSON patch that rolls `deployment` back to `rs`'s template, or `None` if it already
/// matches.
pub fn undo_patch(deployment: &Value, rs: &Value) -> Option<Value> {
    let mut template = rs["spec"]["template"].clone();
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    let mut current = deployment["spec"]["template"].clone();
    if let Some(labels) = current["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    if template == current {
        return None;
    }
    let mut annotations = serde_json::Map::new();
    let d_ann = deployment["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for k in SKIPPED_ANNOTATIONS {
        if let Some(v) = d_ann.get(*k) {
            annotations.insert(k.to_string(), v.clone());
        }
    }
    for (k, v) in rs["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !SKIPPED_ANNOTATIONS.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    Some(json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]))
}

async fn deployments<'c>(ctx: &'c Ctx, target: &[String]) -> Result<Vec<(&'c Resource, String)>> {
    let disc = ctx.discovery().await?;
    let mut out = Vec::new();
    for (ty, name) in crate::split_targets(target)? {
        let res = disc.resolve(&ty)?;
        if res.kind != "Deployment" {
            return Err(CtlError::usage(format!(
                "no rollout support for {} (only deployments)",
                res.kind_group()
            )));
        }
        let name = name.ok_or_else(|| CtlError::usage("give a deployment: deployment/NAME"))?;
        out.push((res, name));
    }
    Ok(out)
}

pub async fn rollout(ctx: &Ctx, io: &mut Io<'_>, args: &RolloutArgs) -> Result<()> {
    let ns = ctx.namespace.clone();
    match &args.command {
        RolloutCommand::Status {
            target,
            watch,
            timeout,
        } => {
            for (res, name) in deployments(ctx, target).await? {
                let mut last = String::new();
                let mut failure = None;
                let wait = crate::watch::wait_for_object(ctx, res, Some(&ns), &name, |d| {
                    let Some(d) = d else {
                        failure = Some(CtlError::usage(format!(
                            "deployment \"{name}\" was deleted"
                        )));
                        return Some(());
                    };
                    match deployment_status(d) {
                        Err(e) => {
                            failure = Some(CtlError::usage(e));
                            Some(())
                        }
                        Ok((msg, done)) => {
                            if msg != last {
                                if done {
                                    io.progress_done();
                                    io.out(&format!("{msg}\n"));
                                } else {
                                    io.progress(&msg);
                                }
                                last = msg;
                            }
                            (done || !*watch).then_some(())
                        }
                    }
                });
                let result = if !timeout.is_zero() {
                    match tokio::time::timeout(*timeout, wait).await {
                        Ok(r) => r,
                        Err(_) => {
                            io.progress_done();
                            return Err(CtlError::usage("timed out waiting for the condition"));
                        }
                    }
                } else {
                    wait.await
                };
                result?;
                if let Some(e) = failure {
                    return Err(e);
                }
            }
            Ok(())
        }
        RolloutCommand::History { target } => {
            for (res, name) in deployments(ctx, target).await? {
                let d = ctx.get(&res.item(Some(&ns), &name)).await?;
                let rss = replica_sets(ctx, &ns, &d).await?;
                let mut lines = vec![vec!["REVISION".to_string(), "CHANGE-CAUSE".to_string()]];
                for rs in &rss {
                    let cause = rs["metadata"]["annotations"]["kubernetes.io/change-cause"]
                        .as_str()
                        .unwrap_or("<none>");
                    lines.push(vec![revision(rs).to_string(), cause.to_string()]);
                }
                io.out(&format!(
                    "{}/{name} \n{}\n",
                    res.kind_group(),
                    printer::align(&lines)
                ));
            }
            Ok(())
        }
        RolloutCommand::Undo {
            target,
            to_revision,
        } => {
            for (res, name) in deployments(ctx, target).await? {
                let path = res.item(Some(&ns), &name);
                let d = ctx.get(&path).await?;
                if d["spec"]["paused"].as_bool() == Some(true) {
                    return Err(CtlError::usage(format!(
                        "you cannot rollback a paused deployment; resume it first with 'skiffctl rollout resume deployment/{name}' and try again"
                    )));
                }
                let rss = replica_sets(ctx, &ns, &d).await?;
                let target_rs = if *to_revision > 0 {
                    rss.iter()
                        .find(|rs| revision(rs) == *to_revision)
                        .ok_or_else(|| {
                            CtlError::usage(format!(
                                "unable to find specified revision {to_revision} in history"
                            ))
                        })?
                } else {
                    let current = rss.iter().map(revision).max().unwrap_or(0);
                    rss.iter()
                        .rev()
                        .find(|rs| revision(rs) < current)
                        .ok_or_else(|| {
                            CtlError::usage(format!(
                                "no rollout history found for deployment \"{name}\""
                            ))
                        })?
                };
                match undo_patch(&d, target_rs) {
                    None => io.out(&format!(
                        "{}/{name} skipped rollback (current template already matches revision {})\n",
                        res.kind_group(),
                        revision(target_rs)
                    )),
                    Some(patch) => {
                        ctx.patch(&path, &patch, "application/json-patch+json").await?;
                        io.out(&format!("{}/{name} rolled back\n", res.kind_group()));
                    }
                }
            }
            Ok(())
        }
        RolloutCommand::Restart { target } => {
            for (res, name) in deployments(ctx, target).await? {
                let now = jiff::Timestamp::now()
                    .strftime("%Y-%m-%dT%H:%M:%SZ")
                    .to_string();
                let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
                ctx.patch(
                    &res.item(Some(&ns), &name),
                    &patch,
                    "application/strategic-merge-patch+json",
                )
                .await?;
                io.out(&format!("{}/{name} restarted\n", res.kind_group()));
            }
            Ok(())
        }
        RolloutCommand::Pause { target } => set_paused(ctx, io, target, true).await,
        RolloutCommand::Resume { target } => set_paused(ctx, io, target, false).await,
    }
}

async fn set_paused(ctx: &Ctx, io: &mut Io<'_>, target: &[String], paused: bool) -> Result<()> {
    let ns = ctx.namespace.clone();
    let verb = if paused { "paused" } else { "resumed" };
    for (res, name) in deployments(ctx, target).await? {
        let path = res.item(Some(&ns), &name);
        let d = ctx.get(&path).await?;
        if d["spec"]["paused"].as_bool().unwrap_or(false) == paused {
            return Err(CtlError::usage(format!(
                "{}/{name} is not {}",
                res.kind_group(),
                if paused { "resumed" } else { "paused" }
            )));
        }
        let value = if paused { json!(true) } else { Value::Null };
        ctx.patch(
            &path,
            &json!({"spec": {"paused": value}}),
            "application/merge-patch+json",
        )
        .await?;
        io.out(&format!("{}/{name} {verb}\n", res.kind_group()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(gen: i64, observed: i64, replicas: i64, status: Value) -> Value {
        let mut s = status;
        s["observedGeneration"] = json!(observed);
        json!({"metadata": {"name": "web", "generation": gen}, "spec": {"replicas": replicas}, "status": s})
    }

    #[test]
    fn status_messages_match_kubectl() {
        assert_eq!(
            deployment_status(&dep(2, 1, 3, json!({}))).unwrap().0,
            "Waiting for deployment spec update to be observed..."
        );
        assert_eq!(
            deployment_status(&dep(1, 1, 3, json!({"updatedReplicas": 1}))).unwrap().0,
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated..."
        );
        assert_eq!(
            deployment_status(&dep(1, 1, 3, json!({"updatedReplicas": 3, "replicas": 4}))).unwrap().0,
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."
        );
        assert_eq!(
            deployment_status(&dep(1, 1, 3, json!({"updatedReplicas": 3, "replicas": 3, "availableReplicas": 1}))).unwrap().0,
            "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available..."
        );
        assert_eq!(
            deployment_status(&dep(
                1,
                1,
                3,
                json!({"updatedReplicas": 3, "replicas": 3, "availableReplicas": 3})
            ))
            .unwrap(),
            (
                "deployment \"web\" successfully rolled out".to_string(),
                true
            )
        );
        let stuck = dep(
            1,
            1,
            3,
            json!({"conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]}),
        );
        assert!(deployment_status(&stuck).is_err());
    }

    #[test]
    fn undo_replaces_the_template_without_the_hash_label() {
        let d = json!({"metadata": {"annotations": {REVISION: "2"}}, "spec": {"template": {"metadata": {"labels": {"app": "w"}}, "spec": {"image": "v2"}}}});
        let rs = json!({"metadata": {"annotations": {REVISION: "1", "note": "x"}}, "spec": {"template": {"metadata": {"labels": {"app": "w", "pod-template-hash": "abc"}}, "spec": {"image": "v1"}}}});
        let patch = undo_patch(&d, &rs).unwrap();
        assert_eq!(patch[0]["value"]["metadata"]["labels"], json!({"app": "w"}));
        assert_eq!(patch[1]["value"], json!({REVISION: "2", "note": "x"}));
        let same = json!({"metadata": {}, "spec": {"template": {"metadata": {"labels": {"app": "w", "pod-template-hash": "z"}}, "spec": {"image": "v2"}}}});
        assert_eq!(undo_patch(&d, &same), None);
    }
}
