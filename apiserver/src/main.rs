//! skiff-apiserver binary: flags, logging, signals.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ipnet::Ipv4Net;

/// The skiff API server: Kubernetes' REST API over etcd.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// etcd endpoints, comma separated (e.g. http://127.0.0.1:2379,http://10.0.0.2:2379).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379",
        env = "SKIFF_ETCD_SERVERS"
    )]
    etcd_servers: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// Port to listen on (HTTPS).
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Directory of the cluster CA, the serving certificate, the ServiceAccount signing key and
    /// the admin and component kubeconfigs; what is missing is created on start.
    #[arg(long, global = true, default_value = "/var/lib/skiff/pki")]
    cert_dir: std::path::PathBuf,
    /// Static bearer tokens, one `token,user,uid,"group1,group2"` per line.
    #[arg(long)]
    token_auth_file: Option<std::path::PathBuf>,
    /// Extra DNS names or IP addresses for the serving certificate (repeatable).
    #[arg(long = "tls-san")]
    tls_sans: Vec<String>,
    /// TESTS ONLY: serve plain HTTP with no authentication or authorization, every request
    /// acting as system:masters. Never use it on a port anyone else can reach.
    #[arg(long)]
    insecure_plain_http_for_testing: bool,
    /// TESTS ONLY: accept ServiceAccount TokenRequests for lifetimes down to this many seconds
    /// (instead of Kubernetes' ten minutes), so a test can watch a token expire.
    #[arg(long, value_name = "SECONDS")]
    service_account_min_token_expiration_for_testing: Option<u64>,
    /// EncryptionConfiguration file for encryption at rest (aesgcm and identity providers);
    /// created with a fresh AES-256 key for Secrets when missing.
    #[arg(long)]
    encryption_provider_config: Option<std::path::PathBuf>,
    /// CIDR from which Service ClusterIPs are allocated.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: Ipv4Net,
    /// Port range for NodePort services, as FIRST-LAST.
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    service_node_port_range: (u16, u16),
    /// Changes remembered per resource for watches resuming from a resourceVersion.
    #[arg(long, default_value_t = 10_000)]
    watch_cache_size: usize,
    /// How often etcd history is compacted, in seconds (0 disables compaction).
    #[arg(long, default_value_t = 300)]
    etcd_compaction_interval: u64,
    /// Log filter, e.g. info or skiff_apiserver=debug.
    #[arg(long, default_value = "info", env = "RUST_LOG")]
    log: String,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Print a kubeconfig for USER (and GROUP) with a new client certificate from the cluster
    /// CA in --cert-dir, e.g. for a node's agent or a new user.
    Kubeconfig {
        /// The user name (the certificate's Common Name), e.g. system:node:NAME or alice.
        #[arg(long)]
        user: String,
        /// The group (the certificate's Organization), e.g. system:nodes.
        #[arg(long)]
        group: Option<String>,
        /// The apiserver URL the kubeconfig points at.
        #[arg(long, default_value = "https://127.0.0.1:6443")]
        server: String,
    },
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected FIRST-LAST, e.g. 30000-32767")?;
    let a: u16 = a.trim().parse().map_err(|e| format!("first port: {e}"))?;
    let b: u16 = b.trim().parse().map_err(|e| format!("last port: {e}"))?;
    if a > b {
        return Err(format!("first port {a} is above last port {b}"));
    }
    Ok((a, b))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Kubeconfig {
        user,
        group,
        server,
    }) = &args.command
    {
        let pki = skiff_pki::ClusterPki::ensure(&args.cert_dir, &Default::default(), server)
            .with_context(|| format!("opening the cert dir {}", args.cert_dir.display()))?;
        print!("{}", pki.kubeconfig_for(server, user, group.as_deref())?);
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .init();
    let config = skiff_apiserver::Config {
        etcd_servers: args.etcd_servers,
        bind_address: args.bind_address,
        port: args.port,
        service_cluster_ip_range: args.service_cluster_ip_range,
        service_node_port_range: args.service_node_port_range.0..=args.service_node_port_range.1,
        watch_cache_size: args.watch_cache_size,
        encryption_provider_config: args.encryption_provider_config,
        compaction_interval: (args.etcd_compaction_interval > 0)
            .then(|| Duration::from_secs(args.etcd_compaction_interval)),
        security: if args.insecure_plain_http_for_testing {
            skiff_apiserver::Security::InsecurePlainHttpForTesting
        } else {
            skiff_apiserver::Security::Secure(skiff_apiserver::SecureServing {
                cert_dir: args.cert_dir,
                token_auth_file: args.token_auth_file,
                tls_sans: args.tls_sans,
                min_token_expiration_for_testing: args
                    .service_account_min_token_expiration_for_testing
                    .map(Duration::from_secs),
            })
        },
        ..Default::default()
    };
    let mut server = skiff_apiserver::start(config)
        .await
        .context("starting skiff-apiserver")?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM; shutting down"),
        _ = server.wait() => anyhow::bail!("server stopped unexpectedly"),
    }
    server.stop().await;
    Ok(())
}
