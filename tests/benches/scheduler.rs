//! scheduler benchmark (issue 4, item 8).
//!
//! 1. The in-process decision rate of the filter → score pipeline alone over 5,000 nodes, using
//!    the scheduler crate's pure API (`plugins::default_framework`, `cache::Cache`,
//!    `Framework::schedule`), no apiserver.
//! 2. End to end: N Node objects (API objects only: allocatable cpu/memory/pods and Ready=True)
//!    and then P pods created through the apiserver, 64 creates in flight, with the scheduler
//!    running in-process (default config) until every pod is bound. A watch on pods records, for
//!    each pod, the time from its create call returning to the event that shows `spec.nodeName`.
//!
//! Run with `make bench` (or `cargo bench -p skiff-testkit --bench scheduler`); the results
//! replace the scheduler section of docs/benchmarks.md. `SKIFF_SCHED_BENCH=quick` runs small
//! sizes and leaves docs/benchmarks.md alone (to try the benchmark itself out).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{json, Value};
use skiff_scheduler::cache::Cache;
use skiff_scheduler::framework::PodInfo;
use skiff_scheduler::rand::rngs::StdRng;
use skiff_scheduler::rand::SeedableRng;
use skiff_testkit::bench::{ms, quantiles, Quantiles};
use skiff_testkit::TestCluster;
use tokio::sync::{mpsc, Mutex};

/// Creates (and node writes) in flight at once.
const IN_FLIGHT: usize = 64;
/// Nodes the pure pipeline is measured over.
const PIPELINE_NODES: usize = 5_000;
/// A run that has not bound every pod by then is reported as it stands.
const E2E_DEADLINE: Duration = Duration::from_secs(30 * 60);

const START: &str = "<!-- scheduler-bench:start -->";
const END: &str = "<!-- scheduler-bench:end -->";

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("benchmark object is valid")
}

/// The status every benchmark node carries: a mid-size machine, Ready.
fn node_status() -> Value {
    let resources = json!({"cpu": "32", "memory": "128Gi", "pods": "110"});
    json!({
        "capacity": resources, "allocatable": resources,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": "2024-01-01T00:00:00Z",
                        "lastTransitionTime": "2024-01-01T00:00:00Z"}]
    })
}

fn node_object(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("node-{i:05}"), "labels": {
            "kubernetes.io/hostname": format!("node-{i:05}"),
            "kubernetes.io/os": "linux",
            "topology.kubernetes.io/zone": format!("zone-{}", i % 3),
        }},
        "spec": {},
    })
}

/// A small pod: one container asking for 100m cpu and 128Mi memory. Every tenth workload of
/// 10 pods shares an owner, so spreading has something to read.
fn pod_object(name: &str, i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": format!("app-{}", i / 10)}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
    })
}

// ---------------------------------------------------------------------------------------------
// 1. The pure pipeline.

struct PipelineResult {
    nodes: usize,
    decisions: usize,
    per_sec: f64,
    lat: Quantiles,
    /// Decisions per second counting pod-info construction and the cache update as the loop does.
    loop_per_sec: f64,
}

fn pipeline(nodes: usize, decisions: usize, owned: bool) -> PipelineResult {
    let framework =
        skiff_scheduler::plugins::default_framework(&skiff_scheduler::Weights::default());
    let mut cache = Cache::new();
    for i in 0..nodes {
        let mut v = node_object(i);
        v["status"] = node_status();
        cache.set_node(Arc::new(from_json::<Node>(v)));
    }
    let pods: Vec<Arc<Pod>> = (0..decisions)
        .map(|i| {
            let mut v = pod_object(&format!("pipe-{i:06}"), i);
            if owned {
                v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1",
                    "kind": "ReplicaSet", "name": format!("rs-{}", i / 100),
                    "uid": format!("uid-{}", i / 100), "controller": true}]);
            }
            Arc::new(from_json::<Pod>(v))
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(4);
    let mut samples = Vec::with_capacity(decisions);
    let started = Instant::now();
    for pod in pods {
        let info = Arc::new(PodInfo::new(pod));
        let t = Instant::now();
        let place = framework
            .schedule(&info, cache.nodes(), &mut rng)
            .expect("the benchmark cluster has room");
        samples.push(t.elapsed());
        cache.assume(info, &place.node).expect("assume");
    }
    let wall = started.elapsed();
    let busy: Duration = samples.iter().sum();
    PipelineResult {
        nodes,
        decisions,
        per_sec: decisions as f64 / busy.as_secs_f64(),
        lat: quantiles(&mut samples),
        loop_per_sec: decisions as f64 / wall.as_secs_f64(),
    }
}

// ---------------------------------------------------------------------------------------------
// 2. End to end.

struct E2eResult {
    nodes: usize,
    pods: usize,
    bound: usize,
    node_setup: Duration,
    create_phase: Duration,
    /// First create sent → last binding seen.
    total: Duration,
    lat: Quantiles,
    timed_out: bool,
}

impl E2eResult {
    fn pods_per_sec(&self) -> f64 {
        self.bound as f64 / self.total.as_secs_f64()
    }
}

/// Run `total` async operations, `IN_FLIGHT` at a time; each gets its index.
async fn in_flight<F, Fut>(total: usize, op: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|c| {
            let op = op.clone();
            tokio::spawn(async move {
                for i in (c..total).step_by(IN_FLIGHT) {
                    op(i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("benchmark task");
    }
}

/// Watch pods from `rv`, sending (name, time seen) for each pod the first time it shows a node.
/// Re-watches from the last resourceVersion when a watch ends (server timeout).
async fn watch_bindings(
    api: Api<Pod>,
    mut rv: String,
    tx: mpsc::UnboundedSender<(String, Instant)>,
) {
    loop {
        let params = WatchParams::default().timeout(290);
        let mut stream = match api.watch(&params, &rv).await {
            Ok(s) => s.boxed(),
            Err(e) => panic!("starting the pod watch: {e}"),
        };
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(WatchEvent::Added(p)) | Ok(WatchEvent::Modified(p)) => {
                    let now = Instant::now();
                    if let Some(v) = &p.metadata.resource_version {
                        rv = v.clone();
                    }
                    let bound = p
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .is_some_and(|n| !n.is_empty());
                    if bound {
                        let name = p.metadata.name.unwrap_or_default();
                        if tx.send((name, now)).is_err() {
                            return;
                        }
                    }
                }
                Ok(WatchEvent::Bookmark(b)) => rv = b.metadata.resource_version,
                Ok(WatchEvent::Deleted(_)) => {}
                Ok(WatchEvent::Error(e)) => panic!("pod watch error: {e:?}"),
                Err(e) => {
                    tracing::warn!(error = %e, "pod watch stream error; re-watching");
                    break;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

async fn end_to_end(nodes: usize, pods: usize) -> anyhow::Result<E2eResult> {
    // Every pod is written twice (create, binding), nodes twice (create, status); the cache must
    // hold the whole burst so that no watcher falls out of its window.
    let cache_size = 2 * pods + 2 * nodes + 10_000;
    let cluster = TestCluster::start_with(|c| c.watch_cache_size = cache_size).await?;
    let client = cluster.client();

    // Nodes: create, then status (the apiserver ignores status on create, as Kubernetes does).
    let node_api: Api<Node> = Api::all(client.clone());
    let t = Instant::now();
    let api = node_api.clone();
    in_flight(nodes, move |i| {
        let api = api.clone();
        async move {
            let node: Node = from_json(node_object(i));
            let name = node.metadata.name.clone().unwrap_or_default();
            api.create(&PostParams::default(), &node)
                .await
                .unwrap_or_else(|e| panic!("create node {name}: {e}"));
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": node_status()})),
            )
            .await
            .unwrap_or_else(|e| panic!("status of node {name}: {e}"));
        }
    })
    .await;
    let node_setup = t.elapsed();

    // The scheduler, default config, in-process.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(skiff_scheduler::run(
        client.clone(),
        skiff_scheduler::Config::default(),
        async move {
            let _ = stop_rx.await;
        },
    ));

    // Warm-up: one pod bound means the scheduler has listed every node and is scheduling.
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    pod_api
        .create(&PostParams::default(), &from_json(pod_object("warmup", 0)))
        .await?;
    let warm = Instant::now();
    loop {
        let p = pod_api.get("warmup").await?;
        if p.spec.and_then(|s| s.node_name).is_some() {
            break;
        }
        anyhow::ensure!(
            warm.elapsed() < Duration::from_secs(300),
            "the warm-up pod was not bound within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let rv = pod_api
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let watcher = tokio::spawn(watch_bindings(pod_api.clone(), rv, seen_tx));

    // The burst: every create's return time, by pod index.
    let created_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; pods]));
    let started = Instant::now();
    let creator = {
        let api = pod_api.clone();
        let created_at = created_at.clone();
        tokio::spawn(async move {
            in_flight(pods, move |i| {
                let api = api.clone();
                let created_at = created_at.clone();
                async move {
                    let name = format!("bench-{i:06}");
                    api.create(&PostParams::default(), &from_json(pod_object(&name, i)))
                        .await
                        .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
                    created_at.lock().await[i] = Some(Instant::now());
                }
            })
            .await;
            Instant::now()
        })
    };

    let mut bound_at: Vec<Option<Instant>> = vec![None; pods];
    let mut bound = 0;
    let mut last = started;
    let deadline = tokio::time::Instant::from_std(started + E2E_DEADLINE);
    let mut timed_out = false;
    while bound < pods {
        match tokio::time::timeout_at(deadline, seen_rx.recv()).await {
            Ok(Some((name, at))) => {
                let Some(i) = name
                    .strip_prefix("bench-")
                    .and_then(|n| n.parse::<usize>().ok())
                else {
                    continue;
                };
                if i < pods && bound_at[i].is_none() {
                    bound_at[i] = Some(at);
                    bound += 1;
                    last = last.max(at);
                }
            }
            Ok(None) => anyhow::bail!("the pod watch ended"),
            Err(_) => {
                timed_out = true;
                break;
            }
        }
    }
    drop(seen_rx);
    let create_done = creator.await?;
    let create_phase = create_done - started;
    watcher.abort();

    let created_at = created_at.lock().await;
    let mut lat: Vec<Duration> = created_at
        .iter()
        .zip(&bound_at)
        .filter_map(|(c, b)| Some(b.as_ref()?.saturating_duration_since((*c)?)))
        .collect();
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), scheduler).await;
    cluster.stop().await;
    Ok(E2eResult {
        nodes,
        pods,
        bound,
        node_setup,
        create_phase,
        total: last - started,
        lat: quantiles(&mut lat),
        timed_out,
    })
}

// ---------------------------------------------------------------------------------------------

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    skiff_testkit::bench::raise_fd_limit();
    let quick = std::env::var("SKIFF_SCHED_BENCH").is_ok_and(|v| v == "quick");
    let (pipeline_nodes, pipeline_decisions, sizes): (usize, usize, Vec<(usize, usize)>) = if quick
    {
        (500, 1_000, vec![(100, 1_000)])
    } else {
        (
            PIPELINE_NODES,
            10_000,
            vec![(1_000, 10_000), (5_000, 30_000)],
        )
    };

    let plain = pipeline(pipeline_nodes, pipeline_decisions, false);
    println!(
        "pipeline {} nodes: {:.0} decisions/s, p50 {} us, p99 {} us (loop incl. assume: {:.0}/s)",
        plain.nodes,
        plain.per_sec,
        us(plain.lat.p50),
        us(plain.lat.p99),
        plain.loop_per_sec
    );
    let owned = pipeline(pipeline_nodes, pipeline_decisions, true);
    println!(
        "pipeline {} nodes, owned pods: {:.0} decisions/s, p50 {} us, p99 {} us",
        owned.nodes,
        owned.per_sec,
        us(owned.lat.p50),
        us(owned.lat.p99)
    );

    let mut e2e = Vec::new();
    for (nodes, pods) in sizes {
        let r = end_to_end(nodes, pods).await?;
        println!(
            "e2e {nodes} nodes x {pods} pods: {} bound{} in {} s = {:.0} pods/s; creation->binding p50 {} ms, p99 {} ms; creates took {} s; node setup {} s",
            r.bound,
            if r.timed_out { " (TIMED OUT)" } else { "" },
            secs(r.total),
            r.pods_per_sec(),
            ms(r.lat.p50),
            ms(r.lat.p99),
            secs(r.create_phase),
            secs(r.node_setup),
        );
        e2e.push(r);
    }

    let section = render(&plain, &owned, &e2e);
    println!("{section}");
    if quick {
        println!("(quick run: docs/benchmarks.md left unchanged)");
    } else {
        skiff_testkit::bench::write_section("scheduler", &section)?;
    }
    Ok(())
}

fn render(plain: &PipelineResult, owned: &PipelineResult, e2e: &[E2eResult]) -> String {
    let rows: Vec<String> = e2e
        .iter()
        .map(|r| {
            format!(
                "| {} | {} | {}{} | {} | {:.0} | {} / {} | {} | {} |",
                r.nodes,
                r.pods,
                r.bound,
                if r.timed_out { " (timed out)" } else { "" },
                secs(r.total),
                r.pods_per_sec(),
                ms(r.lat.p50),
                ms(r.lat.p99),
                secs(r.create_phase),
                secs(r.node_setup),
            )
        })
        .collect();
    format!(
        "{START}\n## scheduler\n\n\
Command: `make bench` (`cargo bench -p skiff-testkit --bench scheduler`), release build, etcd \
3.4 (Debian) on loopback in a temp dir, apiserver and scheduler in-process (scheduler with its \
default config), kube-rs clients; 2-core VM.\n\n\
### End to end\n\n\
N Node objects (API objects only: 32 cpu, 128Gi, 110 pods allocatable, Ready=True; created and \
given their status before the run), then P pods (one container requesting 100m cpu and 128Mi) \
created through the apiserver, {IN_FLIGHT} creates in flight, until every pod is bound. A watch \
on pods sees each binding; latency is from a pod's create call returning to the watch event \
showing its `spec.nodeName`. Throughput is bound pods / (first create sent → last binding \
seen). Creates is the time the {IN_FLIGHT} clients took to create all P pods, the ceiling the \
apiserver puts on the whole run.\n\n\
| nodes | pods | bound | first create → last binding (s) | pods/s | creation → binding p50 / p99 (ms) | creates (s) | node setup (s) |\n\
|---|---|---|---|---|---|---|---|\n{}\n\n\
### Filter + score pipeline alone\n\n\
`Framework::schedule` of the default profile (5 filters, 5 weighted scores, every node \
evaluated) over {} Ready nodes held in the scheduler's `Cache`, {} pods one after another, \
each assumed onto its node before the next (as the loop does); no apiserver.\n\n\
| pods | decisions/s | p50 / p99 per decision (µs) | loop incl. pod info + assume (decisions/s) |\n\
|---|---|---|---|\n\
| no owner | {:.0} | {} / {} | {:.0} |\n\
| owned by ReplicaSets of 100 (spreading active) | {:.0} | {} / {} | {:.0} |\n\n\
### kube-scheduler, for comparison\n\n\
- Kubernetes publishes no scheduler-throughput SLO. SIG Scalability's 5,000-node load test \
fails below 100 pods/s in its scheduler-throughput phase (pods from Deployments, so the \
controller manager paces them): `CL2_SCHEDULER_THROUGHPUT_THRESHOLD` defaults to 100 in \
kubernetes/perf-tests `clusterloader2/testing/load/modules/scheduler-throughput/config.yaml`.\n\
- The direct scheduler-throughput suite added in 2024 (kubernetes/perf-tests#2681, #2682) \
creates bare pods at 500/s and requires 400 pods/s (`clusterloader2/testing/scheduler-throughput/config.yaml`).\n\
- Gödel's evaluation (kubewharf/godel-scheduler, `docs/performance/best-practice.md`): with pods \
created at 2,000/s on 30,000 nodes, kube-scheduler reached about 300 pods/s end to end, 430 at \
its peak.\n\
- kube-scheduler's in-process `scheduler_perf` benchmark, SchedulingBasic with 500 nodes and 1,000 \
pods: 91 pods/s average, 104 p50 (kubernetes/kubernetes#85861, January 2020).\n\
- Unlike those figures, skiff's end-to-end numbers include creating every pod through the \
same apiserver and etcd, on the same 2 cores as the scheduler.\n\
{END}\n",
        rows.join("\n"),
        plain.nodes,
        plain.decisions,
        plain.per_sec,
        us(plain.lat.p50),
        us(plain.lat.p99),
        plain.loop_per_sec,
        owned.per_sec,
        us(owned.lat.p50),
        us(owned.lat.p99),
        owned.loop_per_sec,
    )
}
