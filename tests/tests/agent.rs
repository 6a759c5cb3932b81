//! The agent against a real containerd (started here with its own root, state and socket) and a
//! real apiserver + etcd. Requires root (containerd, runc, overlayfs).
//!
//! The test image is built from Debian's busybox-static as an OCI layout tarball and imported
//! through containerd's content, images, snapshots and diff services.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use skiff_agent::Containerd;
use skiff_testkit::{wait_for, which, TestCluster};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IMAGE: &str = "skiff.test/busybox:latest";
const NS: &str = "skiff-test";

/// A containerd daemon in a temp dir; stopped by PID on drop, after removing every task and
/// container it holds (so no shim outlives the test).
struct ContainerdProc {
    dir: TempDir,
    child: Child,
}

impl ContainerdProc {
    async fn start() -> ContainerdProc {
        let dir = tempfile::Builder::new()
            .prefix("skiff-containerd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
            opt = d.join("opt").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let binary = which("containerd").expect("containerd is installed (Debian package)");
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new(binary)
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let mut proc = ContainerdProc { dir, child };
        let sock = proc.socket();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!("containerd exited ({status}): {}", proc.log());
            }
            if sock.exists() {
                if let Ok(c) = Containerd::connect(&sock, NS).await {
                    if c.version().await.is_ok() {
                        return proc;
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                panic!("containerd did not come up: {}", proc.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    async fn client(&self) -> Containerd {
        Containerd::connect(&self.socket(), NS).await.unwrap()
    }

    /// Kill and delete every container in the test namespace, then stop containerd.
    async fn stop(mut self) {
        let cd = self.client().await;
        if let Ok(all) = cd.list_pod_containers(None).await {
            for c in all {
                let _ = cd.kill_task(&c.id, libc::SIGKILL).await;
                let _ = tokio::time::timeout(Duration::from_secs(10), cd.wait_task(&c.id)).await;
                let _ = cd.remove_container(&c.id).await;
            }
        }
        // SAFETY: kill(2) on our own unreaped child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ContainerdProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// An in-process agent, stopped through its shutdown channel.
struct AgentRun {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl AgentRun {
    fn start(client: kube::Client, node: &str, cd: &ContainerdProc, root: &Path) -> AgentRun {
        let mut config = skiff_agent::Config::new(node, cd.socket(), root.to_path_buf());
        config.containerd_namespace = NS.into();
        config.port = 0;
        config.bind_address = std::net::Ipv4Addr::LOCALHOST.into();
        config.pod_cidr = Some("10.244.7.0/24".into());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(skiff_agent::run(client, config, async move {
            let _ = rx.await;
        }));
        AgentRun {
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("agent stops within 10 s")
            .expect("agent task did not panic")
            .expect("agent returned Ok");
    }
}

/// A cluster, a containerd with the busybox image imported, and an agent.
struct Env {
    cluster: TestCluster,
    containerd: ContainerdProc,
    agent: Option<AgentRun>,
    node: String,
    root: TempDir,
}

impl Env {
    async fn start(node: &str) -> Env {
        let cluster = TestCluster::start().await.unwrap();
        let containerd = ContainerdProc::start().await;
        let root = tempfile::Builder::new()
            .prefix("skiff-agent-")
            .tempdir()
            .unwrap();
        let tar = root.path().join("busybox.tar");
        skiff_agent::image::build_busybox_layout(Path::new("/bin/busybox"), &tar, IMAGE).unwrap();
        let names = containerd
            .client()
            .await
            .import_layout_tar(&tar, None)
            .await
            .unwrap();
        assert_eq!(names, [IMAGE]);
        let agent = AgentRun::start(cluster.client(), node, &containerd, root.path());
        let env = Env {
            cluster,
            containerd,
            agent: Some(agent),
            node: node.to_string(),
            root,
        };
        env.wait_node_ready().await;
        env
    }

    async fn wait_node_ready(&self) -> Node {
        let nodes = Api::<Node>::all(self.cluster.client());
        wait_for("node Ready", Duration::from_secs(30), || {
            let nodes = nodes.clone();
            let name = self.node.clone();
            async move {
                let n = nodes.get_opt(&name).await.ok()??;
                let ready = n
                    .status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                ready.then_some(n)
            }
        })
        .await
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.cluster.client(), "default")
    }

    async fn create_pod(&self, name: &str, spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["nodeName"] = json!(self.node);
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    async fn wait_pod<F>(&self, name: &str, what: &str, timeout: Duration, check: F) -> Pod
    where
        F: Fn(&Pod) -> bool,
    {
        let pods = self.pods();
        let check = &check;
        wait_for(&format!("pod {name}: {what}"), timeout, || {
            let pods = pods.clone();
            async move {
                let p = pods.get_opt(name).await.ok()??;
                check(&p).then_some(p)
            }
        })
        .await
    }

    async fn agent_port(&self) -> u16 {
        let node = self.wait_node_ready().await;
        node.status
            .and_then(|s| s.daemon_endpoints)
            .and_then(|d| d.kubelet_endpoint)
            .map(|e| e.port as u16)
            .expect("node advertises the agent port")
    }

    async fn stop(mut self) {
        if let Some(a) = self.agent.take() {
            a.stop().await;
        }
        self.containerd.stop().await;
        self.cluster.stop().await;
        drop(self.root);
    }
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn first_status(p: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    p.status.as_ref()?.container_statuses.as_ref()?.first()
}

/// GET on the agent API over plain HTTP/1.1 on loopback; returns (status code, body).
async fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("agent answers within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_registers_with_capacity_info_and_lease() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start("agent-node-a").await;
    let node = env.wait_node_ready().await;
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["kubernetes.io/hostname"], "agent-node-a");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert!(labels.contains_key("kubernetes.io/arch"));
    let status = node.status.clone().unwrap();
    let cap = status.capacity.unwrap();
    assert_eq!(cap["pods"].0, "110");
    assert!(cap["cpu"].0.parse::<u32>().unwrap() >= 1);
    assert!(cap["memory"].0.ends_with("Ki"));
    let info = status.node_info.unwrap();
    assert!(
        info.container_runtime_version
            .starts_with("containerd://1."),
        "{}",
        info.container_runtime_version
    );
    assert!(status
        .addresses
        .unwrap()
        .iter()
        .any(|a| a.type_ == "InternalIP"));
    assert_eq!(
        node.spec.unwrap().pod_cidr.as_deref(),
        Some("10.244.7.0/24")
    );
    let leases = Api::<Lease>::namespaced(env.cluster.client(), "kube-node-lease");
    let lease = wait_for("node lease", Duration::from_secs(20), || {
        let leases = leases.clone();
        async move { leases.get_opt("agent-node-a").await.ok()? }
    })
    .await;
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("agent-node-a"));
    assert!(spec.renew_time.is_some());
    let port = env.agent_port().await;
    assert_eq!(http_get(port, "/healthz").await.0, 200);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_pod_runs_to_completion_and_its_logs_are_served() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start("agent-node-b").await;
    env.create_pod(
        "echo",
        json!({
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", "echo hello"]}],
        }),
    )
    .await;
    let pod = env
        .wait_pod("echo", "Succeeded", Duration::from_secs(60), |p| {
            phase(p) == "Succeeded"
        })
        .await;
    let cs = first_status(&pod).unwrap();
    let term = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(term.exit_code, 0);
    assert_eq!(term.reason.as_deref(), Some("Completed"));
    assert!(term.finished_at.is_some());
    assert!(cs
        .container_id
        .as_deref()
        .unwrap()
        .starts_with("containerd://"));
    assert!(cs.image_id.starts_with("sha256:"));
    assert_eq!(cs.restart_count, 0);
    let status = pod.status.as_ref().unwrap();
    assert!(status.start_time.is_some());
    assert!(status.host_ip.is_some());

    let port = env.agent_port().await;
    let (code, body) = http_get(port, "/containerLogs/default/echo/c").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, "hello\n");
    let (code, _) = http_get(port, "/containerLogs/default/echo/nope").await;
    assert_eq!(code, 400);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httpd_pod_stays_running_and_is_adopted_by_a_restarted_agent() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let mut env = Env::start("agent-node-c").await;
    env.create_pod(
        "web",
        json!({
            "containers": [{
                "name": "httpd", "image": IMAGE,
                "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
            }],
        }),
    )
    .await;
    let pod = env
        .wait_pod("web", "Running and Ready", Duration::from_secs(60), |p| {
            phase(p) == "Running" && first_status(p).is_some_and(|c| c.ready)
        })
        .await;
    let cs = first_status(&pod).unwrap().clone();
    assert!(cs.state.as_ref().unwrap().running.is_some());
    assert_eq!(cs.restart_count, 0);
    assert_eq!(cs.image, IMAGE);
    let container_id = cs.container_id.clone().unwrap();
    let conditions = pod.status.as_ref().unwrap().conditions.clone().unwrap();
    for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == kind && c.status == "True"),
            "{kind} in {conditions:?}"
        );
    }
    // The task really runs, with the memory limit in its cgroup.
    let cd = env.containerd.client().await;
    let id = container_id.trim_start_matches("containerd://");
    assert!(matches!(
        cd.task_state(id).await.unwrap(),
        skiff_agent::runtime::TaskState::Running { .. }
    ));

    // Restart the agent: the container is adopted, not restarted.
    env.agent.take().unwrap().stop().await;
    env.agent = Some(AgentRun::start(
        env.cluster.client(),
        &env.node,
        &env.containerd,
        env.root.path(),
    ));
    // A second pod proves the new agent is working before we look at the first one.
    env.create_pod(
        "after-restart",
        json!({
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": IMAGE, "command": ["true"]}],
        }),
    )
    .await;
    env.wait_pod("after-restart", "Succeeded", Duration::from_secs(60), |p| {
        phase(p) == "Succeeded"
    })
    .await;
    let pod = env.pods().get("web").await.unwrap();
    let cs = first_status(&pod).unwrap();
    assert_eq!(cs.container_id.as_deref(), Some(container_id.as_str()));
    assert_eq!(cs.restart_count, 0);
    let uid = pod.metadata.uid.clone().unwrap();
    let runs = cd.list_pod_containers(Some(&uid)).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(matches!(
        cd.task_state(id).await.unwrap(),
        skiff_agent::runtime::TaskState::Running { .. }
    ));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_sends_sigterm_and_removes_containers_and_the_pod() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start("agent-node-d").await;
    let out = tempfile::Builder::new()
        .prefix("skiff-term-")
        .tempdir()
        .unwrap();
    env.create_pod(
        "graceful",
        json!({
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": "c", "image": IMAGE,
                "command": ["sh", "-c",
                    "trap 'echo TERM > /out/signal; exit 0' TERM; echo ready > /out/ready; while true; do sleep 0.1; done"],
                "volumeMounts": [{"name": "out", "mountPath": "/out"}],
            }],
            "volumes": [{"name": "out", "hostPath": {"path": out.path().display().to_string()}}],
        }),
    )
    .await;
    let pod = env
        .wait_pod("graceful", "Running", Duration::from_secs(60), |p| {
            phase(p) == "Running"
        })
        .await;
    let ready = out.path().join("ready");
    wait_for(
        "the container's trap is installed",
        Duration::from_secs(20),
        || {
            let ready = ready.clone();
            async move { ready.exists().then_some(()) }
        },
    )
    .await;
    let uid = pod.metadata.uid.clone().unwrap();
    let started = std::time::Instant::now();
    env.pods()
        .delete("graceful", &DeleteParams::default())
        .await
        .unwrap();
    let pods = env.pods();
    wait_for(
        "the pod object to be removed",
        Duration::from_secs(25),
        || {
            let pods = pods.clone();
            async move {
                match pods.get_opt("graceful").await {
                    Ok(None) => Some(()),
                    _ => None,
                }
            }
        },
    )
    .await;
    // SIGTERM reached the process (it exited long before the 30 s grace period).
    assert_eq!(
        std::fs::read_to_string(out.path().join("signal"))
            .unwrap()
            .trim(),
        "TERM"
    );
    assert!(started.elapsed() < Duration::from_secs(25));
    let cd = env.containerd.client().await;
    assert!(cd.list_pod_containers(Some(&uid)).await.unwrap().is_empty());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_command_goes_to_crash_loop_back_off() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start("agent-node-e").await;
    env.create_pod(
        "crash",
        json!({"containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", "echo boom; exit 3"]}]}),
    )
    .await;
    let pod = env
        .wait_pod("crash", "CrashLoopBackOff", Duration::from_secs(60), |p| {
            first_status(p).is_some_and(|c| {
                c.restart_count >= 1
                    && c.state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
            })
        })
        .await;
    let cs = first_status(&pod).unwrap();
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(last.exit_code, 3);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    assert_eq!(phase(&pod), "Running");
    let port = env.agent_port().await;
    let (code, body) = http_get(port, "/containerLogs/default/crash/c?previous=true").await;
    assert_eq!(code, 200);
    assert_eq!(body, "boom\n");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_image_reports_err_image_pull() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start("agent-node-f").await;
    env.create_pod(
        "noimage",
        json!({"containers": [{"name": "c", "image": "skiff.test/does-not-exist:1"}]}),
    )
    .await;
    let pod = env
        .wait_pod("noimage", "ErrImagePull", Duration::from_secs(30), |p| {
            first_status(p).is_some_and(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .is_some_and(|w| {
                        matches!(
                            w.reason.as_deref(),
                            Some("ErrImagePull" | "ImagePullBackOff")
                        )
                    })
            })
        })
        .await;
    assert_eq!(phase(&pod), "Pending");
    env.stop().await;
}
