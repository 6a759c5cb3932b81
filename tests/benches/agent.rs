//! agent benchmark (issue 3, item 5).
//!
//! A real containerd (own root and socket), the apiserver over a real etcd in-process, and the
//! release `skiff-agent` binary as a child process, so that its resident memory is its own.
//!
//! 1. Bound → Running: N pods (N = 1, 10, 50) are created already bound to the node (as the
//!    scheduler's binding leaves them), with the image present; a watch records, per pod, the
//!    time from its create call returning to the first event with phase Running.
//! 2. The agent's VmRSS with 0 pods (node registered, idle) and with 50 running pods.
//! 3. The floor: `ctr run -d` (create + start a container on the same image, no network) timed
//!    the same way, showing how much of the agent's time is containerd and runc.
//!
//! Run with `make bench` (which builds the release binaries first) or `cargo build --release
//! --bins && cargo bench -p skiff-testkit --bench agent`; needs root. The results replace the
//! agent section of docs/benchmarks.md.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, WatchEvent, WatchParams};
use serde_json::json;
use skiff_testkit::bench::{ms, quantiles, write_section, Quantiles};
use skiff_testkit::containerd::{
    create_bound_pod, running_as_root, ContainerdProc, TestNet, IMAGE, NS,
};
use skiff_testkit::{wait_for, OwnedChild, TestCluster};

const NODE: &str = "bench-node";
/// (pods created at once, rounds): a single pod is measured over several rounds, since one
/// sample has no percentiles.
const SIZES: [(usize, usize); 3] = [(1, 10), (10, 1), (50, 1)];
const FLOOR_RUNS: usize = 20;

/// target/release/skiff-agent next to this benchmark binary (target/release/deps).
fn agent_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("bench binary path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("bench binary is in target/<profile>/deps")
        .join("skiff-agent");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --release --bins` first (make bench does)",
        bin.display()
    );
    bin
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

async fn node_ready(nodes: &Api<Node>) -> Option<()> {
    let n = nodes.get_opt(NODE).await.ok()??;
    n.status?
        .conditions?
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
        .then_some(())
}

/// Create `n` bound pods and return, per pod, create-returned → Running-seen.
async fn bound_to_running(pods: &Api<Pod>, batch: usize, n: usize) -> Vec<Duration> {
    let list = pods.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut watch = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut created: HashMap<String, Instant> = HashMap::new();
    let creates = futures::future::join_all((0..n).map(|i| async move {
        let name = format!("bench-{batch}-{i}");
        let spec = json!({
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "main",
                "image": IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/sleep", "3600"],
            }],
        });
        create_bound_pod(pods.clone().into_client(), NODE, &name, spec).await;
        (name, Instant::now())
    }))
    .await;
    created.extend(creates);
    let mut latencies = Vec::with_capacity(n);
    let mut running = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while running.len() < n {
        let event = tokio::time::timeout_at(deadline, watch.next())
            .await
            .expect("every pod Running within 300 s")
            .expect("watch open")
            .unwrap();
        let (WatchEvent::Added(pod) | WatchEvent::Modified(pod)) = event else {
            continue;
        };
        let name = pod.metadata.name.clone().unwrap();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase == Some("Running") && running.insert(name.clone()) {
            // A pod can be seen Running before its own create call has returned here.
            let start = created.get(&name).copied().unwrap_or_else(Instant::now);
            latencies.push(start.elapsed());
        }
    }
    latencies
}

async fn delete_all(pods: &Api<Pod>) {
    pods.delete_collection(
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
        &ListParams::default(),
    )
    .await
    .unwrap();
    wait_for("every bench pod gone", Duration::from_secs(300), || async {
        pods.list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
}

/// `ctr run -d` of the same image, create + start timed; each container removed untimed.
fn ctr_run_floor(socket: &Path) -> Vec<Duration> {
    let ctr = |args: &[&str]| {
        Command::new("ctr")
            .arg("--address")
            .arg(socket)
            .args(["--namespace", NS])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("ctr is installed with containerd")
    };
    (0..FLOOR_RUNS)
        .map(|i| {
            let id = format!("bench-floor-{i}");
            let started = Instant::now();
            let status = ctr(&["run", "-d", IMAGE, &id, "/bin/sleep", "3600"]);
            let took = started.elapsed();
            assert!(status.success(), "ctr run {id}");
            ctr(&["tasks", "kill", "--signal", "SIGKILL", &id]);
            // The task must have exited before it can be deleted.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !ctr(&["tasks", "delete", &id]).success() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            ctr(&["containers", "delete", &id]);
            took
        })
        .collect()
}

#[tokio::main]
async fn main() {
    if !running_as_root() {
        eprintln!("agent benchmark skipped: it needs root (containerd, CNI)");
        return;
    }
    skiff_testkit::bench::raise_fd_limit();
    let agent_bin = agent_binary();
    let cluster = TestCluster::start().await.unwrap();
    let containerd = ContainerdProc::start().await;
    let root = tempfile::Builder::new()
        .prefix("skiff-agent-bench-")
        .tempdir()
        .unwrap();
    containerd.import_busybox(NS, root.path(), &[IMAGE]).await;
    let net = TestNet::new(201);
    let log = std::fs::File::create(root.path().join("agent.log")).unwrap();
    let child = Command::new(&agent_bin)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["--node-name", NODE])
        .arg("--containerd-socket")
        .arg(containerd.socket())
        .args(["--containerd-namespace", NS, "--port", "0"])
        .arg("--root-dir")
        .arg(root.path().join("agent"))
        .args(["--pod-cidr", &net.cidr, "--cni-bridge", &net.bridge])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting skiff-agent");
    let mut agent = OwnedChild::new("skiff-agent", child);
    // Pods mount a ServiceAccount token, as in any cluster: its prerequisites are there.
    let controllers = cluster.start_pod_identity_controllers();
    let nodes = Api::<Node>::all(cluster.client());
    wait_for("node Ready", Duration::from_secs(60), || node_ready(&nodes)).await;
    let rss_idle = rss_kib(agent.pid());

    let pods = Api::<Pod>::namespaced(cluster.client(), "default");
    let mut results: Vec<(usize, usize, Quantiles)> = Vec::new();
    let mut rss_loaded = 0;
    let mut batch = 0;
    for (n, rounds) in SIZES {
        let mut lat = Vec::new();
        for _ in 0..rounds {
            lat.extend(bound_to_running(&pods, batch, n).await);
            batch += 1;
            if n == 50 {
                rss_loaded = rss_kib(agent.pid());
            }
            delete_all(&pods).await;
        }
        let q = quantiles(&mut lat);
        println!(
            "{n} pods: bound -> Running p50 {} ms, p99 {} ms",
            ms(q.p50),
            ms(q.p99)
        );
        results.push((n, rounds, q));
    }
    assert!(agent.running(), "the agent survived the benchmark");
    let mut floor = ctr_run_floor(&containerd.socket());
    let floor = quantiles(&mut floor);
    println!(
        "ctr run: p50 {} ms, p99 {} ms; agent RSS idle {} MiB, 50 pods {} MiB",
        ms(floor.p50),
        ms(floor.p99),
        mib(rss_idle),
        mib(rss_loaded)
    );

    agent.terminate(Duration::from_secs(10));
    containerd.stop().await;
    net.cleanup(root.path()).await;
    controllers.stop().await;
    cluster.stop().await;

    let one = results[0].2.p50;
    let mut section = String::from("<!-- agent-bench:start -->\n## skiff-agent\n\n");
    section.push_str(
        "Command: `make bench` (`cargo build --release --bins && cargo bench -p skiff-testkit --bench agent`), \
         as root. A private containerd 1.6 + runc, the apiserver over etcd in-process, the release \
         `skiff-agent` as a child process; busybox image already present; pods created bound to \
         the node, `/bin/sleep 3600`, one CNI bridge network namespace each. Latency is from the \
         create call returning to the watch event showing phase Running.\n\n",
    );
    section.push_str(
        "| pods created at once | rounds | bound → Running p50 (ms) | p99 (ms) |\n|---|---|---|---|\n",
    );
    for (n, rounds, q) in &results {
        section.push_str(&format!(
            "| {n} | {rounds} | {} | {} |\n",
            ms(q.p50),
            ms(q.p99)
        ));
    }
    section.push_str(&format!(
        "\n| agent resident memory (VmRSS) | MiB |\n|---|---|\n| node registered, 0 pods | {} |\n| 50 running pods | {} |\n",
        mib(rss_idle),
        mib(rss_loaded)
    ));
    section.push_str(&format!(
        "\nFloor: `ctr run -d` (create + start, no network) of the same image, {FLOOR_RUNS} runs: p50 {} ms, p99 {} ms, \
         which is {:.0}% of the agent's single-pod p50 (the rest is the watch round trips, the CNI \
         ADD that creates the pod's network namespace, the status writes and the agent's own work).\n",
        ms(floor.p50),
        ms(floor.p99),
        100.0 * floor.p50.as_secs_f64() / one.as_secs_f64().max(1e-9)
    ));
    section.push_str("<!-- agent-bench:end -->\n");
    write_section("agent", &section).unwrap();
    println!("wrote the agent section of docs/benchmarks.md");
}
