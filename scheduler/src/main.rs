//! skiff-scheduler binary: flags, logging, /healthz and /metrics, SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use skiff_scheduler::{Config, FileConfig, LeaderElectionConfig};

/// Places pending pods on nodes through the skiff (or any Kubernetes) apiserver.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// apiserver URL; overrides the kubeconfig's server (e.g. http://127.0.0.1:6443).
    #[arg(long)]
    master: Option<String>,
    /// YAML file with plugin weights and back-off settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Schedule only while holding a coordination.k8s.io/v1 Lease.
    #[arg(long)]
    leader_elect: bool,
    #[arg(long, default_value = "skiff-scheduler")]
    leader_elect_resource_name: String,
    #[arg(long, default_value = "kube-system")]
    leader_elect_resource_namespace: String,
    #[arg(long, default_value_t = 15.0)]
    leader_elect_lease_duration_seconds: f64,
    #[arg(long, default_value_t = 10.0)]
    leader_elect_renew_deadline_seconds: f64,
    #[arg(long, default_value_t = 2.0)]
    leader_elect_retry_period_seconds: f64,
    /// Schedule pods whose spec.schedulerName is this (overrides the config file).
    #[arg(long)]
    scheduler_name: Option<String>,
    /// Address for /healthz and /metrics.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: String,
    /// Port for /healthz and /metrics (0: pick one).
    #[arg(long, default_value_t = 10259)]
    port: u16,
}

async fn client(args: &Args) -> anyhow::Result<kube::Client> {
    let mut cfg = match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None if args.master.is_some() => {
            kube::Config::new(args.master.as_deref().unwrap_or_default().parse()?)
        }
        None => kube::Config::infer().await?,
    };
    if let Some(m) = &args.master {
        cfg.cluster_url = m.parse().context("--master is not a URL")?;
    }
    Ok(kube::Client::try_from(cfg)?)
}

fn identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "skiff".into());
    format!("{host}_{:016x}", rand::random::<u64>())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let mut config = Config::default();
    if let Some(path) = &args.config {
        config.apply_file(&FileConfig::load(path)?);
    }
    if let Some(name) = &args.scheduler_name {
        config.scheduler_name = name.clone();
    }
    if args.leader_elect {
        config.leader_election = Some(LeaderElectionConfig {
            lease_name: args.leader_elect_resource_name.clone(),
            lease_namespace: args.leader_elect_resource_namespace.clone(),
            identity: identity(),
            lease_duration: Duration::from_secs_f64(args.leader_elect_lease_duration_seconds),
            renew_deadline: Duration::from_secs_f64(args.leader_elect_renew_deadline_seconds),
            retry_period: Duration::from_secs_f64(args.leader_elect_retry_period_seconds),
        });
    }
    let client = client(&args).await?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait_stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
        }
        let _ = stop_tx.send(true);
    });

    let listener = tokio::net::TcpListener::bind((args.bind_address.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.bind_address, args.port))?;
    tracing::info!(address = %listener.local_addr()?, "serving /healthz and /metrics");
    let http = tokio::spawn(skiff_scheduler::metrics::serve(
        listener,
        config.metrics.clone(),
        wait_stop(),
    ));

    skiff_scheduler::run(client, config, wait_stop()).await?;
    let _ = http.await;
    Ok(())
}
