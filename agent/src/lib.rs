//! skiff-agent: runs the pods bound to its node through containerd's native gRPC API.
//!
//! [`run`] registers the Node and keeps its Lease, watches pods with
//! `spec.nodeName=<node>`, runs one [`pod_worker`] per pod and serves the agent API.
//! Stopping the agent (the `shutdown` future) leaves containers running: a restarted agent
//! adopts them from their containerd labels.

pub mod cri_log;
pub mod dns;
pub mod image;
pub mod network;
pub mod node;
pub mod pod_worker;
pub mod probe;
pub mod proxy;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod spec;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{watcher, WatchStreamExt};
use tracing::{info, warn};

pub use runtime::Containerd;

/// Agent settings (the command-line flags).
#[derive(Clone, Debug)]
pub struct Config {
    pub node_name: String,
    pub containerd_socket: PathBuf,
    pub containerd_namespace: String,
    /// Pod CIDR for this node (written to `spec.podCIDR`).
    pub pod_cidr: Option<String>,
    /// Logs, volumes and uploads live here.
    pub root_dir: PathBuf,
    /// Agent API port (0: any free port; the chosen one is advertised in the Node status).
    pub port: u16,
    /// Address the agent API listens on.
    pub bind_address: std::net::IpAddr,
    /// Directory of the CNI plugin binaries.
    pub cni_bin_dir: PathBuf,
    /// Linux bridge the pods of this node attach to.
    pub cni_bridge: String,
    /// How often the node Lease is renewed (kubelet: 10 s); tests shorten it together with the
    /// controllers' node monitor grace period.
    pub heartbeat_interval: std::time::Duration,
    /// Run the service proxy (iptables rules for Services) with these settings.
    pub proxy: Option<proxy::ProxyConfig>,
    /// Run the cluster DNS server with these settings.
    pub dns: Option<dns::DnsConfig>,
    /// Nameserver written into the resolv.conf of ClusterFirst pods (kubelet `--cluster-dns`).
    pub cluster_dns: Option<std::net::IpAddr>,
    /// Cluster domain for pods' DNS search path (kubelet `--cluster-domain`).
    pub cluster_domain: String,
    /// The cluster's whole pod network: pod traffic to it is not masqueraded.
    pub cluster_cidr: Option<String>,
    /// Registries (`HOST:PORT` as in image references) pulled from over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Per-registry CA certificates, `DIR/<HOST:PORT>/*.crt` (docker's and containerd's certs.d
    /// layout); `None`: only the system's roots.
    pub registry_certs_dir: Option<PathBuf>,
    /// The agent binary, run by the shim as each container's logger (`log-writer`) so log
    /// lines carry timestamps; `None`: the shim writes raw logs itself (no timestamps).
    pub log_writer: Option<PathBuf>,
}

impl Config {
    pub fn new(node_name: &str, containerd_socket: PathBuf, root_dir: PathBuf) -> Config {
        Config {
            node_name: node_name.to_string(),
            containerd_socket,
            containerd_namespace: "skiff".into(),
            pod_cidr: None,
            root_dir,
            port: 10250,
            bind_address: std::net::Ipv4Addr::UNSPECIFIED.into(),
            cni_bin_dir: "/usr/lib/cni".into(),
            cni_bridge: "skiff0".into(),
            heartbeat_interval: node::HEARTBEAT,
            proxy: None,
            dns: None,
            cluster_dns: None,
            cluster_domain: "cluster.local".into(),
            cluster_cidr: None,
            insecure_registries: Vec::new(),
            registry_certs_dir: Some(registry::DEFAULT_CERTS_DIR.into()),
            log_writer: None,
        }
    }
}

/// What every part of the agent shares.
pub struct Shared {
    pub client: kube::Client,
    pub containerd: Containerd,
    pub config: Config,
    pub host_ip: String,
    pub logs: server::LogState,
    pub network: network::Network,
    pub registry: registry::Registry,
    api_port: AtomicU16,
}

impl Shared {
    /// The port the agent API actually listens on.
    pub fn api_port(&self) -> u16 {
        self.api_port.load(Ordering::Relaxed)
    }
}

/// Run the agent until `shutdown` completes.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(config.root_dir.join("pods"))
        .with_context(|| format!("creating {}", config.root_dir.display()))?;
    let containerd =
        Containerd::connect(&config.containerd_socket, &config.containerd_namespace).await?;
    let runtime_version = containerd.version().await?;
    info!(node = %config.node_name, containerd = %runtime_version, "agent starting");

    let listener = tokio::net::TcpListener::bind((config.bind_address, config.port))
        .await
        .with_context(|| format!("binding the agent API on port {}", config.port))?;
    let port = listener.local_addr()?.port();
    let network = network::Network::new(network::NetworkConfig {
        cni_bin_dir: config.cni_bin_dir.clone(),
        bridge: config.cni_bridge.clone(),
        state_dir: config.root_dir.join("network"),
        cluster_cidr: config.cluster_cidr.clone(),
    });
    let registry = registry::Registry::new(
        &config.insecure_registries,
        config.registry_certs_dir.clone(),
    );
    let shared = Arc::new(Shared {
        client,
        containerd,
        network,
        registry,
        host_ip: node::host_ipv4(),
        config,
        logs: server::LogState::default(),
        api_port: AtomicU16::new(port),
    });

    let app = server::router(shared.clone());
    // Every helper task is aborted when `run` returns or its future is dropped (a caller that
    // aborts the agent must not leave a proxy re-applying rules behind it).
    let mut helpers = AbortOnDrop::default();
    helpers.0.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "agent API stopped");
        }
    }));
    helpers.0.push(tokio::spawn(node::heartbeat_loop(
        shared.clone(),
        node::HostInfo::detect(),
        runtime_version,
    )));
    helpers.0.extend(spawn_service_networking(&shared));
    let mut workers = Workers::default();
    tokio::select! {
        r = watch_pods(shared.clone(), &mut workers.0) => {
            if let Err(e) = &r { warn!(error = %format!("{e:#}"), "pod watch ended"); }
        }
        _ = shutdown => info!("agent shutting down (containers keep running)"),
    }
    Ok(())
}

/// Tasks aborted on drop.
#[derive(Default)]
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The pod workers by pod UID; aborted on drop (their containers keep running).
#[derive(Default)]
struct Workers(HashMap<String, pod_worker::WorkerHandle>);

impl Drop for Workers {
    fn drop(&mut self) {
        for w in self.0.values() {
            w.task.abort();
        }
    }
}

/// The service proxy and the cluster DNS server, when configured, over one Service and
/// EndpointSlice cache.
fn spawn_service_networking(shared: &Shared) -> Vec<tokio::task::JoinHandle<()>> {
    let cfg = &shared.config;
    if cfg.proxy.is_none() && cfg.dns.is_none() {
        return vec![];
    }
    let (cache, drive) = proxy::ServiceCache::new(shared.client.clone());
    let mut tasks = vec![tokio::spawn(drive)];
    if let Some(p) = cfg.proxy.clone() {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = proxy::run(p, cache).await {
                warn!(error = %format!("{e:#}"), "service proxy stopped");
            }
        }));
    }
    if let Some(d) = cfg.dns.clone() {
        tasks.push(tokio::spawn(async move {
            let server = dns::DnsServer::start(d, Arc::new(cache)).await;
            // Serve until this task is aborted (dropping the server stops it).
            let _server = server;
            std::future::pending::<()>().await
        }));
    }
    tasks
}

/// Watch the pods bound to this node and keep one worker per pod UID.
async fn watch_pods(
    shared: Arc<Shared>,
    workers: &mut HashMap<String, pod_worker::WorkerHandle>,
) -> anyhow::Result<()> {
    let api = kube::Api::<Pod>::all(shared.client.clone());
    let cfg =
        watcher::Config::default().fields(&format!("spec.nodeName={}", shared.config.node_name));
    let mut stream = watcher(api, cfg).default_backoff().boxed();
    let mut seen_in_init: HashSet<String> = HashSet::new();
    while let Some(event) = stream.try_next().await? {
        match event {
            watcher::Event::Init => seen_in_init.clear(),
            watcher::Event::InitApply(pod) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    seen_in_init.insert(uid);
                }
                apply(&shared, workers, pod);
            }
            watcher::Event::Apply(pod) => apply(&shared, workers, pod),
            watcher::Event::Delete(pod) => {
                if let Some(w) = pod.metadata.uid.as_ref().and_then(|u| workers.remove(u)) {
                    let _ = w.pod.send(None);
                }
            }
            watcher::Event::InitDone => {
                // Pods that vanished while we were not watching.
                let gone: Vec<String> = workers
                    .keys()
                    .filter(|u| !seen_in_init.contains(*u))
                    .cloned()
                    .collect();
                for uid in gone {
                    if let Some(w) = workers.remove(&uid) {
                        let _ = w.pod.send(None);
                    }
                }
                // Inline, before any later event can start new containers.
                if let Err(e) = cleanup_orphans(&shared, &seen_in_init).await {
                    warn!(error = %format!("{e:#}"), "cleaning up orphaned containers");
                }
            }
        }
        workers.retain(|_, w| !w.task.is_finished());
    }
    Ok(())
}

fn apply(shared: &Arc<Shared>, workers: &mut HashMap<String, pod_worker::WorkerHandle>, pod: Pod) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    match workers.get(&uid) {
        Some(w) if !w.task.is_finished() => {
            let _ = w.pod.send(Some(pod));
        }
        _ => {
            workers.insert(uid, pod_worker::spawn(shared.clone(), pod));
        }
    }
}

/// Containers labelled with a pod UID that no longer exists are stopped and removed.
async fn cleanup_orphans(shared: &Shared, known: &HashSet<String>) -> anyhow::Result<()> {
    let all = shared.containerd.list_pod_containers(None).await?;
    let orphans: HashSet<String> = all
        .into_iter()
        .map(|c| c.pod_uid)
        .filter(|u| !known.contains(u))
        .collect();
    for uid in orphans {
        info!(pod_uid = %uid, "removing containers of a pod that no longer exists");
        pod_worker::stop_pod_containers(shared, &uid, Duration::from_secs(10)).await?;
    }
    for uid in shared.network.sandboxes() {
        if !known.contains(&uid) {
            info!(pod_uid = %uid, "removing the sandbox of a pod that no longer exists");
            shared.network.remove(&uid).await?;
        }
    }
    Ok(())
}
