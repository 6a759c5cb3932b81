//! End to end: real etcd, the apiserver, scheduler and controllers in-process, and two agents
//! (two nodes: own name, containerd namespace, podCIDR, CNI bridge and API port) on one real
//! containerd. Requires root (containerd, runc, CNI).
//!
//! Every test gets its own cluster and tears it down by PID, including on failure: containers
//! killed and removed, sandboxes deleted through CNI DEL, bridges deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::ResourceExt;
use serde_json::json;
use skiff_testkit::containerd::{
    http_get_at, running_as_root, AgentRun, ContainerdProc, TestNet, IMAGE,
};
use skiff_testkit::{wait_for, TestCluster};
use tempfile::TempDir;

/// The same busybox image under a second reference, for rollouts.
const IMAGE_V2: &str = "skiff.test/busybox:v2";
/// A reference no node has and none can pull.
const BROKEN_IMAGE: &str = "skiff.test/does-not-exist:1";
const NODES: [&str; 2] = ["e2e-node-a", "e2e-node-b"];
/// How long a node may go without renewing its Lease (the agents renew every second).
const GRACE: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(60);

/// An in-process component (scheduler or controllers) stopped through its shutdown future.
struct Component {
    name: &'static str,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Component {
    fn spawn<F>(
        name: &'static str,
        run: impl FnOnce(futures::future::BoxFuture<'static, ()>) -> F,
    ) -> Component
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(async move {
            let _ = rx.await;
        }
        .boxed()));
        Component { name, stop, task }
    }

    /// Stop and report (rather than panic on) a failure, so teardown always completes.
    async fn stop(mut self) -> Option<String> {
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(10), &mut self.task).await {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(format!("{} returned an error: {e:#}", self.name)),
            Ok(Err(e)) => Some(format!("{} panicked: {e}", self.name)),
            Err(_) => {
                self.task.abort();
                Some(format!("{} did not stop within 10 s", self.name))
            }
        }
    }
}

/// One node: an agent with its own containerd namespace, root dir, bridge and subnet.
struct NodeRun {
    name: String,
    root: TempDir,
    net: TestNet,
    agent: std::sync::Mutex<Option<AgentRun>>,
}

/// A whole cluster with two nodes.
struct E2e {
    cluster: TestCluster,
    containerd: ContainerdProc,
    nodes: Vec<NodeRun>,
    scheduler: Option<Component>,
    controllers: Option<Component>,
    images: TempDir,
}

impl E2e {
    /// `index` (unique per test in this file) picks the nodes' bridges and subnets.
    async fn start(index: u8) -> E2e {
        let cluster = TestCluster::start().await.unwrap();
        let containerd = ContainerdProc::start().await;
        let images = tempfile::Builder::new()
            .prefix("skiff-e2e-images-")
            .tempdir()
            .unwrap();
        let mut nodes = Vec::new();
        for (i, name) in NODES.iter().enumerate() {
            containerd
                .import_busybox(name, images.path(), &[IMAGE, IMAGE_V2])
                .await;
            let net = TestNet::new(100 + 2 * index + i as u8);
            let root = tempfile::Builder::new()
                .prefix("skiff-e2e-agent-")
                .tempdir()
                .unwrap();
            let mut config = AgentRun::config(name, &containerd, name, root.path(), &net);
            config.heartbeat_interval = Duration::from_secs(1);
            let agent = AgentRun::spawn(&cluster, config);
            nodes.push(NodeRun {
                name: name.to_string(),
                root,
                net,
                agent: std::sync::Mutex::new(Some(agent)),
            });
        }
        let scheduler_config = skiff_scheduler::Config {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            ..Default::default()
        };
        let client = cluster.client();
        let scheduler = Component::spawn("scheduler", |stop| {
            skiff_scheduler::run(client, scheduler_config, stop)
        });
        let controllers_config = skiff_controllers::Config {
            node_monitor_grace_period: GRACE,
            node_monitor_period: Duration::from_millis(500),
            // The agents bring their own podCIDRs.
            cluster_cidr: None,
            gc_resync_period: Duration::from_secs(5),
            root_ca: cluster.ca_pem(),
            ..Default::default()
        };
        let client = cluster.client();
        let controllers = Component::spawn("controllers", |stop| {
            skiff_controllers::run(client, controllers_config, stop)
        });
        let env = E2e {
            cluster,
            containerd,
            nodes,
            scheduler: Some(scheduler),
            controllers: Some(controllers),
            images,
        };
        for n in NODES {
            env.wait_node_ready(n, "True").await;
        }
        env
    }

    /// Tear everything down, then re-raise the test's panic if it had one. Teardown problems
    /// fail the test too, but only after everything was stopped.
    async fn finish(mut self, outcome: std::thread::Result<()>) {
        let mut problems = Vec::new();
        for c in [self.controllers.take(), self.scheduler.take()]
            .into_iter()
            .flatten()
        {
            problems.extend(c.stop().await);
        }
        for n in &self.nodes {
            let agent = n.agent.lock().unwrap().take();
            if let Some(a) = agent {
                a.stop().await;
            }
        }
        self.containerd.stop().await;
        for n in &self.nodes {
            n.net.cleanup(n.root.path()).await;
        }
        self.cluster.stop().await;
        drop(self.images);
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
        assert!(problems.is_empty(), "teardown: {problems:?}");
    }

    fn client(&self) -> kube::Client {
        self.cluster.client()
    }

    fn api<K>(&self, ns: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client(), ns)
    }

    async fn wait_node_ready(&self, name: &str, status: &str) -> Node {
        let nodes = Api::<Node>::all(self.client());
        wait_for(&format!("node {name} Ready={status}"), WAIT, || {
            let nodes = nodes.clone();
            async move {
                let n = nodes.get_opt(name).await.ok()??;
                (node_ready(&n).as_deref() == Some(status)).then_some(n)
            }
        })
        .await
    }

    /// Stop one node's agent (its shutdown future); its containers keep running.
    async fn stop_agent(&self, node: &str) {
        let n = self.nodes.iter().find(|n| n.name == node).unwrap();
        let agent = n.agent.lock().unwrap().take();
        agent.expect("agent is running").stop().await;
    }

    async fn create_deployment(&self, ns: &str, d: serde_json::Value) -> Deployment {
        let d: Deployment = serde_json::from_value(d).unwrap();
        self.api::<Deployment>(ns)
            .create(&PostParams::default(), &d)
            .await
            .unwrap()
    }

    /// Wait until the rollout is complete as `kubectl rollout status` sees it.
    async fn wait_rolled_out(&self, ns: &str, name: &str) -> Deployment {
        let api = self.api::<Deployment>(ns);
        wait_for(&format!("deployment {ns}/{name} rolled out"), WAIT, || {
            let api = api.clone();
            async move {
                let d = api.get(name).await.ok()?;
                rolled_out(&d).then_some(d)
            }
        })
        .await
    }

    /// Pods matching `selector` that are not being deleted.
    async fn live_pods(&self, ns: &str, selector: &str) -> Vec<Pod> {
        self.api::<Pod>(ns)
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    async fn replica_sets(&self, ns: &str, selector: &str) -> Vec<ReplicaSet> {
        self.api::<ReplicaSet>(ns)
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items
    }

    /// Wait until no object of kind `K` named `name` exists.
    async fn wait_gone<K>(&self, api: &Api<K>, name: &str, what: &str)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        wait_for(&format!("{what} {name} to be gone"), WAIT, || async move {
            matches!(api.get_opt(name).await, Ok(None)).then_some(())
        })
        .await
    }

    /// Every pod container (in both nodes' containerd namespaces), as pod UIDs.
    async fn container_pod_uids(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for n in NODES {
            let cd = self.containerd.client_in(n).await;
            for c in cd.list_pod_containers(None).await.unwrap() {
                out.insert(c.pod_uid);
            }
        }
        out
    }
}

/// Run `body` against a fresh two-node cluster; always tear the cluster down.
async fn with_cluster<F>(index: u8, body: F)
where
    F: for<'a> FnOnce(&'a E2e) -> futures::future::BoxFuture<'a, ()>,
{
    let env = E2e::start(index).await;
    let outcome = AssertUnwindSafe(body(&env)).catch_unwind().await;
    env.finish(outcome).await;
}

fn node_ready(n: &Node) -> Option<String> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_node(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

fn pod_image(p: &Pod) -> String {
    p.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

fn pod_ip(p: &Pod) -> Option<String> {
    p.status.as_ref()?.pod_ip.clone()
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// `kubectl rollout status`'s notion of done.
fn rolled_out(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(s) = &d.status else { return false };
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
}

fn deployment_condition(d: &Deployment, kind: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

fn revision(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<i64> {
    meta.annotations
        .as_ref()?
        .get("deployment.kubernetes.io/revision")?
        .parse()
        .ok()
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// A busybox httpd serving `/www` on 8080, Ready when `GET /` answers.
fn web_container(image: &str) -> serde_json::Value {
    json!({
        "name": "web",
        "image": image,
        "command": ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1},
    })
}

/// A RollingUpdate (maxSurge 1, maxUnavailable 1) Deployment of `web_container(image)`.
fn web_deployment(name: &str, replicas: i32, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [web_container(image)],
                },
            },
        },
    })
}

/// Watches the pods matching a selector and records, after every event, how many are
/// available (Ready and not being deleted), so a rollout can be checked continuously.
struct AvailabilityWatch {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<(usize, String)>>,
}

impl AvailabilityWatch {
    /// Returns once the initial list is in.
    async fn start(api: Api<Pod>, selector: &str) -> AvailabilityWatch {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (synced_tx, synced) = tokio::sync::oneshot::channel::<()>();
        let cfg = watcher::Config::default().labels(selector);
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, cfg).boxed();
            let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
            let mut init: BTreeMap<String, Pod> = BTreeMap::new();
            let mut history = Vec::new();
            let mut synced_tx = Some(synced_tx);
            let available = |pods: &BTreeMap<String, Pod>| {
                pods.values()
                    .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
                    .count()
            };
            loop {
                let event = tokio::select! {
                    e = stream.try_next() => e,
                    _ = &mut stopped => break,
                };
                let what = match event {
                    Ok(Some(watcher::Event::Init)) => {
                        init.clear();
                        continue;
                    }
                    Ok(Some(watcher::Event::InitApply(p))) => {
                        init.insert(p.name_any(), p);
                        continue;
                    }
                    Ok(Some(watcher::Event::InitDone)) => {
                        pods = std::mem::take(&mut init);
                        if let Some(tx) = synced_tx.take() {
                            let _ = tx.send(());
                        }
                        "initial list".to_string()
                    }
                    Ok(Some(watcher::Event::Apply(p))) => {
                        let what = format!(
                            "{} ready={} deleting={}",
                            p.name_any(),
                            pod_ready(&p),
                            p.metadata.deletion_timestamp.is_some()
                        );
                        pods.insert(p.name_any(), p);
                        what
                    }
                    Ok(Some(watcher::Event::Delete(p))) => {
                        pods.remove(&p.name_any());
                        format!("{} removed", p.name_any())
                    }
                    Ok(None) => break,
                    Err(e) => {
                        history.push((usize::MAX, format!("watch error: {e}")));
                        continue;
                    }
                };
                history.push((available(&pods), what));
            }
            history
        });
        synced.await.expect("the availability watch lists the pods");
        AvailabilityWatch { stop, task }
    }

    /// The lowest number of available pods seen, and the history for failure messages.
    async fn finish(self) -> (usize, Vec<(usize, String)>) {
        let _ = self.stop.send(());
        let history = self.task.await.unwrap();
        let min = history.iter().map(|(n, _)| *n).min().unwrap_or(0);
        (min, history)
    }
}

/// What `kubectl rollout undo` does: copy the previous revision's ReplicaSet template (minus
/// its pod-template-hash label) and annotations into the Deployment with a JSON patch.
async fn rollout_undo(env: &E2e, ns: &str, name: &str, selector: &str) {
    let d = env.api::<Deployment>(ns).get(name).await.unwrap();
    let current = revision(&d.metadata).expect("the deployment has a revision");
    let mut rss = env.replica_sets(ns, selector).await;
    rss.retain(|rs| revision(&rs.metadata).is_some_and(|r| r < current));
    rss.sort_by_key(|rs| revision(&rs.metadata));
    let previous = rss.pop().expect("a previous revision exists");
    let mut template = previous.spec.unwrap().template.unwrap();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    const SKIP: [&str; 5] = [
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
    ];
    let mut annotations: BTreeMap<String, String> = d
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| SKIP.contains(&k.as_str()))
        .collect();
    for (k, v) in previous.metadata.annotations.unwrap_or_default() {
        if !SKIP.contains(&k.as_str()) {
            annotations.insert(k, v);
        }
    }
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]))
    .unwrap();
    env.api::<Deployment>(ns)
        .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .unwrap();
}

/// Set the image of the Deployment's first container (`kubectl set image`).
async fn set_image(env: &E2e, ns: &str, name: &str, image: &str) {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}});
    env.api::<Deployment>(ns)
        .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
}

fn skip() -> bool {
    if running_as_root() {
        false
    } else {
        eprintln!("skipped: needs root for containerd and CNI");
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_becomes_available_rolls_out_without_downtime_and_undoes() {
    if skip() {
        return;
    }
    with_cluster(1, |env| {
        Box::pin(async move {
            let (ns, name, sel) = ("default", "web", "app=web");
            env.create_deployment(ns, web_deployment(name, 3, IMAGE))
                .await;
            let d = env.wait_rolled_out(ns, name).await;
            assert_eq!(d.status.as_ref().unwrap().ready_replicas, Some(3));
            assert_eq!(revision(&d.metadata), Some(1));
            let first = env.live_pods(ns, sel).await;
            assert_eq!(first.len(), 3);
            // Spread over both nodes, and each pod serves HTTP on its pod IP.
            let nodes: BTreeSet<String> = first.iter().map(pod_node).collect();
            assert_eq!(nodes.len(), 2, "pods spread over both nodes: {nodes:?}");
            for p in &first {
                assert!(pod_ready(p));
                let ip = pod_ip(p).expect("pod IP");
                let (code, body) = http_get_at(&ip, 8080, "/").await.expect("httpd answers");
                assert_eq!((code, body.trim()), (200, p.name_any().as_str()));
            }
            let first_rs = env.replica_sets(ns, sel).await;
            assert_eq!(first_rs.len(), 1);
            let first_rs_name = first_rs[0].name_any();

            // Roll out v2, watching availability the whole time: never below 3 - maxUnavailable.
            let watch = AvailabilityWatch::start(env.api(ns), sel).await;
            set_image(env, ns, name, IMAGE_V2).await;
            let d = wait_for("the v2 rollout to finish", WAIT, || async {
                let d = env.api::<Deployment>(ns).get(name).await.ok()?;
                (rolled_out(&d) && revision(&d.metadata) == Some(2)).then_some(d)
            })
            .await;
            let (min, history) = watch.finish().await;
            assert!(min >= 2, "availability dropped to {min}: {history:#?}");
            // The watch saw the rollout: the old pods, and only they, being deleted.
            let deleted: BTreeSet<String> = history
                .iter()
                .filter(|(_, w)| w.ends_with("deleting=true") || w.ends_with(" removed"))
                .filter_map(|(_, w)| w.split(' ').next().map(str::to_string))
                .collect();
            let first_names: BTreeSet<String> = first.iter().map(|p| p.name_any()).collect();
            assert_eq!(deleted, first_names, "{history:#?}");
            assert_eq!(d.status.as_ref().unwrap().available_replicas, Some(3));
            let second = env.live_pods(ns, sel).await;
            assert_eq!(second.len(), 3);
            let old: BTreeSet<String> = first
                .iter()
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            for p in &second {
                assert_eq!(pod_image(p), IMAGE_V2);
                assert!(pod_ready(p));
                assert!(
                    !old.contains(p.metadata.uid.as_ref().unwrap()),
                    "every pod was replaced"
                );
            }
            let rss = env.replica_sets(ns, sel).await;
            assert_eq!(rss.len(), 2);
            for rs in &rss {
                let want = if rs.name_any() == first_rs_name { 0 } else { 3 };
                assert_eq!(spec_replicas(rs), want, "{}", rs.name_any());
            }

            // `rollout undo`: back to the first template, reusing its ReplicaSet as revision 3.
            let watch = AvailabilityWatch::start(env.api(ns), sel).await;
            rollout_undo(env, ns, name, sel).await;
            let d = wait_for("the undo to finish", WAIT, || async {
                let d = env.api::<Deployment>(ns).get(name).await.ok()?;
                (rolled_out(&d) && revision(&d.metadata) == Some(3)).then_some(d)
            })
            .await;
            let (min, history) = watch.finish().await;
            assert!(
                min >= 2,
                "availability dropped to {min} during undo: {history:#?}"
            );
            assert_eq!(
                d.spec
                    .as_ref()
                    .unwrap()
                    .template
                    .spec
                    .as_ref()
                    .unwrap()
                    .containers[0]
                    .image
                    .as_deref(),
                Some(IMAGE)
            );
            let third = env.live_pods(ns, sel).await;
            assert_eq!(third.len(), 3);
            assert!(third.iter().all(|p| pod_image(p) == IMAGE && pod_ready(p)));
            let rss = env.replica_sets(ns, sel).await;
            assert_eq!(rss.len(), 2, "the old ReplicaSet was reused");
            let reused = rss
                .iter()
                .find(|rs| rs.name_any() == first_rs_name)
                .unwrap();
            assert_eq!(spec_replicas(reused), 3);
            assert_eq!(revision(&reused.metadata), Some(3));
            assert!(rss
                .iter()
                .all(|rs| rs.name_any() == first_rs_name || spec_replicas(rs) == 0));
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_to_a_broken_image_stops_at_max_unavailable_and_exceeds_its_deadline() {
    if skip() {
        return;
    }
    with_cluster(2, |env| {
        Box::pin(async move {
            let (ns, name, sel) = ("default", "broken", "app=broken");
            let mut d = web_deployment(name, 3, IMAGE);
            d["spec"]["progressDeadlineSeconds"] = json!(6);
            env.create_deployment(ns, d).await;
            let d = env.wait_rolled_out(ns, name).await;
            assert_eq!(
                deployment_condition(&d, "Progressing")
                    .map(|c| c.0)
                    .as_deref(),
                Some("True")
            );
            let old_rs = env.replica_sets(ns, sel).await[0].name_any();

            let watch = AvailabilityWatch::start(env.api(ns), sel).await;
            set_image(env, ns, name, BROKEN_IMAGE).await;
            let d = wait_for(
                "Progressing=False/ProgressDeadlineExceeded",
                WAIT,
                || async {
                    let d = env.api::<Deployment>(ns).get(name).await.ok()?;
                    (deployment_condition(&d, "Progressing")
                        == Some(("False".into(), "ProgressDeadlineExceeded".into())))
                    .then_some(d)
                },
            )
            .await;
            let (min, history) = watch.finish().await;
            assert!(min >= 2, "availability dropped to {min}: {history:#?}");
            // The rollout stopped where maxUnavailable lets it: 2 old pods serve, 2 new ones
            // (maxSurge) cannot start.
            let status = d.status.clone().unwrap();
            assert_eq!(status.available_replicas, Some(2), "{status:?}");
            assert_eq!(status.unavailable_replicas, Some(2), "{status:?}");
            assert_eq!(status.updated_replicas, Some(2), "{status:?}");
            let rss = env.replica_sets(ns, sel).await;
            assert_eq!(rss.len(), 2);
            for rs in &rss {
                assert_eq!(spec_replicas(rs), 2, "{}", rs.name_any());
            }
            let pods = env.live_pods(ns, sel).await;
            let (broken, serving): (Vec<&Pod>, Vec<&Pod>) =
                pods.iter().partition(|p| pod_image(p) == BROKEN_IMAGE);
            assert_eq!(serving.len(), 2);
            assert!(serving.iter().all(|p| pod_ready(p)));
            assert_eq!(broken.len(), 2);
            for p in broken {
                assert!(!pod_ready(p));
                let waiting = p
                    .status
                    .as_ref()
                    .unwrap()
                    .container_statuses
                    .as_ref()
                    .unwrap()[0]
                    .state
                    .as_ref()
                    .unwrap()
                    .waiting
                    .clone()
                    .unwrap();
                assert!(
                    matches!(
                        waiting.reason.as_deref(),
                        Some("ErrImagePull" | "ImagePullBackOff")
                    ),
                    "{waiting:?}"
                );
            }
            assert!(rss.iter().any(|rs| rs.name_any() == old_rs));
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_lost_node_come_back_on_the_other_node() {
    if skip() {
        return;
    }
    with_cluster(3, |env| Box::pin(async move {
        let (ns, name, sel) = ("default", "survivor", "app=survivor");
        let mut d = web_deployment(name, 4, IMAGE);
        d["spec"]["template"]["spec"]["tolerations"] = json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
        ]);
        env.create_deployment(ns, d).await;
        env.wait_rolled_out(ns, name).await;
        let before = env.live_pods(ns, sel).await;
        let mut per_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in &before {
            per_node.entry(pod_node(p)).or_default().push(p.name_any());
        }
        assert_eq!(per_node.len(), 2, "pods on both nodes: {per_node:?}");
        let (lost, survivor) = (NODES[0], NODES[1]);
        let lost_pods = per_node[lost].clone();

        let stopped = std::time::Instant::now();
        env.stop_agent(lost).await;
        // Ready=Unknown and the unreachable NoExecute taint, within a few grace periods.
        let nodes = Api::<Node>::all(env.client());
        wait_for("the lost node to be Unknown and tainted unreachable", WAIT, || {
            let nodes = nodes.clone();
            async move {
                let n = nodes.get(lost).await.ok()?;
                let tainted = n.spec.as_ref()?.taints.as_ref()?.iter().any(|t| {
                    t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute"
                });
                (node_ready(&n).as_deref() == Some("Unknown") && tainted).then_some(())
            }
        })
        .await;
        assert!(
            stopped.elapsed() < 4 * GRACE,
            "node loss noticed after {:?}",
            stopped.elapsed()
        );
        assert_eq!(
            node_ready(&Api::<Node>::all(env.client()).get(survivor).await.unwrap()).as_deref(),
            Some("True")
        );
        // The lost pods are evicted after their 2 s toleration and replaced on the survivor.
        let after = wait_for("4 ready pods, all on the surviving node", WAIT, || async {
            let pods = env.live_pods(ns, sel).await;
            (pods.len() == 4 && pods.iter().all(|p| pod_node(p) == survivor && pod_ready(p)))
                .then_some(pods)
        })
        .await;
        let pods = env.api::<Pod>(ns);
        for p in &lost_pods {
            // Marked for deletion; with no agent to confirm, they stay Terminating.
            let p = pods.get(p).await.unwrap();
            assert!(p.metadata.deletion_timestamp.is_some(), "{} evicted", p.name_any());
            assert!(!pod_ready(&p));
        }
        assert!(after.iter().all(|p| !lost_pods.contains(&p.name_any())));
        env.wait_rolled_out(ns, name).await;
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_pod_readiness() {
    if skip() {
        return;
    }
    with_cluster(4, |env| Box::pin(async move {
        let ns = "default";
        let dirs: Vec<TempDir> = (0..2)
            .map(|_| tempfile::Builder::new().prefix("skiff-e2e-www-").tempdir().unwrap())
            .collect();
        let names = ["ep-0", "ep-1"];
        for (name, dir) in names.iter().zip(&dirs) {
            // Ready while `<dir>/ready` exists on the host (served at /ready).
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"app": "ep"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "web", "image": IMAGE,
                        "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1},
                        "volumeMounts": [{"name": "www", "mountPath": "/www"}],
                    }],
                    "volumes": [{"name": "www", "hostPath": {"path": dir.path().display().to_string()}}],
                },
            }))
            .unwrap();
            env.api::<Pod>(ns).create(&PostParams::default(), &pod).await.unwrap();
        }
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "ep"},
            "spec": {"selector": {"app": "ep"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]},
        }))
        .unwrap();
        env.api::<Service>(ns).create(&PostParams::default(), &svc).await.unwrap();

        let pods = env.api::<Pod>(ns);
        let ips: HashMap<&str, String> = {
            let mut m = HashMap::new();
            for name in names {
                let p = wait_for(&format!("{name} running with an IP"), WAIT, || async {
                    let p = pods.get(name).await.ok()?;
                    (phase(&p) == "Running" && pod_ip(&p).is_some()).then_some(p)
                })
                .await;
                m.insert(name, pod_ip(&p).unwrap());
            }
            m
        };
        let ip = |n: &str| ips[n].clone();
        let set = |v: &[&str]| v.iter().map(|n| ip(n)).collect::<BTreeSet<_>>();

        // (ready, not ready) addresses in the Endpoints and in the EndpointSlice.
        let wait_endpoints = |ready: BTreeSet<String>, not_ready: BTreeSet<String>| async move {
            let eps = env.api::<Endpoints>(ns);
            let slices = env.api::<EndpointSlice>(ns);
            let what = format!("endpoints ready={ready:?} notReady={not_ready:?}");
            let ep = wait_for(&what, WAIT, || {
                let (eps, slices, ready, not_ready) = (eps.clone(), slices.clone(), &ready, &not_ready);
                async move {
                    let ep = eps.get_opt("ep").await.ok()??;
                    let (mut r, mut nr) = (BTreeSet::new(), BTreeSet::new());
                    for s in ep.subsets.clone().unwrap_or_default() {
                        r.extend(s.addresses.unwrap_or_default().into_iter().map(|a| a.ip));
                        nr.extend(s.not_ready_addresses.unwrap_or_default().into_iter().map(|a| a.ip));
                    }
                    if (&r, &nr) != (ready, not_ready) {
                        return None;
                    }
                    let list = slices
                        .list(&ListParams::default().labels("kubernetes.io/service-name=ep"))
                        .await
                        .ok()?;
                    let (mut sr, mut snr) = (BTreeSet::new(), BTreeSet::new());
                    for s in list.items {
                        for e in s.endpoints {
                            let is_ready = e.conditions.as_ref().and_then(|c| c.ready) == Some(true);
                            for a in e.addresses {
                                if is_ready { sr.insert(a) } else { snr.insert(a) };
                            }
                        }
                    }
                    ((&sr, &snr) == (ready, not_ready)).then_some(ep)
                }
            })
            .await;
            ep
        };

        // Neither is ready yet.
        wait_endpoints(BTreeSet::new(), set(&["ep-0", "ep-1"])).await;
        std::fs::write(dirs[0].path().join("ready"), "ok").unwrap();
        let ep = wait_endpoints(set(&["ep-0"]), set(&["ep-1"])).await;
        let subset = &ep.subsets.as_ref().unwrap()[0];
        let port = &subset.ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("web"), 8080), "named targetPort resolved");
        let addr = &subset.addresses.as_ref().unwrap()[0];
        let target = addr.target_ref.as_ref().unwrap();
        assert_eq!((target.kind.as_deref(), target.name.as_deref()), (Some("Pod"), Some("ep-0")));
        let p0 = pods.get("ep-0").await.unwrap();
        assert_eq!(addr.node_name.as_deref(), Some(pod_node(&p0).as_str()));

        std::fs::write(dirs[1].path().join("ready"), "ok").unwrap();
        wait_endpoints(set(&["ep-0", "ep-1"]), BTreeSet::new()).await;
        std::fs::remove_file(dirs[0].path().join("ready")).unwrap();
        wait_endpoints(set(&["ep-1"]), set(&["ep-0"])).await;
        pods.delete("ep-1", &DeleteParams::default()).await.unwrap();
        wait_endpoints(BTreeSet::new(), set(&["ep-0"])).await;
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_foreground_and_orphan_deletes_of_a_deployment() {
    if skip() {
        return;
    }
    with_cluster(5, |env| {
        Box::pin(async move {
            let ns = "default";
            for name in ["bg", "fg", "orphan"] {
                env.create_deployment(ns, web_deployment(name, 2, IMAGE))
                    .await;
            }
            for name in ["bg", "fg", "orphan"] {
                env.wait_rolled_out(ns, name).await;
            }
            let deployments = env.api::<Deployment>(ns);
            let rs_api = env.api::<ReplicaSet>(ns);
            let pod_api = env.api::<Pod>(ns);

            // Background: the Deployment goes at once, then its ReplicaSet and pods.
            let bg_pods: Vec<String> = env
                .live_pods(ns, "app=bg")
                .await
                .iter()
                .map(|p| p.name_any())
                .collect();
            assert_eq!(bg_pods.len(), 2);
            deployments
                .delete("bg", &DeleteParams::background())
                .await
                .unwrap();
            env.wait_gone(&deployments, "bg", "deployment").await;
            wait_for("bg's ReplicaSets and pods to be gone", WAIT, || async {
                let rss = env.replica_sets(ns, "app=bg").await;
                let pods = pod_api
                    .list(&ListParams::default().labels("app=bg"))
                    .await
                    .ok()?;
                (rss.is_empty() && pods.items.is_empty()).then_some(())
            })
            .await;

            // Foreground: the Deployment stays (with the foregroundDeletion finalizer) until its
            // ReplicaSet is gone.
            deployments
                .delete("fg", &DeleteParams::foreground())
                .await
                .unwrap();
            let d = deployments.get_opt("fg").await.unwrap();
            if let Some(d) = d {
                assert!(d.metadata.deletion_timestamp.is_some());
                assert!(
                    d.finalizers().iter().any(|f| f == "foregroundDeletion"),
                    "{:?}",
                    d.finalizers()
                );
            } else {
                panic!("a foreground delete removed the deployment before its dependents");
            }
            wait_for("fg to be gone, after its ReplicaSet", WAIT, || async {
                let d = deployments.get_opt("fg").await.ok()?;
                let rss = env.replica_sets(ns, "app=fg").await;
                if d.is_none() {
                    assert!(
                        rss.is_empty(),
                        "fg was deleted while its ReplicaSet remained: {rss:?}"
                    );
                    return Some(());
                }
                None
            })
            .await;
            wait_for("fg's pods to be gone", WAIT, || async {
                let pods = pod_api
                    .list(&ListParams::default().labels("app=fg"))
                    .await
                    .ok()?;
                pods.items.is_empty().then_some(())
            })
            .await;

            // Orphan: the ReplicaSet and pods stay, released from their owner, and keep serving.
            let orphan_rs = env.replica_sets(ns, "app=orphan").await[0].clone();
            let orphan_pods: BTreeSet<String> = env
                .live_pods(ns, "app=orphan")
                .await
                .iter()
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            deployments
                .delete("orphan", &DeleteParams::orphan())
                .await
                .unwrap();
            env.wait_gone(&deployments, "orphan", "deployment").await;
            let rs = wait_for(
                "the orphaned ReplicaSet to lose its owner",
                WAIT,
                || async {
                    let rs = rs_api.get(&orphan_rs.name_any()).await.ok()?;
                    rs.owner_references().is_empty().then_some(rs)
                },
            )
            .await;
            assert_eq!(rs.metadata.uid, orphan_rs.metadata.uid);
            assert_eq!(spec_replicas(&rs), 2);
            // The GC has had several chances (it resyncs every 5 s) to act on the ReplicaSet; the
            // pods are the same, still owned by the ReplicaSet, and ready.
            let pods = env.live_pods(ns, "app=orphan").await;
            let uids: BTreeSet<String> =
                pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
            assert_eq!(uids, orphan_pods);
            assert!(pods.iter().all(|p| pod_ready(p)
                && p.owner_references()
                    .iter()
                    .any(|o| o.uid == orphan_rs.uid().unwrap())));
            // And the released ReplicaSet still works on its own.
            pod_api
                .delete(&pods[0].name_any(), &DeleteParams::default())
                .await
                .unwrap();
            wait_for(
                "the orphaned ReplicaSet to replace a deleted pod",
                WAIT,
                || async {
                    let pods = env.live_pods(ns, "app=orphan").await;
                    (pods.len() == 2
                        && pods.iter().all(pod_ready)
                        && !pods
                            .iter()
                            .all(|p| orphan_pods.contains(p.metadata.uid.as_ref().unwrap())))
                    .then_some(())
                },
            )
            .await;
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_deletes_everything_in_it() {
    if skip() {
        return;
    }
    with_cluster(6, |env| {
        Box::pin(async move {
            let ns = "doomed";
            let namespaces = Api::<Namespace>::all(env.client());
            let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
            namespaces.create(&PostParams::default(), &n).await.unwrap();
            env.create_deployment(ns, web_deployment("web", 2, IMAGE))
                .await;
            let svc: Service = serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
            }))
            .unwrap();
            env.api::<Service>(ns)
                .create(&PostParams::default(), &svc)
                .await
                .unwrap();
            let cm: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "b"}}))
                    .unwrap();
            env.api::<ConfigMap>(ns)
                .create(&PostParams::default(), &cm)
                .await
                .unwrap();
            env.wait_rolled_out(ns, "web").await;
            let uids: BTreeSet<String> = env
                .live_pods(ns, "app=web")
                .await
                .iter()
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            assert_eq!(uids.len(), 2);
            assert!(uids.is_subset(&env.container_pod_uids().await));

            namespaces
                .delete(ns, &DeleteParams::default())
                .await
                .unwrap();
            // Terminating (or already gone); nothing new may be created in it.
            if let Some(n) = namespaces.get_opt(ns).await.unwrap() {
                assert_eq!(
                    n.status.and_then(|s| s.phase).as_deref(),
                    Some("Terminating")
                );
            }
            let late: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap();
            let err = env
                .api::<ConfigMap>(ns)
                .create(&PostParams::default(), &late)
                .await
                .expect_err("creating in a terminating namespace fails");
            assert!(
                matches!(&err, kube::Error::Api(s) if s.code == 403 || s.code == 404),
                "{err:?}"
            );
            env.wait_gone(&namespaces, ns, "namespace").await;
            assert!(env
                .api::<Pod>(ns)
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty());
            assert!(env
                .api::<ConfigMap>(ns)
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty());
            assert!(env
                .api::<Service>(ns)
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty());
            assert!(env
                .api::<Deployment>(ns)
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty());
            // The pods' containers are gone from the nodes too.
            wait_for("the pods' containers to be removed", WAIT, || async {
                env.container_pod_uids()
                    .await
                    .is_disjoint(&uids)
                    .then_some(())
            })
            .await;
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_with_completions_3_and_parallelism_2_completes() {
    if skip() {
        return;
    }
    with_cluster(7, |env| Box::pin(async move {
        let ns = "default";
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "work"},
            "spec": {
                "completions": 3,
                "parallelism": 2,
                "backoffLimit": 0,
                "template": {"spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", "sleep 2; echo done"]}],
                }},
            },
        }))
        .unwrap();
        // Watch the job's pods: never more than `parallelism` running at once.
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (synced_tx, synced) = tokio::sync::oneshot::channel::<()>();
        let api = env.api::<Pod>(ns);
        let watch = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default().labels("job-name=work")).boxed();
            let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
            let mut max_active = 0;
            let mut synced_tx = Some(synced_tx);
            loop {
                let event = tokio::select! {
                    e = stream.try_next() => e,
                    _ = &mut stopped => break,
                };
                match event {
                    Ok(Some(watcher::Event::InitDone)) => {
                        if let Some(tx) = synced_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Some(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => {
                        pods.insert(p.name_any(), p);
                    }
                    Ok(Some(watcher::Event::Delete(p))) => {
                        pods.remove(&p.name_any());
                    }
                    Ok(Some(watcher::Event::Init)) => pods.clear(),
                    Ok(None) => break,
                    Err(_) => continue,
                }
                let active = pods
                    .values()
                    .filter(|p| {
                        p.metadata.deletion_timestamp.is_none()
                            && !matches!(phase(p), "Succeeded" | "Failed")
                    })
                    .count();
                max_active = max_active.max(active);
            }
            max_active
        });
        synced.await.unwrap();
        let jobs = env.api::<Job>(ns);
        jobs.create(&PostParams::default(), &job).await.unwrap();
        let job = wait_for("the job to complete", WAIT, || async {
            let j = jobs.get("work").await.ok()?;
            let complete = j.status.as_ref()?.conditions.as_ref()?.iter().any(|c| c.type_ == "Complete" && c.status == "True");
            complete.then_some(j)
        })
        .await;
        let _ = stop.send(());
        let max_active = watch.await.unwrap();
        assert_eq!(max_active, 2, "at most (and at full) parallelism");
        let status = job.status.unwrap();
        assert_eq!(status.succeeded, Some(3));
        assert_eq!(status.failed.unwrap_or(0), 0);
        assert_eq!(status.active.unwrap_or(0), 0);
        assert!(status.completion_time.is_some());
        let pods = env.api::<Pod>(ns).list(&ListParams::default().labels("job-name=work")).await.unwrap().items;
        assert_eq!(pods.len(), 3);
        assert!(pods.iter().all(|p| phase(p) == "Succeeded"), "{:?}", pods.iter().map(phase).collect::<Vec<_>>());
    }))
    .await;
}
