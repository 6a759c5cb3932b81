//! Service networking end to end: real containerd pods behind Services, the agent's iptables
//! service proxy and cluster DNS, with the controllers and scheduler in-process. Requires root
//! (containerd, CNI, iptables).
//!
//! Each test has its own bridge and pod subnet, its own ClusterIP range and NodePort range
//! (from the test's PID and index), its own iptables chain prefix, and its DNS server on its
//! own bridge's gateway address; it removes all of them at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_testkit::containerd::{
    http_get_at, running_as_root, AgentRun, ChainGuard, ContainerdProc, TestNet, IMAGE,
};
use skiff_testkit::{wait_for, TestCluster};
use tempfile::TempDir;

const HTTPD: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www";

/// One node: an agent with its own containerd namespace, root dir, bridge and subnet.
struct NodeRun {
    name: String,
    net: TestNet,
    root: TempDir,
    agent: Option<AgentRun>,
}

/// Everything one test runs: cluster, containerd, agents (the first one with the service proxy
/// and DNS), controllers, scheduler.
///
/// Teardown always happens: [`Env::stop`] on success (and checks that nothing is left), `Drop`
/// when the test panics. Either way the containers and their shims, the sandboxes, bridges,
/// FORWARD rules and proxy chains of this test are removed.
struct Env {
    cluster: Option<TestCluster>,
    containerd: Option<ContainerdProc>,
    nodes: Vec<NodeRun>,
    others: Vec<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
    prefix: String,
    gateway: Ipv4Addr,
}

/// Remove everything the test made on the host; idempotent.
async fn teardown(containerd: Option<ContainerdProc>, nodes: &[NodeRun], prefix: &str) {
    if let Some(cd) = containerd {
        cd.stop().await;
    }
    for n in nodes {
        n.net.cleanup(n.root.path()).await;
    }
    if let Err(e) = skiff_agent::proxy::cleanup(prefix).await {
        eprintln!("removing chains {prefix}: {e:#}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if self.containerd.is_none() {
            return; // stopped
        }
        // Stop everything that could recreate what the teardown removes.
        for (_, task) in &self.others {
            task.abort();
        }
        for n in &mut self.nodes {
            n.agent.take();
        }
        let containerd = self.containerd.take();
        skiff_testkit::block_on_side(teardown(containerd, &self.nodes, &self.prefix));
    }
}

impl Env {
    /// One node with the service proxy and DNS.
    async fn start(index: u8) -> Env {
        Env::start_nodes(index, 1, true).await
    }

    /// `count` nodes, networks `index`, `index + 1`, ... (unique per test in this file); the
    /// first node runs the service proxy and DNS when `services`.
    async fn start_nodes(index: u8, count: u8, services: bool) -> Env {
        let pid = std::process::id();
        let service_range = format!(
            "10.{}.{}.{}/27",
            96 + (pid >> 8) % 4,
            pid % 256,
            u32::from(index % 8) * 32
        );
        let np_base = 30000 + (pid % 100) as u16 * 25 + u16::from(index % 5) * 5;
        let cluster = TestCluster::start_with(|c| {
            c.service_cluster_ip_range = service_range.parse().unwrap();
            c.service_node_port_range = np_base..=np_base + 4;
        })
        .await
        .unwrap();
        let prefix = format!("SKT{}{}", pid % 100_000, (b'A' + index % 26) as char);
        let first_net = TestNet::new(index);
        let net_cidr: ipnet::Ipv4Net = first_net.cidr.parse().unwrap();
        let mut env = Env {
            cluster: Some(cluster),
            containerd: Some(ContainerdProc::start().await),
            nodes: vec![],
            others: vec![],
            prefix,
            gateway: net_cidr.hosts().next().unwrap(),
        };
        for i in 0..count {
            let net = TestNet::new(index + i);
            let root = tempfile::Builder::new()
                .prefix("skiff-svc-")
                .tempdir()
                .unwrap();
            let name = format!("svc-node-{}", index + i);
            // Each node its own containerd namespace, as on separate machines.
            let containerd = env.containerd.as_ref().unwrap();
            containerd
                .import_busybox(&name, root.path(), &[IMAGE])
                .await;
            let mut config = AgentRun::config(&name, containerd, &name, root.path(), &net);
            config.cluster_cidr = Some(TestNet::cluster_cidr());
            if services && i == 0 {
                let host_ip: Ipv4Addr = skiff_agent::kubelet::node::host_ipv4().parse().unwrap();
                config.proxy = Some(skiff_agent::proxy::ProxyConfig {
                    chain_prefix: env.prefix.clone(),
                    cluster_cidr: Some(TestNet::cluster_cidr()),
                    nodeport_addresses: vec![format!("{host_ip}/32")],
                    ..Default::default()
                });
                config.dns = Some(skiff_agent::dns::DnsConfig::new(SocketAddr::new(
                    env.gateway.into(),
                    53,
                )));
                config.cluster_dns = Some(env.gateway.into());
            }
            let agent = AgentRun::spawn(env.cluster.as_ref().unwrap(), config);
            env.nodes.push(NodeRun {
                name,
                net,
                root,
                agent: Some(agent),
            });
        }

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let controllers = env.cluster.as_ref().unwrap().controllers_config(&[
            "replicaset",
            "deployment",
            "endpoints",
            "endpointslice",
        ]);
        env.others.push((
            tx,
            tokio::spawn(skiff_controllers::run(
                env.client(),
                controllers,
                async move {
                    let _ = rx.await;
                },
            )),
        ));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        env.others.push((
            tx,
            tokio::spawn(skiff_scheduler::run(
                env.client(),
                skiff_scheduler::Config::default(),
                async move {
                    let _ = rx.await;
                },
            )),
        ));
        let nodes = Api::<Node>::all(env.client());
        for n in &env.nodes {
            let name = n.name.clone();
            wait_for("node registered", Duration::from_secs(30), || {
                let (nodes, name) = (nodes.clone(), name.clone());
                async move { nodes.get_opt(&name).await.ok()? }
            })
            .await;
        }
        env
    }

    fn client(&self) -> kube::Client {
        self.cluster.as_ref().unwrap().client()
    }

    async fn create<K>(&self, v: serde_json::Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let obj: K = serde_json::from_value(v).unwrap();
        Api::<K>::namespaced(self.client(), "default")
            .create(&PostParams::default(), &obj)
            .await
            .unwrap()
    }

    /// Ready and not-ready endpoint addresses of the service, once `check` accepts them.
    async fn wait_endpoints(
        &self,
        service: &str,
        what: &str,
        check: impl Fn(&[String], &[String]) -> bool,
    ) -> (Vec<String>, Vec<String>) {
        let slices = Api::<EndpointSlice>::namespaced(self.client(), "default");
        let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
        let check = &check;
        wait_for(what, Duration::from_secs(90), || {
            let (slices, lp) = (slices.clone(), lp.clone());
            async move {
                let list = slices.list(&lp).await.ok()?;
                let (mut ready, mut not_ready) = (vec![], vec![]);
                for s in list.items {
                    for e in s.endpoints {
                        let r = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                        let a = e.addresses.first().cloned().unwrap_or_default();
                        if r {
                            ready.push(a)
                        } else {
                            not_ready.push(a)
                        }
                    }
                }
                ready.sort();
                not_ready.sort();
                check(&ready, &not_ready).then_some((ready, not_ready))
            }
        })
        .await
    }

    /// Wait until the rules the proxy has applied (read back from iptables, not what it was
    /// asked to do) send `service_port` to exactly `endpoints`; returns how long that took.
    async fn wait_programmed(&self, service_port: &str, endpoints: &[SocketAddrV4]) -> Duration {
        let want: BTreeSet<SocketAddrV4> = endpoints.iter().copied().collect();
        let started = Instant::now();
        let prefix = &self.prefix;
        wait_for(
            &format!("the proxy to program {service_port} -> {want:?}"),
            Duration::from_secs(10),
            || {
                let want = &want;
                async move {
                    let save = skiff_agent::network::iptables::save().await.ok()?;
                    let got = skiff_agent::proxy::rules::programmed_endpoints(&save, prefix);
                    (got.get(service_port) == Some(want)).then_some(())
                }
            },
        )
        .await;
        started.elapsed()
    }

    /// The pod name each backend IP belongs to.
    async fn pod_names_by_ip(&self) -> BTreeMap<String, String> {
        let pods = Api::<Pod>::namespaced(self.client(), "default");
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| {
                let ip = p.status.as_ref()?.pod_ip.clone()?;
                Some((ip, p.metadata.name.clone()?))
            })
            .collect()
    }

    /// The pod's IP once it has one.
    async fn pod_ip(&self, pod: &str) -> Ipv4Addr {
        let pods = Api::<Pod>::namespaced(self.client(), "default");
        wait_for(
            &format!("pod {pod} to get an IP"),
            Duration::from_secs(60),
            || {
                let pods = pods.clone();
                async move {
                    let p = pods.get_opt(pod).await.ok()??;
                    p.status?.pod_ip?.parse().ok()
                }
            },
        )
        .await
    }

    async fn pod_logs(&self, pod: &str, container: &str) -> String {
        let pods = Api::<Pod>::namespaced(self.client(), "default");
        let Some(node_name) = pods
            .get_opt(pod)
            .await
            .ok()
            .flatten()
            .and_then(|p| p.spec?.node_name)
        else {
            return String::new();
        };
        let nodes = Api::<Node>::all(self.client());
        let node = nodes.get(&node_name).await.unwrap();
        let port = node
            .status
            .and_then(|s| s.daemon_endpoints)
            .and_then(|d| d.kubelet_endpoint)
            .map(|e| e.port as u16)
            .unwrap();
        self.cluster
            .as_ref()
            .unwrap()
            .agent_get(port, &format!("/containerLogs/default/{pod}/{container}"))
            .await
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// Wait until the container's log holds `marker`; returns the log.
    async fn wait_log(
        &self,
        pod: &str,
        container: &str,
        marker: &str,
        timeout: Duration,
    ) -> String {
        wait_for(
            &format!("{marker:?} in the log of {pod}/{container}"),
            timeout,
            || async move {
                let l = self.pod_logs(pod, container).await;
                l.contains(marker).then_some(l)
            },
        )
        .await
    }

    /// Stop everything, then check that none of this test's chains, FORWARD rules or bridges
    /// is left on the host.
    async fn stop(mut self) {
        for n in &mut self.nodes {
            if let Some(a) = n.agent.take() {
                a.stop().await;
            }
        }
        for (tx, task) in self.others.drain(..) {
            let _ = tx.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        let containerd = self.containerd.take();
        teardown(containerd, &self.nodes, &self.prefix).await;
        let save = skiff_agent::network::iptables::save().await.unwrap();
        assert!(
            !save.contains(&format!("{}-", self.prefix)),
            "chains of {} left behind:\n{save}",
            self.prefix
        );
        for n in &self.nodes {
            for chain in [
                skiff_agent::network::forward_chain(&n.net.bridge),
                skiff_agent::network::masquerade_chain(&n.net.bridge),
            ] {
                assert!(!save.contains(&chain), "{chain} left behind:\n{save}");
            }
            assert!(
                !std::path::Path::new("/sys/class/net")
                    .join(&n.net.bridge)
                    .exists(),
                "bridge {} left behind",
                n.net.bridge
            );
        }
        if let Some(c) = self.cluster.take() {
            c.stop().await;
        }
    }
}

/// GET `http://host:port/` and return the body's first line (the backend's hostname).
async fn hostname_at(host: &str, port: u16) -> Option<String> {
    let (code, body) = http_get_at(host, port, "/").await?;
    (code == 200).then(|| body.trim().to_string())
}

fn backend_deployment(replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web", "role": "backend"}},
            "template": {
                "metadata": {"labels": {"app": "web", "role": "backend"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "httpd", "image": IMAGE,
                        "command": ["sh", "-c", HTTPD],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    }],
                },
            },
        },
    })
}

fn web_service(kind: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "type": kind,
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    })
}

/// Hostname counts of the `hit=<hostname>` lines of a pod's log.
fn hits_in_log(log: &str) -> BTreeMap<String, u32> {
    let mut hits: BTreeMap<String, u32> = BTreeMap::new();
    for l in log.lines().filter_map(|l| l.strip_prefix("hit=")) {
        *hits.entry(l.to_string()).or_default() += 1;
    }
    hits
}

/// 100 requests were answered, by exactly `backends`, none more than twice its even share.
fn assert_spread(what: &str, hits: &BTreeMap<String, u32>, backends: &[String]) {
    eprintln!("{what} spread: {hits:?}");
    assert_eq!(hits.values().sum::<u32>(), 100, "{what}: {hits:?}");
    let mut want = backends.to_vec();
    want.sort();
    assert_eq!(
        hits.keys().cloned().collect::<Vec<_>>(),
        want,
        "{what}: every ready backend and nothing else (no unready pod, no failed request)"
    );
    let limit = 2 * 100 / backends.len() as u32;
    for (backend, n) in hits {
        assert!(
            *n <= limit,
            "{what}: {backend} got {n} of 100 (more than twice its share)"
        );
    }
}

/// The start of a pod script: links for every busybox applet (the image links only a few), and
/// `get URL`: one HTTP GET printing the body, bounded by `timeout` because this busybox's wget
/// has no `-T` (it is built without FEATURE_WGET_TIMEOUT and crashes parsing `-T`).
const POD_PRELUDE: &str =
    "/bin/busybox --install -s /bin; get() { timeout 5 wget -q -O - \"$1\"; }; ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ip_and_node_port_spread_over_ready_pods_and_follow_scaling() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd, CNI and iptables");
        return;
    }
    let env = Env::start(51).await;
    let _: Deployment = env.create(backend_deployment(3)).await;
    // Selected by the service, but its readiness probe never passes.
    let _: Pod = env
        .create(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "unready", "labels": {"app": "web", "role": "unready"}},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "httpd", "image": IMAGE,
                    "command": ["sh", "-c", HTTPD],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1},
                }],
            },
        }))
        .await;
    let svc: Service = env.create(web_service("NodePort")).await;
    let spec = svc.spec.unwrap();
    let cluster_ip = spec.cluster_ip.unwrap();
    let node_port = spec.ports.unwrap()[0].node_port.unwrap() as u16;

    let (ready, not_ready) = env
        .wait_endpoints("web", "3 ready endpoints and 1 not ready", |r, n| {
            r.len() == 3 && n.len() == 1
        })
        .await;
    let names = env.pod_names_by_ip().await;
    assert_eq!(names[&not_ready[0]], "unready");
    let backends: Vec<String> = ready.iter().map(|ip| names[ip].clone()).collect();
    let eps: Vec<SocketAddrV4> = ready
        .iter()
        .map(|ip| SocketAddrV4::new(ip.parse().unwrap(), 8080))
        .collect();
    // Counting only makes sense once all 3 (and not the unready pod) are in the applied rules.
    let took = env.wait_programmed("default/web:http/tcp", &eps).await;
    eprintln!("3 endpoints programmed {took:?} after the slice showed them");

    let mut hits: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..100 {
        let h = hostname_at(&cluster_ip, 80)
            .await
            .expect("every request to the ClusterIP is answered");
        *hits.entry(h).or_default() += 1;
    }
    assert_spread("ClusterIP from the host", &hits, &backends);

    // NodePort on the node's address.
    let host_ip = skiff_agent::kubelet::node::host_ipv4();
    let h = hostname_at(&host_ip, node_port)
        .await
        .expect("the NodePort answers on the node's address");
    assert!(backends.contains(&h), "{h} is a backend");

    // From another pod (not a backend: the service does not select it).
    let _: Pod = env
        .create(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "client", "labels": {"app": "client"}},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "wget", "image": IMAGE,
                    "env": [{"name": "TARGET", "value": format!("http://{cluster_ip}/")}],
                    "command": ["sh", "-c", format!("{POD_PRELUDE}{}", concat!(
                        "i=0; while [ $i -lt 100 ]; do echo hit=$(get $TARGET); i=$((i+1)); done; ",
                        "echo finished; exec sleep 3600"))],
                }],
            },
        }))
        .await;
    let log = env
        .wait_log("client", "wget", "finished", Duration::from_secs(90))
        .await;
    assert_spread("ClusterIP from a pod", &hits_in_log(&log), &backends);

    // sessionAffinity ClientIP: every request from one client goes to one backend.
    let sticky: Service = env
        .create(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "sticky"},
            "spec": {
                "selector": {"app": "web"},
                "sessionAffinity": "ClientIP",
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        }))
        .await;
    let sticky_ip = sticky.spec.unwrap().cluster_ip.unwrap();
    env.wait_endpoints("sticky", "3 ready sticky endpoints", |r, _| r.len() == 3)
        .await;
    env.wait_programmed("default/sticky:http/tcp", &eps).await;
    let mut sticky_hits = BTreeSet::new();
    for _ in 0..20 {
        sticky_hits.insert(
            hostname_at(&sticky_ip, 80)
                .await
                .expect("every request to the sticky ClusterIP is answered"),
        );
    }
    assert_eq!(
        sticky_hits.len(),
        1,
        "one client, one backend: {sticky_hits:?}"
    );

    // Scale to 1: within 2 s of the endpoints dropping, no request reaches a removed pod.
    Api::<Deployment>::namespaced(env.client(), "default")
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    let (ready, _) = env
        .wait_endpoints("web", "1 ready endpoint", |r, _| r.len() == 1)
        .await;
    let dropped_at = Instant::now();
    let survivor = names[&ready[0]].clone();
    // The proxy applies an endpoint change within a second (measured from when the test saw
    // the slice change, so the proxy's own watch delay counts too).
    let took = env
        .wait_programmed(
            "default/web:http/tcp",
            &[SocketAddrV4::new(ready[0].parse().unwrap(), 8080)],
        )
        .await;
    assert!(
        took < Duration::from_secs(1),
        "the scale-down reached iptables {took:?} after the slice"
    );
    let mut streak = 0;
    let mut last_stray = None;
    while streak < 30 {
        assert!(
            dropped_at.elapsed() < Duration::from_secs(5),
            "traffic still reaches removed pods ({last_stray:?}) 5 s after scaling down"
        );
        match hostname_at(&cluster_ip, 80).await {
            Some(h) if h == survivor => streak += 1,
            other => {
                streak = 0;
                last_stray = Some((other, dropped_at.elapsed()));
            }
        }
    }
    if let Some((_, at)) = &last_stray {
        assert!(
            *at < Duration::from_secs(2),
            "a removed pod answered {at:?} after its endpoint was removed"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_reach_services_by_dns_name_including_their_own() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd, CNI and iptables");
        return;
    }
    let env = Env::start(52).await;
    let _: Deployment = env.create(backend_deployment(2)).await;
    let _: Service = env.create(web_service("ClusterIP")).await;
    env.wait_endpoints("web", "2 ready endpoints", |r, _| r.len() == 2)
        .await;
    // The DNS server binds the bridge gateway once the first pod created the bridge.
    let dns = SocketAddr::new(env.gateway.into(), 53);
    let (code, ips) = wait_for(
        "the cluster DNS answers",
        Duration::from_secs(10),
        || async move {
            skiff_agent::dns::query_a(dns, "web.default.svc.cluster.local.")
                .await
                .ok()
        },
    )
    .await;
    assert_eq!(code.to_string(), "No Error");
    assert_eq!(ips.len(), 1);
    let (code, _) = skiff_agent::dns::query_a(dns, "nope.default.svc.cluster.local.")
        .await
        .unwrap();
    assert_eq!(code.to_string(), "Non-Existent Domain");

    // A client that is a backend too: its requests to the service sometimes come back to
    // itself (hairpin). busybox wget resolves names with the image's static glibc (its
    // built-in DNS resolver reads resolv.conf: nameserver, search path, ndots).
    let _: Pod = env
        .create(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "client", "labels": {"app": "web", "role": "client"}},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {"name": "httpd", "image": IMAGE, "command": ["sh", "-c", HTTPD],
                     "ports": [{"name": "http", "containerPort": 8080}],
                     "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}},
                    {"name": "wget", "image": IMAGE, "command": ["sh", "-c", format!("{POD_PRELUDE}{}", concat!(
                        "cat /etc/resolv.conf; ",
                        // Pacing for the pod's own retries, until the rules reach it.
                        "until full=$(get http://web.default.svc.cluster.local); do sleep 0.2; done; ",
                        "echo full=$full; ",
                        // `web` alone exists only through the search path (no upstream).
                        "echo short=$(get http://web); ",
                        "echo outside=$(get http://web.example 2>&1); ",
                        // Wait until this pod itself is an endpoint: its own hostname answers.
                        "until [ \"$(get http://web)\" = client ]; do sleep 0.1; done; ",
                        "i=0; while [ $i -lt 100 ]; do echo hit=$(get http://web); i=$((i+1)); done; ",
                        "echo finished; exec sleep 3600"))]},
                ],
            },
        }))
        .await;
    let logs = env
        .wait_log("client", "wget", "finished", Duration::from_secs(120))
        .await;
    let gw = env.gateway;
    assert!(
        logs.starts_with(&format!(
            "nameserver {gw}\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        )),
        "{logs}"
    );
    let backends: Vec<String> = env.pod_names_by_ip().await.into_values().collect();
    let line = |key: &str| {
        logs.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {logs}"))
            .to_string()
    };
    let full = line("full=");
    assert!(backends.contains(&full), "{full} is a backend");
    let short = line("short=");
    assert!(
        backends.contains(&short),
        "`web` reached a backend through the search path: {short:?}"
    );
    let outside = line("outside=");
    assert!(
        outside.contains("bad address"),
        "a name outside the cluster domain does not resolve (no upstream): {outside:?}"
    );
    let hits = hits_in_log(&logs);
    assert!(hits.contains_key("client"), "hairpin: {hits:?}");
    assert_spread("service name from a pod", &hits, &backends);
    env.stop().await;
}

/// Two agents on one machine are two nodes (own node name, containerd namespace, podCIDR and
/// bridge): a pod on one reaches a pod on the other by IP, routed by the host between the
/// bridges and let through FORWARD by the agent's own rules (whatever the FORWARD policy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_on_two_nodes_reach_each_other_by_ip() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd, CNI and iptables");
        return;
    }
    let env = Env::start_nodes(56, 2, false).await;
    let (a, b) = (&env.nodes[0], &env.nodes[1]);
    let pod_on = |name: &str, node: &str, command: String| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": IMAGE, "command": ["sh", "-c", command]}],
            },
        })
    };
    // `-v`: httpd logs each client's address, to show that pods see each other unmasked.
    let _: Pod = env
        .create(pod_on(
            "server",
            &b.name,
            HTTPD.replace("httpd -f", "httpd -f -v"),
        ))
        .await;
    let server_ip = env.pod_ip("server").await;
    let _: Pod = env
        .create(pod_on(
            "client",
            &a.name,
            format!(
                "{POD_PRELUDE}until got=$(get http://{server_ip}:8080/); do sleep 0.2; done; \
                 echo got=$got; echo finished; exec sleep 3600"
            ),
        ))
        .await;
    let client_ip = env.pod_ip("client").await;
    for (ip, node) in [(client_ip, a), (server_ip, b)] {
        let cidr: ipnet::Ipv4Net = node.net.cidr.parse().unwrap();
        assert!(
            cidr.contains(&ip),
            "{ip} is in {}'s podCIDR {cidr}",
            node.name
        );
    }
    let log = env
        .wait_log("client", "main", "finished", Duration::from_secs(60))
        .await;
    assert!(log.contains("got=server\n"), "{log}");
    let served = env
        .wait_log("server", "main", "response:200", Duration::from_secs(10))
        .await;
    // httpd prints IPv4 clients as `[::ffff:a.b.c.d]:port` (its socket is IPv6).
    assert!(
        served.contains(&format!("[::ffff:{client_ip}]:"))
            || served.contains(&format!("{client_ip}:")),
        "the server saw the client's own address {client_ip} (no NAT between pods): {served}"
    );

    // The traffic went through the client node's accept rule (counters of `-i <bridge>`).
    let chain = skiff_agent::network::forward_chain(&a.net.bridge);
    let out = std::process::Command::new("iptables")
        .args(["-w", "-n", "-v", "-x", "-L", &chain])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    let packets: u64 = listing
        .lines()
        .find(|l| l.contains(&format!("from the pods of {}", a.net.bridge)))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no accept rule in {chain}:\n{listing}"));
    assert!(packets > 0, "{listing}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_removes_every_chain_and_jump() {
    if !running_as_root() {
        eprintln!("skipped: needs root for iptables");
        return;
    }
    let prefix = format!("SKT{}C", std::process::id() % 100_000);
    let _chains = ChainGuard(prefix.clone());
    let cfg = skiff_agent::proxy::ProxyConfig {
        chain_prefix: prefix.clone(),
        nodeport_addresses: vec!["127.0.0.2/32".into()],
        ..Default::default()
    };
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "x", "namespace": "default"},
        "spec": {"type": "NodePort", "clusterIP": "10.99.255.254",
                 "ports": [{"name": "p", "port": 80, "nodePort": 30999, "protocol": "TCP"}]}
    }))
    .unwrap();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "x-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "x"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.99.254.2"]}, {"addresses": ["10.99.254.3"]}],
        "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}],
    }))
    .unwrap();
    let ports = skiff_agent::proxy::rules::service_ports(
        &[std::sync::Arc::new(svc)],
        &[std::sync::Arc::new(slice)],
    );
    let mut last = None;
    let rc = cfg.rule_config();
    assert!(skiff_agent::proxy::sync(&rc, &ports, &mut last)
        .await
        .unwrap());
    // Unchanged: nothing re-applied.
    assert!(!skiff_agent::proxy::sync(&rc, &ports, &mut last)
        .await
        .unwrap());
    let save = skiff_agent::network::iptables::save().await.unwrap();
    assert!(save.contains(&format!(":{prefix}-SERVICES")));
    assert!(save.contains(&format!(
        "-A OUTPUT -m comment --comment \"skiff service proxy\" -j {prefix}-SERVICES"
    )));
    assert_eq!(save.matches(&format!(":{prefix}-SEP-")).count(), 2);
    // Endpoints gone: their chains are deleted in the same restore.
    let mut none = ports.clone();
    none[0].endpoints.clear();
    assert!(skiff_agent::proxy::sync(&rc, &none, &mut last)
        .await
        .unwrap());
    let save = skiff_agent::network::iptables::save().await.unwrap();
    assert_eq!(save.matches(&format!(":{prefix}-SEP-")).count(), 0);
    assert!(save.contains("-j REJECT"));
    // What `skiff-agent --cleanup` runs.
    skiff_agent::proxy::cleanup(&prefix).await.unwrap();
    let save = skiff_agent::network::iptables::save().await.unwrap();
    assert!(!save.contains(&format!("{prefix}-")), "{save}");
}
