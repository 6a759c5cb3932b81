//! The ReplicaSet controller: keeps `spec.replicas` active pods matching the selector, owned
//! through a controller ownerReference; adopts matching orphans, releases pods that stopped
//! matching, deletes the least valuable pods first when scaling down, and reports status.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::Controller;
use kube::ResourceExt;
use serde_json::json;
use skiff_component::EventKind;

use crate::context::Context;
use crate::expectations::{owner_key, Expectations};
use crate::informers::Informer;
use crate::reconcile::{self, ReconcileError};
use crate::registration::Registration;
use crate::util::{self, ignore_missing, InvalidSelector};

pub const NAME: &str = "replicaset-controller";

pub const REGISTRATION: Registration = Registration {
    name: "replicaset",
    reporter: NAME,
    start,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Selector(#[from] InvalidSelector),
    #[error("replicaset has no spec")]
    NoSpec,
}

impl ReconcileError for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(e) if reconcile::is_conflict(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The controller's state: the shared pod informer and what it is waiting to see there.
struct State {
    ctx: Arc<Context>,
    pods: Informer<Pod>,
    expectations: Expectations<Pod>,
}

/// What a reconcile of one ReplicaSet should do.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Owned pods that no longer match the selector: drop our ownerReference.
    pub release: Vec<String>,
    /// Matching pods without a controller: take them.
    pub adopt: Vec<String>,
    /// How many new pods to create.
    pub create: usize,
    /// Pods to delete, least valuable first.
    pub delete: Vec<String>,
    pub status: ReplicaSetStatus,
    /// Check again then (a ready pod becomes available after minReadySeconds).
    pub requeue_after: Option<Duration>,
}

fn owned_by(pod: &Pod, uid: &str) -> bool {
    util::controller_ref(&pod.metadata).is_some_and(|r| r.uid == uid)
}

/// Compare pods for scale-down: the one to delete first sorts first.
fn deletion_rank(pod: &Pod, now: Timestamp) -> impl Ord {
    let assigned = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let phase = match util::pod_phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let ready_since = util::pod_ready_since(pod);
    let ready = ready_since.is_some();
    // Ready for less time sorts first; so does a larger restart count and a newer pod.
    let ready_for = ready_since
        .flatten()
        .map(|t| now.duration_since(t).as_secs())
        .unwrap_or(0);
    let restarts: i32 = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0);
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_microsecond())
        .unwrap_or(0);
    (
        assigned,
        phase,
        ready,
        ready_for,
        Reverse(restarts),
        Reverse(created),
    )
}

/// The pure decision: given the ReplicaSet and every pod in its namespace, what to do.
pub fn plan(rs: &ReplicaSet, pods: &[Pod], now: Timestamp) -> Result<Plan> {
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let spec = rs.spec.as_ref().ok_or(Error::NoSpec)?;
    let selector = util::selector(Some(&spec.selector))?;
    let desired = spec.replicas.unwrap_or(1).max(0) as usize;
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let deleting = util::is_deleting(&rs.metadata);
    let mut out = Plan::default();

    let mut mine: Vec<&Pod> = Vec::new();
    for pod in pods {
        let matches = selector.matches(&util::labels(&pod.metadata));
        if owned_by(pod, uid) {
            if matches {
                mine.push(pod);
            } else {
                out.release.push(pod.name_any());
            }
        } else if matches
            && !deleting
            && util::controller_ref(&pod.metadata).is_none()
            && !util::is_deleting(&pod.metadata)
        {
            out.adopt.push(pod.name_any());
            mine.push(pod);
        }
    }

    let mut active: Vec<&Pod> = mine
        .iter()
        .copied()
        .filter(|p| util::pod_is_active(p))
        .collect();
    if !deleting {
        if active.len() < desired {
            out.create = desired - active.len();
        } else if active.len() > desired {
            active.sort_by_cached_key(|p| deletion_rank(p, now));
            out.delete = active[..active.len() - desired]
                .iter()
                .map(|p| p.name_any())
                .collect();
        }
    }

    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let active: Vec<&Pod> = mine
        .iter()
        .copied()
        .filter(|p| util::pod_is_active(p))
        .collect();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let l = util::labels(&p.metadata);
            template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| util::pod_is_ready(p)).count();
    let available = active
        .iter()
        .filter(|p| util::pod_is_available(p, min_ready, now))
        .count();
    out.requeue_after = active
        .iter()
        .filter_map(|p| util::pod_available_in(p, min_ready, now))
        .min();
    let previous = rs.status.clone().unwrap_or_default();
    out.status = ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully_labeled as i32),
        ready_replicas: Some(ready as i32),
        available_replicas: Some(available as i32),
        observed_generation: rs.metadata.generation,
        conditions: previous.conditions,
        ..Default::default()
    };
    Ok(out)
}

/// A new pod from the template, controlled by `owner`.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    owner_name: &str,
    namespace: &str,
    owner: OwnerReference,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{owner_name}-")),
            namespace: Some(namespace.to_string()),
            labels: meta.labels,
            annotations: meta.annotations,
            owner_references: Some(vec![owner]),
            finalizers: meta.finalizers,
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

async fn reconcile(rs: Arc<ReplicaSet>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    let key = owner_key(rs.as_ref());
    if !state.expectations.satisfied(&key, &state.pods) {
        return Ok(reconcile::wait_for_store());
    }
    let ns = rs.namespace().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pods = util::in_namespace(&state.pods.store(), &ns);
    let plan = plan(&rs, &pods, util::now())?;
    let uid = rs.uid().unwrap_or_default();

    for name in &plan.release {
        if let Some(pod) = pods.iter().find(|p| &p.name_any() == name) {
            let refs: Vec<_> = pod
                .owner_references()
                .iter()
                .filter(|r| r.uid != uid)
                .cloned()
                .collect();
            let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.uid()}});
            let patched = pods_api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            if let Ok(p) = &patched {
                state.expectations.wrote(&key, p);
            }
            ignore_missing(patched)?;
        }
    }
    for name in &plan.adopt {
        if let Some(pod) = pods.iter().find(|p| &p.name_any() == name) {
            let mut refs = pod.owner_references().to_vec();
            refs.push(util::owner_ref(rs.as_ref()));
            let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.uid(), "resourceVersion": pod.resource_version()}});
            let patched = pods_api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            if let Ok(p) = &patched {
                state.expectations.wrote(&key, p);
            }
            ignore_missing(patched)?;
        }
    }
    if plan.create > 0 {
        let template = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default();
        let pod = pod_from_template(&template, &rs.name_any(), &ns, util::owner_ref(rs.as_ref()));
        for _ in 0..plan.create {
            match pods_api.create(&PostParams::default(), &pod).await {
                Ok(p) => {
                    state.expectations.wrote(&key, &p);
                    ctx.recorder
                        .publish_for(
                            rs.as_ref(),
                            EventKind::Normal,
                            "SuccessfulCreate",
                            &format!("Created pod: {}", p.name_any()),
                        )
                        .await
                }
                Err(e) => {
                    ctx.recorder
                        .publish_for(
                            rs.as_ref(),
                            EventKind::Warning,
                            "FailedCreate",
                            &format!("Error creating: {e}"),
                        )
                        .await;
                    return Err(e.into());
                }
            }
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
                rs.as_ref(),
                EventKind::Normal,
                "SuccessfulDelete",
                &format!("Deleted pod: {name}"),
            )
            .await;
    }

    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    util::write_status(&api, &rs.name_any(), rs.status.as_ref(), &plan.status).await?;
    ctx.metrics.reconcile(NAME, true);
    Ok(match plan.requeue_after {
        Some(d) => Action::requeue(d + Duration::from_millis(100)),
        None => Action::requeue(Duration::from_secs(300)),
    })
}

/// Which ReplicaSets care about a pod: its controller, or for an orphan every one that selects it.
fn owners_of_pod(pod: &Pod, store: &Store<ReplicaSet>) -> Vec<ObjectRef<ReplicaSet>> {
    util::interested_owners(&pod.metadata, "ReplicaSet", store, |o| {
        o.spec.as_ref().map(|s| &s.selector)
    })
}

fn start(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let sets = ctx.informers.get::<ReplicaSet>();
    let pods = ctx.informers.get::<Pod>();
    let store = sets.store();
    let metrics = ctx.metrics.clone();
    let state = Arc::new(State {
        ctx,
        pods: pods.clone(),
        expectations: Expectations::default(),
    });
    let controller = Controller::for_stream(sets.stream(), sets.store())
        .watches_stream(pods.stream(), move |pod| owners_of_pod(&pod, &store));
    reconcile::drain(controller.run(reconcile, reconcile::error_policy(NAME, metrics), state))
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    pub fn rs(replicas: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "rs-uid", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }))
        .unwrap()
    }

    pub fn pod(
        name: &str,
        owner: Option<&str>,
        node: Option<&str>,
        ready: bool,
        created: i64,
    ) -> Pod {
        let mut p = Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                creation_timestamp: Some(Time(Timestamp::from_second(created).ok().unwrap())),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(String::from),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(if node.is_some() { "Running" } else { "Pending" }.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(
                        Timestamp::from_second(created + 10).ok().unwrap(),
                    )),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        };
        if let Some(uid) = owner {
            p.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "web".into(),
                uid: uid.into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]);
        }
        p
    }

    #[test]
    fn creates_missing_replicas_and_adopts_orphans() {
        let now = Timestamp::now();
        let pods = vec![
            pod("a", Some("rs-uid"), Some("n"), true, 0),
            pod("orphan", None, None, false, 0),
        ];
        let p = plan(&rs(3), &pods, now).unwrap();
        assert_eq!(p.adopt, vec!["orphan"]);
        assert_eq!(p.create, 1);
        assert!(p.delete.is_empty());
        assert_eq!(p.status.replicas, 2);
        assert_eq!(p.status.ready_replicas, Some(1));
        assert_eq!(p.status.available_replicas, Some(1));
        assert_eq!(p.status.observed_generation, Some(2));
    }

    #[test]
    fn foreign_pods_are_left_alone_and_nonmatching_released() {
        let mut other = pod("other", Some("someone-else"), None, false, 0);
        other.metadata.name = Some("other".into());
        let mut stray = pod("stray", Some("rs-uid"), None, false, 0);
        stray.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
        let p = plan(&rs(1), &[other, stray], Timestamp::now()).unwrap();
        assert_eq!(p.release, vec!["stray"]);
        assert!(p.adopt.is_empty());
        assert_eq!(p.create, 1);
    }

    #[test]
    fn scale_down_removes_unscheduled_then_not_ready_then_newest() {
        let pods = vec![
            pod("ready-old", Some("rs-uid"), Some("n"), true, 100),
            pod("ready-new", Some("rs-uid"), Some("n"), true, 200),
            pod("notready", Some("rs-uid"), Some("n"), false, 50),
            pod("unscheduled", Some("rs-uid"), None, false, 10),
        ];
        let now = Timestamp::from_second(1000).ok().unwrap();
        assert_eq!(
            plan(&rs(3), &pods, now).unwrap().delete,
            vec!["unscheduled"]
        );
        assert_eq!(
            plan(&rs(2), &pods, now).unwrap().delete,
            vec!["unscheduled", "notready"]
        );
        assert_eq!(
            plan(&rs(1), &pods, now).unwrap().delete,
            vec!["unscheduled", "notready", "ready-new"]
        );
    }

    #[test]
    fn min_ready_seconds_delays_availability() {
        let mut r = rs(1);
        r.spec.as_mut().unwrap().min_ready_seconds = Some(30);
        let pods = vec![pod("a", Some("rs-uid"), Some("n"), true, 0)];
        let early = plan(&r, &pods, Timestamp::from_second(20).ok().unwrap()).unwrap();
        assert_eq!(early.status.available_replicas, Some(0));
        assert_eq!(early.requeue_after, Some(Duration::from_secs(20)));
        let late = plan(&r, &pods, Timestamp::from_second(41).ok().unwrap()).unwrap();
        assert_eq!(late.status.available_replicas, Some(1));
    }

    #[test]
    fn terminating_and_finished_pods_do_not_count() {
        let mut done = pod("done", Some("rs-uid"), Some("n"), false, 0);
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut going = pod("going", Some("rs-uid"), Some("n"), true, 0);
        going.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        let p = plan(&rs(2), &[done, going], Timestamp::now()).unwrap();
        assert_eq!(p.create, 2);
        assert_eq!(p.status.replicas, 0);
    }
}
