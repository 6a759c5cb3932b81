//! skiff-scheduler binary: flags, logging, /healthz and /metrics, SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use skiff_component::{identity, init_tracing, ClientArgs, Shutdown};
use skiff_scheduler::{Config, FileConfig, LeaderElectionConfig};

/// Places pending pods on nodes through the skiff (or any Kubernetes) apiserver.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    client: ClientArgs,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing("info");

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
            identity: identity::instance_identity(),
            lease_duration: Duration::from_secs_f64(args.leader_elect_lease_duration_seconds),
            renew_deadline: Duration::from_secs_f64(args.leader_elect_renew_deadline_seconds),
            retry_period: Duration::from_secs_f64(args.leader_elect_retry_period_seconds),
        });
    }
    let client = args.client.client().await?;
    let shutdown = Shutdown::on_signal();

    let listener = tokio::net::TcpListener::bind((args.bind_address.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.bind_address, args.port))?;
    tracing::info!(address = %listener.local_addr()?, "serving /healthz and /metrics");
    let http = tokio::spawn(skiff_scheduler::metrics::serve(
        listener,
        config.metrics.clone(),
        shutdown.wait(),
    ));

    skiff_scheduler::run(client, config, shutdown.wait()).await?;
    let _ = http.await;
    Ok(())
}
