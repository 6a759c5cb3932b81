//! skiff-agent: runs the pods bound to its node through containerd's native gRPC API.
//!
//! The agent is a set of subsystems with dependencies running one way:
//!
//! - [`kubelet`]: the Node and its Lease, one worker per pod (probes, volumes, env, status),
//!   the agent API (logs, metrics); it uses
//! - [`images`]: the image manager (pull policy, pull secrets, typed image errors), the
//!   content store and unpacking, registry pulls, OCI layout import;
//! - [`runtime`]: the containerd client (containers, tasks, exec);
//! - [`network`]: pod sandboxes through CNI, and the one iptables wrapper;
//! - [`proxy`] (iptables rules for Services) and [`dns`] (cluster DNS), both over one
//!   [`servicecache`] of Services and EndpointSlices.
//!
//! This file only wires them: [`run`] registers the Node and keeps its Lease, watches pods
//! with `spec.nodeName=<node>` and serves the agent API. Stopping the agent (the `shutdown`
//! future) leaves containers running: a restarted agent adopts them from their containerd
//! labels.

pub mod config;
pub mod dns;
pub mod images;
pub mod kubelet;
pub mod network;
pub mod proxy;
pub mod runtime;
pub mod servicecache;

use std::future::Future;
use std::sync::atomic::AtomicU16;
use std::sync::Arc;

use anyhow::Context;
use skiff_component::{AbortOnDrop, Recorder, Reporter};
use tracing::{info, warn};

pub use config::Config;
use images::registry::Registry;
pub use kubelet::Shared;
use network::{Network, NetworkConfig};
pub use runtime::Containerd;
use servicecache::ServiceCache;

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
    let network = Network::new(NetworkConfig {
        cni_bin_dir: config.cni_bin_dir.clone(),
        bridge: config.cni_bridge.clone(),
        state_dir: config.root_dir.join("network"),
        cluster_cidr: config.cluster_cidr.clone(),
    });
    let registry = Registry::new(
        &config.insecure_registries,
        config.registry_certs_dir.clone(),
    );
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "kubelet".into(),
            instance: Some(config.node_name.clone()),
        },
    );
    let (services, drive_services) = ServiceCache::new(client.clone());
    let shared = Arc::new(Shared {
        recorder,
        client,
        containerd,
        network,
        registry,
        host_ip: kubelet::node::host_ipv4(),
        config,
        logs: kubelet::server::LogState::default(),
        api_port: AtomicU16::new(port),
        tokens: Default::default(),
        services,
    });

    let tls = if shared.config.insecure_plain_http_api_for_testing {
        warn!("serving the agent API as plain HTTP to anyone (test-only mode)");
        None
    } else {
        let ca = shared.config.client_ca.as_deref().context(
            "the agent API verifies the apiserver's client certificate against the cluster CA: \
             pass --client-ca-file, or use a kubeconfig with certificate-authority-data",
        )?;
        Some(kubelet::server::serving_tls(
            &shared.config.node_name,
            &shared.host_ip,
            ca,
        )?)
    };
    let app = kubelet::server::router(shared.clone(), tls.is_some());
    // Every helper task is aborted when `run` returns or its future is dropped (a caller that
    // aborts the agent must not leave a proxy re-applying rules behind it); the API's
    // shutdown signal is that abort.
    let (_api_stop, api_stopped) = tokio::sync::watch::channel(false);
    let mut helpers = vec![AbortOnDrop::spawn(skiff_component::https::serve(
        listener,
        tls,
        app,
        api_stopped,
    ))];
    helpers.push(AbortOnDrop::spawn(kubelet::node::heartbeat_loop(
        shared.clone(),
        kubelet::node::HostInfo::detect(),
        runtime_version,
    )));
    helpers.push(AbortOnDrop::spawn(drive_services));
    helpers.extend(spawn_service_networking(&shared));
    let mut workers = kubelet::pods::Workers::default();
    // Pods start with their service variables, so the Services are read first (as the
    // kubelet waits for its service informer).
    let pods = async {
        tracing::debug!("waiting for the service cache");
        shared.services.ready().await;
        tracing::debug!("service cache ready; watching pods");
        kubelet::pods::watch_pods(shared.clone(), &mut workers).await
    };
    tokio::select! {
        r = pods => {
            if let Err(e) = &r { warn!(error = %format!("{e:#}"), "pod watch ended"); }
        }
        _ = shutdown => info!("agent shutting down (containers keep running)"),
    }
    Ok(())
}

/// The service proxy and the cluster DNS server, when configured, over one Service and
/// EndpointSlice cache.
fn spawn_service_networking(shared: &Shared) -> Vec<AbortOnDrop<()>> {
    let cfg = &shared.config;
    if cfg.proxy.is_none() && cfg.dns.is_none() {
        return vec![];
    }
    let cache = shared.services.clone();
    let mut tasks = Vec::new();
    if let Some(p) = cfg.proxy.clone() {
        let cache = cache.clone();
        tasks.push(AbortOnDrop::spawn(async move {
            if let Err(e) = proxy::run(p, cache).await {
                warn!(error = %format!("{e:#}"), "service proxy stopped");
            }
        }));
    }
    if let Some(d) = cfg.dns.clone() {
        tasks.push(AbortOnDrop::spawn(async move {
            let server = dns::DnsServer::start(d, Arc::new(cache)).await;
            // Serve until this task is aborted (dropping the server stops it).
            let _server = server;
            std::future::pending::<()>().await
        }));
    }
    tasks
}
