//! The Job controller: runs pods until `completions` succeed (at most `parallelism` at a time),
//! fails the Job after more than `backoffLimit` failed pods or after `activeDeadlineSeconds`,
//! and reports active/ready/succeeded/failed counts with Complete/Failed conditions.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::Controller;
use kube::ResourceExt;
use skiff_component::EventKind;

use crate::context::Context;
use crate::expectations::{owner_key, Expectations};
use crate::informers::Informer;
use crate::reconcile::{self, ReconcileError};
use crate::registration::Registration;
use crate::replicaset::pod_from_template;
use crate::util::{self, ignore_missing};

pub const NAME: &str = "job-controller";

pub const REGISTRATION: Registration = Registration {
    name: "job",
    reporter: NAME,
    start,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl ReconcileError for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(e) if reconcile::is_conflict(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

struct State {
    ctx: Arc<Context>,
    pods: Informer<Pod>,
    expectations: Expectations<Pod>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub create: usize,
    pub delete: Vec<String>,
    pub status: JobStatus,
    /// The Job just finished: (condition type, reason, message).
    pub finished: Option<(&'static str, &'static str, &'static str)>,
    pub requeue_after: Option<Duration>,
}

fn finished_condition(status: &JobStatus) -> Option<&JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

fn condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

pub fn plan(job: &Job, pods: &[Pod], now: Timestamp) -> Plan {
    let uid = job.uid().unwrap_or_default();
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let mine: Vec<&Pod> = pods
        .iter()
        .filter(|p| util::controller_ref(&p.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    let succeeded = mine
        .iter()
        .filter(|p| util::pod_phase(p) == "Succeeded")
        .count() as i32;
    let failed = mine
        .iter()
        .filter(|p| util::pod_phase(p) == "Failed")
        .count() as i32;
    let succeeded = succeeded.max(old.succeeded.unwrap_or(0));
    let failed = failed.max(old.failed.unwrap_or(0));
    let mut active: Vec<&Pod> = mine
        .iter()
        .copied()
        .filter(|p| util::pod_is_active(p))
        .collect();
    let suspended = spec.suspend == Some(true);
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let mut out = Plan::default();
    let mut status = JobStatus {
        active: Some(active.len() as i32),
        ready: Some(active.iter().filter(|p| util::pod_is_ready(p)).count() as i32),
        succeeded: Some(succeeded),
        failed: Some(failed),
        start_time: old.start_time.clone(),
        completion_time: old.completion_time.clone(),
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    if status.start_time.is_none() && !suspended {
        status.start_time = Some(Time(now));
    }

    if finished_condition(&old).is_some() {
        out.delete = active.iter().map(|p| p.name_any()).collect();
        out.status = status;
        return out;
    }

    let deadline_passed = spec.active_deadline_seconds.and_then(|ads| {
        let start = status.start_time.as_ref()?.0;
        let at = start + SignedDuration::from_secs(ads);
        if at <= now {
            Some(true)
        } else {
            out.requeue_after = Some(util::until(at, now));
            None
        }
    });
    let complete = match spec.completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && active.is_empty(),
    };
    if failed > spec.backoff_limit.unwrap_or(6) {
        out.finished = Some((
            "Failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ));
    } else if deadline_passed == Some(true) {
        out.finished = Some((
            "Failed",
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ));
    } else if complete {
        out.finished = Some((
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        ));
    }
    if let Some((type_, reason, message)) = out.finished {
        out.delete = active.iter().map(|p| p.name_any()).collect();
        status
            .conditions
            .get_or_insert_with(Vec::new)
            .push(condition(type_, reason, message, now));
        if type_ == "Complete" {
            status.completion_time = Some(Time(now));
        }
        out.requeue_after = None;
        out.status = status;
        return out;
    }

    let want = if suspended {
        0
    } else {
        match spec.completions {
            Some(c) => parallelism.min(c - succeeded).max(0),
            // Work queue: once a pod has succeeded no new ones start.
            None if succeeded > 0 => (active.len() as i32).min(parallelism),
            None => parallelism,
        }
    } as usize;
    if active.len() < want {
        out.create = want - active.len();
    } else if active.len() > want {
        active.sort_by_key(|p| {
            (
                util::pod_is_ready(p),
                std::cmp::Reverse(p.metadata.creation_timestamp.clone()),
            )
        });
        out.delete = active[..active.len() - want]
            .iter()
            .map(|p| p.name_any())
            .collect();
    }
    out.status = status;
    out
}

async fn reconcile(job: Arc<Job>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    if util::is_deleting(&job.metadata) {
        return Ok(Action::await_change());
    }
    let key = owner_key(job.as_ref());
    if !state.expectations.satisfied(&key, &state.pods) {
        return Ok(reconcile::wait_for_store());
    }
    let ns = job.namespace().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pods = util::in_namespace(&state.pods.store(), &ns);
    let plan = plan(&job, &pods, util::now());
    if plan.create > 0 {
        let template = job
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let pod = pod_from_template(
            &template,
            &job.name_any(),
            &ns,
            util::owner_ref(job.as_ref()),
        );
        for _ in 0..plan.create {
            let p = pods_api.create(&PostParams::default(), &pod).await?;
            state.expectations.wrote(&key, &p);
            ctx.recorder
                .publish_for(
                    job.as_ref(),
                    EventKind::Normal,
                    "SuccessfulCreate",
                    &format!("Created pod: {}", p.name_any()),
                )
                .await;
        }
    }
    for name in &plan.delete {
        if let Some(pod) = pods.iter().find(|p| &p.name_any() == name) {
            state.expectations.deleted(&key, pod);
        }
        ignore_missing(
            pods_api
                .delete(name, &DeleteParams::default())
                .await
                .map(|_| ()),
        )?;
        ctx.recorder
            .publish_for(
                job.as_ref(),
                EventKind::Normal,
                "SuccessfulDelete",
                &format!("Deleted pod: {name}"),
            )
            .await;
    }
    if let Some((type_, reason, message)) = plan.finished {
        let kind = if type_ == "Complete" {
            EventKind::Normal
        } else {
            EventKind::Warning
        };
        let reason = if type_ == "Complete" {
            "Completed"
        } else {
            reason
        };
        ctx.recorder
            .publish_for(job.as_ref(), kind, reason, message)
            .await;
    }
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    util::write_status(&api, &job.name_any(), job.status.as_ref(), &plan.status).await?;
    ctx.metrics.reconcile(NAME, true);
    Ok(match plan.requeue_after {
        Some(d) => Action::requeue(d + Duration::from_millis(100)),
        None => Action::requeue(Duration::from_secs(300)),
    })
}

fn start(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let jobs = ctx.informers.get::<Job>();
    let pods = ctx.informers.get::<Pod>();
    let metrics = ctx.metrics.clone();
    let state = Arc::new(State {
        ctx,
        pods: pods.clone(),
        expectations: Expectations::default(),
    });
    let controller = Controller::for_stream(jobs.stream(), jobs.store()).owns_stream(pods.stream());
    reconcile::drain(controller.run(reconcile, reconcile::error_policy(NAME, metrics), state))
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(completions: Option<i32>, parallelism: i32, backoff: i32) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "j", "namespace": "default", "uid": "job-uid"},
            "spec": {"completions": completions, "parallelism": parallelism, "backoffLimit": backoff,
                     "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}
        }))
        .unwrap()
    }

    fn pod(name: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "job-uid", "controller": true}]},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    #[test]
    fn runs_up_to_parallelism_until_completions() {
        let now = Timestamp::now();
        assert_eq!(plan(&job(Some(3), 2, 6), &[], now).create, 2);
        // One done, one running, two to go: a second one runs beside it.
        let p = plan(
            &job(Some(3), 2, 6),
            &[pod("a", "Succeeded"), pod("b", "Running")],
            now,
        );
        assert_eq!(p.create, 1);
        assert_eq!(p.status.succeeded, Some(1));
        assert_eq!(p.status.active, Some(1));
        // Two done, one running: the last completion needs no new pod.
        let p = plan(
            &job(Some(3), 2, 6),
            &[
                pod("a", "Succeeded"),
                pod("b", "Succeeded"),
                pod("c", "Running"),
            ],
            now,
        );
        assert_eq!(p.create, 0);
        let done = plan(
            &job(Some(3), 2, 6),
            &[
                pod("a", "Succeeded"),
                pod("b", "Succeeded"),
                pod("c", "Succeeded"),
            ],
            now,
        );
        assert_eq!(done.finished.map(|f| f.0), Some("Complete"));
        assert!(done.status.completion_time.is_some());
        assert_eq!(done.status.conditions.unwrap()[0].type_, "Complete");
    }

    #[test]
    fn too_many_failures_fail_the_job() {
        let now = Timestamp::now();
        let p = plan(&job(Some(1), 1, 1), &[pod("a", "Failed")], now);
        assert_eq!(p.finished, None);
        assert_eq!(p.create, 1);
        let p = plan(
            &job(Some(1), 1, 1),
            &[pod("a", "Failed"), pod("b", "Failed"), pod("c", "Running")],
            now,
        );
        assert_eq!(p.finished.map(|f| f.1), Some("BackoffLimitExceeded"));
        assert_eq!(p.delete, vec!["c"]);
    }

    #[test]
    fn deadlines_fail_running_jobs() {
        let now = Timestamp::now();
        let mut j = job(Some(1), 1, 6);
        j.spec.as_mut().unwrap().active_deadline_seconds = Some(10);
        j.status = Some(JobStatus {
            start_time: Some(Time(now - SignedDuration::from_secs(11))),
            ..Default::default()
        });
        let p = plan(&j, &[pod("a", "Running")], now);
        assert_eq!(p.finished.map(|f| f.1), Some("DeadlineExceeded"));
        assert_eq!(p.delete, vec!["a"]);
    }

    #[test]
    fn work_queue_jobs_finish_when_one_succeeds_and_none_run() {
        let now = Timestamp::now();
        let p = plan(
            &job(None, 2, 6),
            &[pod("a", "Succeeded"), pod("b", "Running")],
            now,
        );
        assert_eq!((p.create, p.finished), (0, None));
        let p = plan(
            &job(None, 2, 6),
            &[pod("a", "Succeeded"), pod("b", "Succeeded")],
            now,
        );
        assert_eq!(p.finished.map(|f| f.0), Some("Complete"));
    }
}
