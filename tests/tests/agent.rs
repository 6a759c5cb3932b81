//! The agent against a real containerd (started here with its own root, state and socket) and a
//! real apiserver + etcd. Requires root (containerd, runc, overlayfs).
//!
//! The test image is built from Debian's busybox-static as an OCI layout tarball and imported
//! through containerd's content, images, snapshots and diff services.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use skiff_testkit::containerd::{
    create_bound_pod, http_get_at, running_as_root, AgentRun, ContainerdProc, TestNet, IMAGE,
};
use skiff_testkit::{wait_for, ControllersRun, TestCluster};
use tempfile::TempDir;

/// A cluster, a containerd with the busybox image imported, and an agent.
struct Env {
    cluster: TestCluster,
    /// The default ServiceAccount and kube-root-ca.crt every pod's token volume needs.
    controllers: Option<ControllersRun>,
    containerd: ContainerdProc,
    agent: Option<AgentRun>,
    node: String,
    root: TempDir,
    net: TestNet,
}

impl Env {
    /// `net_index` (unique per test) picks the test's bridge and subnet.
    async fn start(node: &str, net_index: u8) -> Env {
        let net = TestNet::new(net_index);
        let cluster = TestCluster::start().await.unwrap();
        let containerd = ContainerdProc::start().await;
        let root = tempfile::Builder::new()
            .prefix("skiff-agent-")
            .tempdir()
            .unwrap();
        let tar = skiff_testkit::containerd::busybox_layout(root.path());
        let names = containerd
            .client()
            .await
            .import_layout_tar(&tar, None)
            .await
            .unwrap();
        assert_eq!(names, [IMAGE]);
        let agent = AgentRun::start(&cluster, node, &containerd, root.path(), &net);
        let controllers = Some(cluster.start_pod_identity_controllers());
        let env = Env {
            cluster,
            controllers,
            containerd,
            agent: Some(agent),
            node: node.to_string(),
            root,
            net,
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
        create_bound_pod(self.cluster.client(), &self.node, name, spec).await
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
        if let Some(c) = self.controllers.take() {
            c.stop().await;
        }
        self.containerd.stop().await;
        self.net.cleanup(self.root.path()).await;
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
/// GET from the agent's API as the apiserver does (HTTPS, its client certificate).
async fn agent_get(cluster: &TestCluster, port: u16, path: &str) -> (u16, String) {
    cluster
        .agent_get(port, path)
        .await
        .expect("agent answers within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_registers_with_capacity_info_and_lease() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start("agent-node-a", 1).await;
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
        Some(env.net.cidr.as_str())
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
    assert_eq!(agent_get(&env.cluster, port, "/healthz").await.0, 200);
    // The API is TLS only and requires a client certificate from the cluster CA, naming the
    // apiserver: no certificate fails the handshake, another user's certificate gets 403.
    let curl = |extra: Vec<String>| async move {
        let out = tokio::process::Command::new("curl")
            .args([
                "-sk",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(extra)
            .arg(format!(
                "https://127.0.0.1:{port}/containerLogs/default/x/c"
            ))
            .output()
            .await
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        curl(vec![]).await,
        "000",
        "no client certificate, no connection"
    );
    let alice = env.cluster.kubeconfig_for("alice", None).unwrap();
    let field = |name: &str| {
        let line = alice
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap();
        let b64 = line.split_once(':').unwrap().1.trim();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    };
    let (cert, key) = (
        env.root.path().join("alice.crt"),
        env.root.path().join("alice.key"),
    );
    std::fs::write(&cert, field("client-certificate-data")).unwrap();
    std::fs::write(&key, field("client-key-data")).unwrap();
    let as_alice = vec![
        "--cert".to_string(),
        cert.display().to_string(),
        "--key".to_string(),
        key.display().to_string(),
    ];
    assert_eq!(curl(as_alice).await, "403", "alice is not the apiserver");
    assert!(
        http_get_at("127.0.0.1", port, "/healthz")
            .await
            .is_none_or(|(code, _)| code != 200),
        "plain HTTP is not served"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_pod_runs_to_completion_and_its_logs_are_served() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start("agent-node-b", 2).await;
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
    let (code, body) = agent_get(&env.cluster, port, "/containerLogs/default/echo/c").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, "hello\n");
    let (code, _) = agent_get(&env.cluster, port, "/containerLogs/default/echo/nope").await;
    assert_eq!(code, 400);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httpd_pod_stays_running_and_is_adopted_by_a_restarted_agent() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let mut env = Env::start("agent-node-c", 3).await;
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
        &env.cluster,
        &env.node,
        &env.containerd,
        env.root.path(),
        &env.net,
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
    let env = Env::start("agent-node-d", 4).await;
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
    // The network namespace is gone too (CNI DEL ran, the mount was removed).
    assert!(!env
        .root
        .path()
        .join("network/sandboxes")
        .join(&uid)
        .exists());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_command_goes_to_crash_loop_back_off() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start("agent-node-e", 5).await;
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
    let (code, body) = agent_get(
        &env.cluster,
        port,
        "/containerLogs/default/crash/c?previous=true",
    )
    .await;
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
    let env = Env::start("agent-node-f", 6).await;
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

fn status_of<'a>(
    p: &'a Pod,
    name: &str,
) -> Option<&'a k8s_openapi::api::core::v1::ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
}

fn condition(p: &Pod, kind: &str) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

fn pod_ip(p: &Pod) -> Option<String> {
    p.status.as_ref()?.pod_ip.clone()
}

/// iptables rules (all tables) that name this pod UID (the CNI plugins comment theirs with it).
fn iptables_rules_naming(uid: &str) -> Vec<String> {
    ["nat", "filter"]
        .iter()
        .flat_map(|table| {
            let out = Command::new("iptables")
                .args(["-t", table, "-S"])
                .output()
                .expect("running iptables");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains(uid))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_network_serves_http_on_the_pod_ip_and_containers_share_localhost() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd and CNI");
        return;
    }
    let env = Env::start("agent-node-g", 7).await;
    let host_port = skiff_testkit::free_port();
    let portmap_chains_before = portmap_chains();
    env.create_pod(
        "net",
        json!({
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "web", "image": IMAGE,
                    "command": ["sh", "-c",
                        "echo \"hello from $(hostname)\" > /www/index.html; exec httpd -f -p 8080 -h /www"],
                    "ports": [{"containerPort": 8080, "hostPort": host_port}],
                    "volumeMounts": [{"name": "www", "mountPath": "/www"}],
                },
                {
                    "name": "client", "image": IMAGE,
                    "command": ["sh", "-c",
                        "until wget -q -O - http://127.0.0.1:8080/; do sleep 0.2; done; echo \"client on $(hostname)\"; exec sleep 3600"],
                },
            ],
            "volumes": [{"name": "www", "emptyDir": {}}],
        }),
    )
    .await;
    let pod = env
        .wait_pod(
            "net",
            "Running with a pod IP",
            Duration::from_secs(60),
            |p| phase(p) == "Running" && pod_ip(p).is_some(),
        )
        .await;
    let ip = pod_ip(&pod).unwrap();
    let net: ipnet::Ipv4Net = env.net.cidr.parse().unwrap();
    assert!(
        net.contains(&ip.parse::<std::net::Ipv4Addr>().unwrap()),
        "{ip} in {net}"
    );
    let ips = pod.status.as_ref().unwrap().pod_ips.clone().unwrap();
    assert_eq!(ips[0].ip, ip);

    // From the host, on the pod IP, through the bridge.
    let (code, body) = wait_for(
        "httpd answers on the pod IP",
        Duration::from_secs(30),
        || {
            let ip = ip.clone();
            async move { http_get_at(&ip, 8080, "/").await.filter(|(c, _)| *c == 200) }
        },
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body, "hello from net\n");

    // The other container reached it on localhost, and shares the pod's hostname (UTS).
    let port = env.agent_port().await;
    let cluster = &env.cluster;
    let logs = wait_for(
        "the client container's output",
        Duration::from_secs(30),
        || async move {
            let (code, body) = agent_get(cluster, port, "/containerLogs/default/net/client").await;
            (code == 200 && body.contains("client on")).then_some(body)
        },
    )
    .await;
    assert_eq!(logs, "hello from net\nclient on net\n");

    // hostPort through the portmap plugin: the node's address, the pod's port.
    let host_ip = pod.status.as_ref().unwrap().host_ip.clone().unwrap();
    let (code, body) = wait_for("the hostPort answers", Duration::from_secs(30), || {
        let host_ip = host_ip.clone();
        async move {
            http_get_at(&host_ip, host_port, "/")
                .await
                .filter(|(c, _)| *c == 200)
        }
    })
    .await;
    assert_eq!((code, body.as_str()), (200, "hello from net\n"));

    // Deleting the pod removes its sandbox: namespace mounts, CNI state and iptables rules.
    let uid = pod.metadata.uid.clone().unwrap();
    assert!(
        !iptables_rules_naming(&uid).is_empty(),
        "ipMasq rules exist"
    );
    let sandbox = env.root.path().join("network/sandboxes").join(&uid);
    assert!(sandbox.join("net").exists());
    env.pods()
        .delete("net", &DeleteParams::default())
        .await
        .unwrap();
    let pods = env.pods();
    wait_for(
        "the pod object to be removed",
        Duration::from_secs(30),
        || {
            let pods = pods.clone();
            async move { matches!(pods.get_opt("net").await, Ok(None)).then_some(()) }
        },
    )
    .await;
    assert!(!sandbox.exists(), "sandbox dir removed");
    assert_eq!(iptables_rules_naming(&uid), Vec::<String>::new());
    assert!(http_get_at(&ip, 8080, "/").await.is_none());
    env.stop().await;
    remove_empty_portmap_chains(&portmap_chains_before);
}

const PORTMAP_CHAINS: [&str; 3] = [
    "CNI-HOSTPORT-DNAT",
    "CNI-HOSTPORT-SETMARK",
    "CNI-HOSTPORT-MASQ",
];

/// The portmap plugin's shared nat chains that exist now.
fn portmap_chains() -> Vec<String> {
    let out = Command::new("iptables")
        .args(["-t", "nat", "-S"])
        .output()
        .expect("running iptables");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    PORTMAP_CHAINS
        .iter()
        .filter(|c| text.lines().any(|l| l == format!("-N {c}")))
        .map(|c| c.to_string())
        .collect()
}

/// The portmap plugin leaves its shared chains (and the jumps to them) behind after the last
/// DEL: remove those this test brought into being, once no pod uses them any more.
fn remove_empty_portmap_chains(existed_before: &[String]) {
    let iptables = |args: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("iptables -t nat {args}"))
            .output()
            .expect("running iptables")
    };
    let rules = String::from_utf8_lossy(&iptables("-S").stdout).into_owned();
    let ours: Vec<&str> = PORTMAP_CHAINS
        .iter()
        .copied()
        .filter(|c| !existed_before.iter().any(|b| b == c))
        .collect();
    // Per-pod jumps live in CNI-HOSTPORT-DNAT: while any is left, someone else's pod uses them.
    if ours.is_empty()
        || rules
            .lines()
            .any(|l| l.starts_with("-A CNI-HOSTPORT-DNAT "))
    {
        return;
    }
    for line in rules.lines() {
        if let Some(rule) = line.strip_prefix("-A ") {
            if ours.iter().any(|c| rule.ends_with(&format!("-j {c}"))) {
                // `iptables -S` quotes as a shell would.
                iptables(&format!("-D {rule}"));
            }
        }
    }
    for c in ours {
        iptables(&format!("-F {c}"));
        iptables(&format!("-X {c}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_liveness_restarts_and_failing_readiness_makes_the_pod_not_ready() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd and CNI");
        return;
    }
    let env = Env::start("agent-node-h", 8).await;
    env.create_pod(
        "unhealthy",
        json!({
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "c", "image": IMAGE,
                "command": ["sh", "-c", "echo started; exec sleep 3600"],
                "livenessProbe": {
                    "exec": {"command": ["cat", "/tmp/healthy"]},
                    "periodSeconds": 1, "failureThreshold": 2,
                },
            }],
        }),
    )
    .await;
    env.create_pod(
        "probed",
        json!({
            "containers": [
                {
                    "name": "web", "image": IMAGE,
                    "command": ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    "livenessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                    "startupProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
                },
                {
                    "name": "side", "image": IMAGE,
                    "command": ["sleep", "3600"],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 9999}, "periodSeconds": 1},
                },
            ],
        }),
    )
    .await;
    // Liveness: the container is killed and started again, with its previous run recorded.
    let pod = env
        .wait_pod(
            "unhealthy",
            "restarted by its liveness probe",
            Duration::from_secs(60),
            |p| {
                status_of(p, "c").is_some_and(|c| {
                    c.restart_count >= 1
                        && c.last_state
                            .as_ref()
                            .and_then(|s| s.terminated.as_ref())
                            .is_some()
                })
            },
        )
        .await;
    // `sleep` as PID 1 ignores SIGTERM: the 1 s grace period ends with SIGKILL.
    let cs = status_of(&pod, "c").unwrap();
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(last.exit_code, 137);

    // Readiness: `web` passes its probes, `side` fails its own, so the pod is not Ready.
    let pod = env
        .wait_pod(
            "probed",
            "web ready, side not",
            Duration::from_secs(60),
            |p| {
                phase(p) == "Running"
                    && status_of(p, "web").is_some_and(|c| c.ready)
                    && status_of(p, "side").is_some_and(|c| {
                        !c.ready && c.state.as_ref().and_then(|s| s.running.as_ref()).is_some()
                    })
            },
        )
        .await;
    assert_eq!(condition(&pod, "Ready").as_deref(), Some("False"));
    assert_eq!(condition(&pod, "ContainersReady").as_deref(), Some("False"));
    // The httpGet liveness probe of `web` passes: after several periods it has not restarted.
    let first_id = status_of(&pod, "web").unwrap().container_id.clone();
    let pods = env.pods();
    let mut periods = 0;
    let mut watcher = tokio::time::interval(Duration::from_secs(1));
    while periods < 5 {
        watcher.tick().await;
        periods += 1;
        let p = pods.get("probed").await.unwrap();
        let web = status_of(&p, "web").unwrap();
        assert_eq!(web.restart_count, 0);
        assert_eq!(web.container_id, first_id);
        assert!(web.ready);
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_env_volumes_memory_limit_and_init_containers_are_visible_inside() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd and CNI");
        return;
    }
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let env = Env::start("agent-node-i", 9).await;
    let client = env.cluster.client();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "cfg"},
        "data": {"greeting": "hi-from-cm", "app.conf": "mode=test"},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "sec"},
        "stringData": {"password": "s3cret"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    env.create_pod(
        "cfg",
        json!({
            "restartPolicy": "Never",
            "initContainers": [
                {"name": "init-1", "image": IMAGE, "command": ["sh", "-c", "echo one > /work/order"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                {"name": "init-2", "image": IMAGE, "command": ["sh", "-c", "echo two >> /work/order"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
            ],
            "containers": [{
                "name": "c", "image": IMAGE,
                "command": ["sh", "-c", concat!(
                    "echo env=$GREETING; ",
                    "echo conf=$(cat /etc/cfg/app.conf); ",
                    "echo secret=$(cat /etc/sec/password); ",
                    "echo init=$(cat /work/order); ",
                    "echo mem=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes); ",
                    "if touch /etc/cfg/new 2>/dev/null; then echo cfg=writable; else echo cfg=readonly; fi",
                )],
                "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}}],
                "resources": {"limits": {"memory": "64Mi"}},
                "volumeMounts": [
                    {"name": "cfg", "mountPath": "/etc/cfg"},
                    {"name": "sec", "mountPath": "/etc/sec"},
                    {"name": "work", "mountPath": "/work"},
                ],
            }],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "sec", "secret": {"secretName": "sec"}},
                {"name": "work", "emptyDir": {}},
            ],
        }),
    )
    .await;
    let pod = env
        .wait_pod("cfg", "Succeeded", Duration::from_secs(90), |p| {
            phase(p) == "Succeeded"
        })
        .await;
    let port = env.agent_port().await;
    let (code, body) = agent_get(&env.cluster, port, "/containerLogs/default/cfg/c").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        "env=hi-from-cm\nconf=mode=test\nsecret=s3cret\ninit=one two\nmem=67108864\ncfg=readonly\n"
    );
    let status = pod.status.as_ref().unwrap();
    let inits = status.init_container_statuses.as_ref().unwrap();
    assert_eq!(inits.len(), 2);
    for i in inits {
        let t = i.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(t.exit_code, 0, "{}", i.name);
        assert_eq!(t.reason.as_deref(), Some("Completed"));
    }
    // init-2 started after init-1 finished.
    let finished_1 = inits[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap()
        .finished_at
        .clone();
    let started_2 = inits[1]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap()
        .started_at
        .clone();
    assert!(finished_1.unwrap().0 <= started_2.unwrap().0);
    assert_eq!(condition(&pod, "Initialized").as_deref(), Some("True"));

    // A failing init container keeps the app container from starting; with restartPolicy
    // Never the pod fails.
    env.create_pod(
        "badinit",
        json!({
            "restartPolicy": "Never",
            "initContainers": [{"name": "init", "image": IMAGE, "command": ["sh", "-c", "exit 7"]}],
            "containers": [{"name": "c", "image": IMAGE, "command": ["true"]}],
        }),
    )
    .await;
    let pod = env
        .wait_pod("badinit", "Failed", Duration::from_secs(60), |p| {
            phase(p) == "Failed"
        })
        .await;
    assert_eq!(condition(&pod, "Initialized").as_deref(), Some("False"));
    let app = status_of(&pod, "c").unwrap();
    assert_eq!(
        app.state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("PodInitializing")
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_records_pulled_created_and_started_events_for_a_pod() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start("agent-node-j", 10).await;
    env.create_pod(
        "events",
        json!({
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", "echo hi"]}],
        }),
    )
    .await;
    let events = Api::<Event>::namespaced(env.cluster.client(), "default");
    let wanted = ["Pulled", "Created", "Started"];
    let seen = wait_for(
        "Pulled, Created and Started Events for pod events",
        Duration::from_secs(60),
        || {
            let events = events.clone();
            async move {
                let list = events.list(&Default::default()).await.ok()?;
                let of_pod: Vec<Event> = list
                    .items
                    .into_iter()
                    .filter(|e| e.involved_object.name.as_deref() == Some("events"))
                    .collect();
                let has = |reason: &str| of_pod.iter().any(|e| e.reason.as_deref() == Some(reason));
                wanted.iter().all(|r| has(r)).then_some(of_pod)
            }
        },
    )
    .await;
    for e in seen
        .iter()
        .filter(|e| wanted.contains(&e.reason.as_deref().unwrap_or_default()))
    {
        assert_eq!(e.type_.as_deref(), Some("Normal"), "{e:?}");
        assert_eq!(e.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(
            e.involved_object.field_path.as_deref(),
            Some("spec.containers{c}")
        );
        let source = e.source.as_ref().expect("an event source");
        assert_eq!(source.component.as_deref(), Some("kubelet"));
        assert_eq!(source.host.as_deref(), Some("agent-node-j"));
    }
    let message = |reason: &str| {
        seen.iter()
            .find(|e| e.reason.as_deref() == Some(reason))
            .and_then(|e| e.message.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        message("Pulled"),
        format!("Container image \"{IMAGE}\" already present on machine")
    );
    assert_eq!(message("Created"), "Created container: c");
    assert_eq!(message("Started"), "Started container c");
    env.stop().await;
}

/// A pod runs with its ServiceAccount's token, the cluster CA and its namespace at
/// /var/run/secrets/kubernetes.io/serviceaccount and KUBERNETES_SERVICE_* in its environment;
/// it calls the API with the token and gets exactly what the ServiceAccount's Role allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_calls_the_api_with_its_own_service_account_token() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start("agent-node-k", 11).await;
    let client = env.cluster.client();
    // The ServiceAccount may read pods in its namespace, nothing else.
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(json!({
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    }))
    .unwrap();
    Api::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "pod-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
    }))
    .unwrap();
    Api::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    let api_port = env.cluster.api.addr.port();
    let dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    // curl from the host (busybox's wget speaks no TLS a modern server accepts), verifying
    // the apiserver with the CA the volume holds.
    let script = format!(
        "echo host=$KUBERNETES_SERVICE_HOST port=$KUBERNETES_SERVICE_PORT; \
         echo namespace=$(cat {dir}/namespace); \
         T=$(cat {dir}/token); \
         for path in pods/caller secrets; do \
           /usr/bin/curl -sS -o /tmp/body -w \"$path=%{{http_code}}\\n\" --cacert {dir}/ca.crt \
             -H \"Authorization: Bearer $T\" https://127.0.0.1:{api_port}/api/v1/namespaces/default/$path; \
           cat /tmp/body; echo; \
         done; \
         /usr/bin/curl -sS -o /dev/null -w 'anonymous=%{{http_code}}\\n' --cacert {dir}/ca.crt \
           https://127.0.0.1:{api_port}/api/v1/namespaces/default/pods"
    );
    let python = skiff_testkit::python_with_kubernetes_client();
    let tools = skiff_testkit::tools_dir().display().to_string();
    // The virtualenv's interpreter lives where the machine's Python was installed.
    let python_home = std::fs::canonicalize(&python)
        .unwrap()
        .ancestors()
        .nth(2)
        .unwrap()
        .display()
        .to_string();
    let probe = skiff_testkit::repo_root().join("tests/python/probe.py");
    let probe_dir = probe.parent().unwrap().display().to_string();
    let host_dir = |name: &str, path: &str| json!({"name": name, "hostPath": {"path": path, "type": "Directory"}});
    let mount = |name: &str, path: &str| json!({"name": name, "mountPath": path, "readOnly": true});
    // hostNetwork: the test's apiserver listens on the host's loopback only.
    env.create_pod(
        "caller",
        json!({
            "restartPolicy": "Never",
            "hostNetwork": true,
            "containers": [
                {"name": "c", "image": IMAGE, "command": ["sh", "-c", script],
                 "volumeMounts": [mount("usr", "/usr"), mount("lib", "/lib"), mount("lib64", "/lib64")]},
                // The official Python client's in-cluster configuration: the token and CA
                // from the volume; the address given explicitly (explicit env wins over the
                // Service variables), the API listening on the host's loopback.
                {"name": "py", "image": IMAGE, "command": [python.to_str().unwrap(), probe.to_str().unwrap(), "--in-cluster", "--pod", "caller"],
                 "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"}, {"name": "KUBERNETES_SERVICE_PORT", "value": api_port.to_string()}],
                 "volumeMounts": [mount("usr", "/usr"), mount("lib", "/lib"), mount("lib64", "/lib64"), mount("pyenv", &python_home), mount("tools", &tools), mount("probe", &probe_dir)]},
            ],
            "volumes": [host_dir("usr", "/usr"), host_dir("lib", "/usr/lib"), host_dir("lib64", "/usr/lib64"),
                host_dir("pyenv", &python_home), host_dir("tools", &tools), host_dir("probe", &probe_dir)],
        }),
    )
    .await;
    let pod = env
        .wait_pod("caller", "finished", Duration::from_secs(60), |p| {
            matches!(phase(p), "Succeeded" | "Failed")
        })
        .await;
    // The ServiceAccount admission put the token volume in and mounted it.
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    let volume = spec
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.projected.is_some());
    assert!(volume.unwrap().name.starts_with("kube-api-access-"));

    let port = env.agent_port().await;
    let (code, logs) = agent_get(&env.cluster, port, "/containerLogs/default/caller/c").await;
    assert_eq!(code, 200, "{logs}");
    let cluster_ip = Api::<k8s_openapi::api::core::v1::Service>::namespaced(client, "default")
        .get("kubernetes")
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    assert!(
        logs.contains(&format!("host={cluster_ip} port=443")),
        "{logs}"
    );
    assert!(logs.contains("namespace=default"), "{logs}");
    assert!(
        logs.contains("pods/caller=200"),
        "the token reads its own pod: {logs}"
    );
    assert!(logs.contains(r#""name":"caller""#), "{logs}");
    assert!(
        logs.contains("secrets=403"),
        "secrets are not the Role's: {logs}"
    );
    assert!(
        logs.contains(
            r#"cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""#
        ) && logs.contains("system:serviceaccount:default:default"),
        "{logs}"
    );
    assert!(
        logs.contains("anonymous=401"),
        "no token, no access: {logs}"
    );
    let (code, logs) = agent_get(&env.cluster, port, "/containerLogs/default/caller/py").await;
    assert_eq!(code, 200, "{logs}");
    let seen: std::collections::BTreeMap<String, serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| (v["call"].as_str().unwrap_or_default().to_string(), v))
        .collect();
    assert_eq!(
        seen.get("whoami").map(|v| v["value"]["username"].clone()),
        Some(json!("system:serviceaccount:default:default")),
        "{logs}"
    );
    assert_eq!(seen["get_pod"]["value"], "caller", "{logs}");
    assert_eq!(seen["list_configmaps"]["status"], 403, "{logs}");
    assert_eq!(seen["create_configmap"]["status"], 403, "{logs}");
    env.stop().await;
}
