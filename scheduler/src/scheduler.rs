//! The scheduling loop. One task owns the cache and the queue; informer tasks (kube-runtime
//! watchers with reflectors) and binding tasks talk to it through a channel, so no locks are
//! needed and the cache is the snapshot each decision reads.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use rand::rngs::StdRng;
use rand::SeedableRng;
use skiff_component::{AbortOnDrop, EventKind, Recorder, Reporter};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::binder::{self, BindError};
use crate::cache::{Cache, NodeChange};
use crate::config::Config;
use crate::framework::{pod_key, Framework, PodInfo, PodKey};
use crate::queue::{QueuedPod, SchedulingQueue};

/// How the scheduler sees a pod.
#[derive(Debug, PartialEq, Eq)]
pub enum PodView<'a> {
    /// Waiting for this scheduler.
    Pending,
    /// Bound: counts against the node.
    Bound(&'a str),
    /// Finished, being deleted before binding, or another scheduler's: ignore.
    Ignored,
}

/// Classify a pod (pure).
pub fn classify<'a>(pod: &'a Pod, scheduler_name: &str) -> PodView<'a> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded") | Some("Failed")) {
        return PodView::Ignored;
    }
    let spec = pod.spec.as_ref();
    if let Some(node) = spec
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
    {
        return PodView::Bound(node);
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return PodView::Ignored;
    }
    let name = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or("default-scheduler");
    if name == scheduler_name {
        PodView::Pending
    } else {
        PodView::Ignored
    }
}

/// Selectors of the services in the pod's namespace that select it.
fn service_selectors(
    services: &Store<Service>,
    pod: &Pod,
) -> Vec<std::collections::BTreeMap<String, String>> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let labels = pod.metadata.labels.as_ref();
    services
        .state()
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
        .filter_map(|s| s.spec.as_ref()?.selector.clone())
        .filter(|sel| {
            !sel.is_empty()
                && sel
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .collect()
}

enum Msg {
    NodeApplied(Arc<Node>),
    NodeDeleted(String),
    NodesSynced(Vec<Arc<Node>>),
    PodApplied(Arc<Pod>),
    PodDeleted(Arc<Pod>),
    PodsSynced(Vec<Arc<Pod>>),
    Bound(Arc<Pod>),
    BindFailed {
        pod: Arc<Pod>,
        attempts: u32,
        error: BindError,
    },
}

fn informer<K, F>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    reader: Store<K>,
    tx: UnboundedSender<Msg>,
    map: F,
) -> AbortOnDrop<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    F: Fn(watcher::Event<K>, &Store<K>) -> Option<Msg> + Send + 'static,
{
    AbortOnDrop::spawn(async move {
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff();
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    if let Some(msg) = map(ev, &reader) {
                        if tx.send(msg).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, kind = %K::kind(&()), "watch failed; retrying")
                }
            }
        }
    })
}

struct Scheduler {
    client: Client,
    recorder: Recorder,
    cfg: Config,
    framework: Framework,
    cache: Cache,
    queue: SchedulingQueue,
    tx: UnboundedSender<Msg>,
    pods: Store<Pod>,
    services: Store<Service>,
    nodes_synced: bool,
    pods_synced: bool,
    /// The last failure message recorded per pod (condition + event written once per message).
    last_failure: HashMap<PodKey, String>,
    bind_slots: Arc<Semaphore>,
    writes: JoinSet<()>,
    rng: StdRng,
}

/// Schedule until `stop` completes. Dropping the returned future stops everything it started
/// except requests already sent.
pub async fn run_scheduler(
    client: Client,
    cfg: Config,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (tx, mut rx) = unbounded_channel();
    let (node_reader, node_writer) = reflector::store::<Node>();
    let (pod_reader, pod_writer) = reflector::store::<Pod>();
    let (service_reader, service_writer) = reflector::store::<Service>();
    // The informers stop when the loop ends or is dropped.
    let _informers = [
        informer(
            Api::<Node>::all(client.clone()),
            node_writer,
            node_reader,
            tx.clone(),
            |ev, store| match ev {
                watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                    Some(Msg::NodeApplied(Arc::new(n)))
                }
                watcher::Event::Delete(n) => {
                    Some(Msg::NodeDeleted(n.metadata.name.unwrap_or_default()))
                }
                watcher::Event::InitDone => Some(Msg::NodesSynced(store.state())),
                watcher::Event::Init => None,
            },
        ),
        informer(
            Api::<Pod>::all(client.clone()),
            pod_writer,
            pod_reader.clone(),
            tx.clone(),
            |ev, store| match ev {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                    Some(Msg::PodApplied(Arc::new(p)))
                }
                watcher::Event::Delete(p) => Some(Msg::PodDeleted(Arc::new(p))),
                watcher::Event::InitDone => Some(Msg::PodsSynced(store.state())),
                watcher::Event::Init => None,
            },
        ),
        // Services only feed spreading (a score): their store is read when a pod is scheduled.
        informer(
            Api::<Service>::all(client.clone()),
            service_writer,
            service_reader.clone(),
            tx.clone(),
            |_, _| None,
        ),
    ];
    let mut s = Scheduler {
        framework: crate::plugins::default_framework(&cfg.weights),
        cache: Cache::new(),
        queue: SchedulingQueue::new(
            cfg.initial_backoff,
            cfg.max_backoff,
            cfg.max_unschedulable_duration,
        ),
        bind_slots: Arc::new(Semaphore::new(cfg.bind_concurrency.max(1))),
        recorder: Recorder::new(client.clone(), Reporter::new(cfg.scheduler_name.clone())),
        client,
        cfg,
        tx,
        pods: pod_reader,
        services: service_reader,
        nodes_synced: false,
        pods_synced: false,
        last_failure: HashMap::new(),
        writes: JoinSet::new(),
        rng: StdRng::from_os_rng(),
    };
    tracing::info!(scheduler = %s.cfg.scheduler_name, "scheduling");
    futures::pin_mut!(stop);
    loop {
        while let Ok(m) = rx.try_recv() {
            s.handle(m);
        }
        while s.writes.try_join_next().is_some() {}
        s.queue.flush(Instant::now());
        let (a, b, u) = s.queue.lens();
        s.cfg.metrics.pending(a, b, u);
        if s.nodes_synced && s.pods_synced {
            if let Some(qp) = s.queue.pop() {
                s.schedule_one(qp);
                tokio::task::yield_now().await;
                if futures::poll!(&mut stop).is_ready() {
                    break;
                }
                continue;
            }
        }
        let wake = s.queue.next_wakeup().map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = &mut stop => break,
            m = rx.recv() => match m {
                Some(m) => s.handle(m),
                None => break,
            },
            _ = async { tokio::time::sleep_until(wake.expect("guarded")).await }, if wake.is_some() => {}
        }
    }
    Ok(())
}

/// Spawn a write (binding, status, event) on the loop's join set.
fn spawn_write(set: &mut JoinSet<()>, fut: impl Future<Output = ()> + Send + 'static) {
    set.spawn(fut);
}

impl Scheduler {
    fn handle(&mut self, m: Msg) {
        let now = Instant::now();
        match m {
            Msg::NodeApplied(n) => {
                if self.cache.set_node(n) != NodeChange::Irrelevant {
                    self.queue.move_all_unschedulable(now);
                }
            }
            Msg::NodeDeleted(name) => self.cache.remove_node(&name),
            Msg::NodesSynced(nodes) => {
                self.cache.resync_nodes(nodes);
                self.nodes_synced = true;
                self.queue.move_all_unschedulable(now);
            }
            Msg::PodApplied(p) => self.pod_applied(p, now),
            Msg::PodDeleted(p) => {
                let key = pod_key(&p);
                self.queue.delete(&key);
                self.last_failure.remove(&key);
                if self.cache.remove_pod(&key) {
                    self.queue.move_all_unschedulable(now);
                }
            }
            Msg::PodsSynced(pods) => {
                let mut bound = Vec::new();
                let mut pending = HashSet::new();
                for p in &pods {
                    match classify(p, &self.cfg.scheduler_name) {
                        PodView::Bound(node) => {
                            bound.push((Arc::new(PodInfo::new(p.clone())), node.to_string()))
                        }
                        PodView::Pending => {
                            pending.insert(pod_key(p));
                        }
                        PodView::Ignored => {}
                    }
                }
                self.cache.resync_pods(bound);
                for key in self.queue.keys() {
                    if !pending.contains(&key) {
                        self.queue.delete(&key);
                    }
                }
                self.pods_synced = true;
                self.queue.move_all_unschedulable(now);
            }
            Msg::Bound(p) => {
                if let Some(created) = p.metadata.creation_timestamp.as_ref() {
                    let secs = Timestamp::now().duration_since(created.0).as_secs_f64();
                    self.cfg.metrics.creation_to_binding(secs.max(0.0));
                }
            }
            Msg::BindFailed {
                pod,
                attempts,
                error,
            } => {
                let key = pod_key(&pod);
                self.cache.forget(&key);
                tracing::warn!(pod = %key, %error, "binding failed");
                self.cfg.metrics.attempt("error");
                match error {
                    BindError::Failed(_) => self.queue.add_backoff(pod, attempts + 1, now),
                    BindError::Refused(_) => {
                        // The pod changed under us (bound elsewhere, deleted, recreated):
                        // act on what the informer holds now.
                        let (ns, name) = key.split_once('/').unwrap_or(("default", &key));
                        if let Some(current) = self.pods.get(&ObjectRef::new(name).within(ns)) {
                            self.pod_applied(current, now);
                        }
                    }
                }
            }
        }
    }

    fn pod_applied(&mut self, p: Arc<Pod>, now: Instant) {
        let key = pod_key(&p);
        match classify(&p, &self.cfg.scheduler_name) {
            PodView::Bound(node) => {
                self.queue.delete(&key);
                self.last_failure.remove(&key);
                let node = node.to_string();
                self.cache.add_bound_pod(Arc::new(PodInfo::new(p)), &node);
            }
            PodView::Pending => {
                if !self.cache.contains_pod(&key) {
                    self.queue.add(p, now);
                }
            }
            PodView::Ignored => {
                self.queue.delete(&key);
                if self.cache.remove_pod(&key) {
                    self.queue.move_all_unschedulable(now);
                }
            }
        }
    }

    fn schedule_one(&mut self, qp: QueuedPod) {
        let key = pod_key(&qp.pod);
        if self.cache.contains_pod(&key) {
            return;
        }
        let mut info = PodInfo::new(qp.pod.clone());
        info.services = service_selectors(&self.services, &qp.pod);
        let info = Arc::new(info);
        let started = Instant::now();
        let result = self
            .framework
            .schedule(&info, self.cache.nodes(), &mut self.rng);
        self.cfg
            .metrics
            .algorithm_duration(started.elapsed().as_secs_f64());
        match result {
            Ok(place) => {
                tracing::debug!(pod = %key, node = %place.node, feasible = place.feasible, "scheduled");
                if let Err(e) = self.cache.assume(info, &place.node) {
                    tracing::warn!(error = %e, "assume");
                    return;
                }
                self.last_failure.remove(&key);
                self.cfg.metrics.attempt("scheduled");
                let (client, tx, slots) = (
                    self.client.clone(),
                    self.tx.clone(),
                    self.bind_slots.clone(),
                );
                let pod = qp.pod;
                let attempts = qp.attempts;
                let recorder = self.recorder.clone();
                spawn_write(&mut self.writes, async move {
                    let Ok(permit) = slots.acquire().await else {
                        return;
                    };
                    let bound = binder::bind(&client, &pod, &place.node).await;
                    // The binding slot is free again before the Event is written.
                    drop(permit);
                    let msg = match bound {
                        Ok(()) => {
                            let message = format!("Successfully assigned {key} to {}", place.node);
                            recorder
                                .publish_for(pod.as_ref(), EventKind::Normal, "Scheduled", &message)
                                .await;
                            Msg::Bound(pod)
                        }
                        Err(error) => Msg::BindFailed {
                            pod,
                            attempts,
                            error,
                        },
                    };
                    let _ = tx.send(msg);
                });
            }
            Err(fit) => {
                self.cfg.metrics.attempt("unschedulable");
                let message = fit.to_string();
                tracing::debug!(pod = %key, %message, "unschedulable");
                let pod = qp.pod.clone();
                self.queue.unschedulable(qp, Instant::now());
                if self.last_failure.get(&key) == Some(&message) {
                    return;
                }
                self.last_failure.insert(key.clone(), message.clone());
                if binder::has_unschedulable_condition(&pod, &message) {
                    return;
                }
                let client = self.client.clone();
                let recorder = self.recorder.clone();
                spawn_write(&mut self.writes, async move {
                    if let Err(e) = binder::set_unschedulable(&client, &pod, &message).await {
                        tracing::warn!(pod = %key, error = %e, "setting PodScheduled=False");
                    }
                    recorder
                        .publish_for(
                            pod.as_ref(),
                            EventKind::Warning,
                            "FailedScheduling",
                            &message,
                        )
                        .await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn classify_decides_which_pods_are_ours() {
        let pending = pod(json!({"metadata": {"name": "a"}, "spec": {"containers": []}}));
        assert_eq!(classify(&pending, "default-scheduler"), PodView::Pending);
        assert_eq!(classify(&pending, "other"), PodView::Ignored);
        let bound =
            pod(json!({"metadata": {"name": "a"}, "spec": {"containers": [], "nodeName": "n1"}}));
        assert_eq!(classify(&bound, "x"), PodView::Bound("n1"));
        let done = pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [], "nodeName": "n1"}, "status": {"phase": "Succeeded"}}),
        );
        assert_eq!(classify(&done, "default-scheduler"), PodView::Ignored);
        let deleting = pod(
            json!({"metadata": {"name": "a", "deletionTimestamp": "2024-01-01T00:00:00Z"}, "spec": {"containers": []}}),
        );
        assert_eq!(classify(&deleting, "default-scheduler"), PodView::Ignored);
        let named = pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [], "schedulerName": "mine"}}),
        );
        assert_eq!(classify(&named, "mine"), PodView::Pending);
    }
}
