//! A real containerd for tests (its own config, root, state and socket in a temp dir, stopped by
//! PID), per-test CNI networks (own bridge and subnet, removed afterwards), the busybox test
//! image, and in-process agents stopped through their shutdown future. Requires root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use skiff_agent::Containerd;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::which;

/// The busybox test image (built from Debian's busybox-static). Tagged, not `:latest`: a
/// `:latest` image defaults to imagePullPolicy Always, which would ask a registry for it.
pub const IMAGE: &str = "skiff.test/busybox:v1";
/// The busybox test image ([`IMAGE`]) as an OCI layout tarball `busybox.tar` in `dir`, built
/// from the host's `/bin/busybox` (Debian's busybox-static) unless it is there already.
pub fn busybox_layout(dir: &Path) -> PathBuf {
    let tar = dir.join("busybox.tar");
    if !tar.exists() {
        skiff_agent::images::busybox::build_busybox_layout(Path::new("/bin/busybox"), &tar, IMAGE)
            .expect("building the busybox test image");
    }
    tar
}

/// The containerd namespace [`ContainerdProc::client`] and [`AgentRun::start`] use.
pub const NS: &str = "skiff-test";

/// A containerd daemon in a temp dir; stopped by PID on drop, after removing every task and
/// container it holds in the namespaces the test used (so no shim outlives the test).
pub struct ContainerdProc {
    dir: TempDir,
    child: Child,
    /// Namespaces clients were made for; [`ContainerdProc::stop`] empties each.
    namespaces: Mutex<Vec<String>>,
}

impl ContainerdProc {
    pub async fn start() -> ContainerdProc {
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
        let mut proc = ContainerdProc {
            dir,
            child,
            namespaces: Mutex::new(vec![NS.to_string()]),
        };
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// A client in [`NS`].
    pub async fn client(&self) -> Containerd {
        self.client_in(NS).await
    }

    /// A client in `namespace` (remembered, so that `stop` cleans it up too).
    pub async fn client_in(&self, namespace: &str) -> Containerd {
        {
            let mut used = self.namespaces.lock().unwrap();
            if !used.iter().any(|n| n == namespace) {
                used.push(namespace.to_string());
            }
        }
        Containerd::connect(&self.socket(), namespace)
            .await
            .unwrap()
    }

    /// Build the busybox image layout (under `dir`) and import it into `namespace` once per
    /// name in `names` (the same image under several references).
    pub async fn import_busybox(&self, namespace: &str, dir: &Path, names: &[&str]) {
        let tar = busybox_layout(dir);
        let cd = self.client_in(namespace).await;
        for name in names {
            let created = cd.import_layout_tar(&tar, Some(name)).await.unwrap();
            assert_eq!(created, [*name]);
        }
    }

    /// Kill and delete every container in the namespaces used, then stop containerd.
    pub async fn stop(mut self) {
        self.remove_containers().await;
        self.terminate().await;
    }

    /// Kill and delete every container (and so its shim) in the namespaces used.
    async fn remove_containers(&self) {
        let namespaces = self.namespaces.lock().unwrap().clone();
        for ns in namespaces {
            let Ok(cd) = Containerd::connect(&self.socket(), &ns).await else {
                continue;
            };
            if let Ok(all) = cd.list_pod_containers(None).await {
                for c in all {
                    let _ = cd.kill_task(&c.id, libc::SIGKILL).await;
                    let _ =
                        tokio::time::timeout(Duration::from_secs(10), cd.wait_task(&c.id)).await;
                    let _ = cd.remove_container(&c.id).await;
                }
            }
        }
    }

    async fn terminate(&mut self) {
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
            // Not stopped (a test failed): containers and shims would outlive containerd.
            crate::block_on_side(self.remove_containers());
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The pod network of one test (or one node of a test): its own bridge and subnet, so tests
/// (and concurrent runs of test binaries) never share one; the bridge is deleted at the end.
#[derive(Clone, Debug)]
pub struct TestNet {
    pub bridge: String,
    pub cidr: String,
}

impl TestNet {
    /// `index` must be unique within the test binary; it picks the bridge name and subnet.
    pub fn new(index: u8) -> TestNet {
        let pid = std::process::id();
        TestNet {
            bridge: format!("skt{}x{index}", pid % 100_000),
            cidr: format!("10.{}.{index}.0/24", 100 + pid % 100),
        }
    }

    /// The /16 every [`TestNet`] of this test binary lies in: the cluster's pod network when
    /// several agents (nodes) of one test share the machine.
    pub fn cluster_cidr() -> String {
        format!("10.{}.0.0/16", 100 + std::process::id() % 100)
    }

    /// CNI DEL and unmount for every sandbox the agent left (pods still present when the test
    /// ends), then delete the bridge. Only this test's own objects are touched.
    pub async fn cleanup(&self, root: &Path) {
        let network = skiff_agent::network::Network::new(skiff_agent::network::NetworkConfig {
            cni_bin_dir: "/usr/lib/cni".into(),
            bridge: self.bridge.clone(),
            state_dir: root.join("network"),
            cluster_cidr: None,
        });
        for e in network.remove_all().await {
            eprintln!("{e:#}");
        }
        if let Err(e) = skiff_agent::network::remove_pod_network_rules(&self.bridge).await {
            eprintln!("removing the iptables rules of {}: {e:#}", self.bridge);
        }
        if Path::new("/sys/class/net").join(&self.bridge).exists() {
            let st = Command::new("ip")
                .args(["link", "del", &self.bridge])
                .status()
                .expect("running ip");
            assert!(st.success(), "deleting bridge {}", self.bridge);
        }
    }
}

/// Removes the service proxy chains of a prefix when dropped, so a failing test or benchmark
/// leaves none behind.
pub struct ChainGuard(pub String);

impl Drop for ChainGuard {
    fn drop(&mut self) {
        if let Err(e) = skiff_agent::proxy::cleanup_blocking(&self.0) {
            eprintln!("removing chains {}: {e:#}", self.0);
        }
    }
}

/// An in-process agent, stopped through its shutdown channel.
pub struct AgentRun {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl AgentRun {
    /// An agent for `node` in namespace [`NS`] on any free loopback port.
    pub fn start(
        cluster: &crate::TestCluster,
        node: &str,
        cd: &ContainerdProc,
        root: &Path,
        net: &TestNet,
    ) -> AgentRun {
        AgentRun::spawn(cluster, AgentRun::config(node, cd, NS, root, net))
    }

    /// The configuration [`AgentRun::start`] uses, in `namespace`, to tweak before `spawn`.
    pub fn config(
        node: &str,
        cd: &ContainerdProc,
        namespace: &str,
        root: &Path,
        net: &TestNet,
    ) -> skiff_agent::Config {
        let mut config = skiff_agent::Config::new(node, cd.socket(), root.to_path_buf());
        config.containerd_namespace = namespace.into();
        config.port = 0;
        config.bind_address = std::net::Ipv4Addr::LOCALHOST.into();
        config.pod_cidr = Some(net.cidr.clone());
        config.cni_bridge = net.bridge.clone();
        config
    }

    /// Run the agent against `cluster` as its admin; its API trusts the cluster CA, as a
    /// node's does (the cluster's agent-client certificate reaches it: [`crate::TestCluster::agent_get`]).
    pub fn spawn(cluster: &crate::TestCluster, mut config: skiff_agent::Config) -> AgentRun {
        if config.client_ca.is_none() && !config.insecure_plain_http_api_for_testing {
            config.client_ca = cluster.ca_pem();
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(skiff_agent::run(cluster.client(), config, async move {
            let _ = rx.await;
        }));
        AgentRun {
            stop: Some(tx),
            task,
        }
    }

    /// Complete the agent's shutdown future and wait for it to return (its containers keep
    /// running). Dropping an `AgentRun` instead aborts the agent.
    pub async fn stop(mut self) {
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

impl Drop for AgentRun {
    fn drop(&mut self) {
        // After `stop` the task has finished and this does nothing.
        self.task.abort();
    }
}

/// GET over plain HTTP/1.1; `None` when the server cannot be reached or does not answer in 10 s.
pub async fn http_get_at(host: &str, port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .ok()?
    .ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Some((code, body.to_string()))
}

pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Create pod `name` in `default` already bound to `node` (as the scheduler's binding leaves
/// it), so an agent runs it without a scheduler; `spec` is the pod spec without `nodeName`.
pub async fn create_bound_pod(
    client: kube::Client,
    node: &str,
    name: &str,
    mut spec: serde_json::Value,
) -> k8s_openapi::api::core::v1::Pod {
    spec["nodeName"] = serde_json::json!(node);
    let pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a valid pod");
    kube::Api::namespaced(client, "default")
        .create(&kube::api::PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("creating pod {name}: {e}"))
}
