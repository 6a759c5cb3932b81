//! skiff-controllers: the binary. Connects to the apiserver, optionally waits for the leader
//! Lease, runs the controllers, and serves /healthz and /metrics until SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use skiff_common::parse_duration;
use skiff_component::{init_tracing, shutdown_signal, ClientArgs};
use skiff_controllers::{registry, Config, Metrics};

/// Runs skiff's controllers: replicaset, deployment, endpoints, endpointslice,
/// garbagecollector, namespace, nodeipam, nodelifecycle, job.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    client: ClientArgs,
    /// The cluster CA (PEM) to publish to every namespace as the kube-root-ca.crt ConfigMap
    /// (default: the kubeconfig's certificate authority)
    #[arg(long)]
    root_ca_file: Option<std::path::PathBuf>,
    /// Acquire the leader Lease before acting, so that only one replica runs the controllers
    #[arg(long, default_value_t = false)]
    leader_elect: bool,
    /// Namespace of the leader Lease
    #[arg(long, default_value = "kube-system")]
    leader_elect_namespace: String,
    /// Name of the leader Lease
    #[arg(long, default_value = "skiff-controllers")]
    leader_elect_name: String,
    /// How long a leader Lease stays valid without renewal (e.g. 15s)
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    leader_elect_lease_duration: Duration,
    /// A node whose Lease is not renewed for this long becomes Ready=Unknown (e.g. 40s)
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// How often node health is checked
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    node_monitor_period: Duration,
    /// Range pod CIDRs are allocated from ("" disables node IPAM)
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// Prefix length of each node's pod CIDR
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// Comma-separated controllers to run ('*' for all)
    #[arg(long, default_value = "*")]
    controllers: String,
    /// Address of the /healthz and /metrics server
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: String,
    /// Port of the /healthz and /metrics server (0 disables it)
    #[arg(long, default_value_t = 10257)]
    port: u16,
}

async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m.encode(),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, "serving /healthz and /metrics");
    axum::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing("info");
    let args = Args::parse();
    let controllers: Vec<String> = if args.controllers.trim() == "*" {
        registry::names().map(String::from).collect()
    } else {
        args.controllers
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    if let Some(unknown) = controllers.iter().find(|c| registry::find(c).is_none()) {
        anyhow::bail!(
            "unknown controller {unknown:?}; known: {}",
            registry::names().collect::<Vec<_>>().join(", ")
        );
    }
    let cluster_cidr = if args.cluster_cidr.is_empty() {
        None
    } else {
        Some(
            args.cluster_cidr
                .parse()
                .context("--cluster-cidr is not an IPv4 CIDR")?,
        )
    };
    let metrics = Arc::new(Metrics::default());
    let config = Config {
        leader_elect: args.leader_elect,
        leader_elect_namespace: args.leader_elect_namespace.clone(),
        leader_elect_name: args.leader_elect_name.clone(),
        leader_elect_lease_duration: args.leader_elect_lease_duration,
        node_monitor_grace_period: args.node_monitor_grace_period,
        node_monitor_period: args.node_monitor_period,
        cluster_cidr,
        node_cidr_mask_size: args.node_cidr_mask_size,
        controllers,
        metrics: metrics.clone(),
        ..Default::default()
    };
    let client_config = args.client.config().await?;
    let root_ca = match &args.root_ca_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading --root-ca-file {}", path.display()))?,
        ),
        None => client_config
            .root_cert
            .as_deref()
            .map(skiff_pki::pem::encode_certificates),
    };
    let config = Config { root_ca, ..config };
    let client = kube::Client::try_from(client_config)?;
    if args.port != 0 {
        let addr: SocketAddr = format!("{}:{}", args.bind_address, args.port)
            .parse()
            .context("invalid --bind-address")?;
        tokio::spawn(async move {
            if let Err(e) = serve(addr, metrics).await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
    }
    skiff_controllers::run(client, config, shutdown_signal()).await
}
