//! skiff-controllers: the binary. Connects to the apiserver, optionally waits for the leader
//! Lease, runs the controllers, and serves /healthz and /metrics until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use skiff_common::parse_duration;
use skiff_controllers::{Config, Metrics, ALL_CONTROLLERS};

/// Runs skiff's controllers: replicaset, deployment, endpoints, endpointslice,
/// garbagecollector, namespace, nodeipam, nodelifecycle, job.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// kubeconfig file to reach the apiserver (default: in-cluster or $KUBECONFIG)
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// apiserver URL; overrides the server in the kubeconfig
    #[arg(long)]
    master: Option<String>,
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

async fn client(args: &Args) -> anyhow::Result<kube::Client> {
    let mut config = match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None if args.master.is_some() => kube::Config::new("http://127.0.0.1:6443".parse()?),
        None => kube::Config::infer().await?,
    };
    if let Some(master) = &args.master {
        config.cluster_url = master.parse().context("--master is not a valid URL")?;
    }
    Ok(kube::Client::try_from(config)?)
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

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let controllers: Vec<String> = if args.controllers.trim() == "*" {
        ALL_CONTROLLERS.iter().map(|s| s.to_string()).collect()
    } else {
        args.controllers
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    if let Some(unknown) = controllers
        .iter()
        .find(|c| !ALL_CONTROLLERS.contains(&c.as_str()))
    {
        anyhow::bail!(
            "unknown controller {unknown:?}; known: {}",
            ALL_CONTROLLERS.join(", ")
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
    let client = client(&args).await?;
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
