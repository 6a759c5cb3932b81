//! skiff-agent: the node agent. Registers its Node, keeps its Lease, runs the pods bound to it
//! through containerd and serves container logs.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use skiff_agent::{Config, Containerd};
use skiff_component::{identity, init_tracing, shutdown_signal, ClientArgs};

#[derive(Parser)]
#[command(
    version,
    about = "skiff node agent: runs the pods bound to this node through containerd"
)]
struct Args {
    /// --kubeconfig and --server (alias --master), as on every skiff binary.
    #[command(flatten)]
    client: ClientArgs,
    /// CA bundle (PEM) whose client certificates the agent API accepts (default: the
    /// kubeconfig's certificate authority, the cluster CA)
    #[arg(long)]
    client_ca_file: Option<std::path::PathBuf>,
    /// TESTS ONLY: serve the agent API (logs, metrics) as plain HTTP to anyone
    #[arg(long)]
    insecure_plain_http_api_for_testing: bool,
    /// The agent's earlier name for --server (apiserver URL, e.g. http://127.0.0.1:6443).
    #[arg(long, hide = true)]
    apiserver: Option<String>,
    /// Name of this node (defaults to $NODE_NAME, then the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// containerd's gRPC socket.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    containerd_socket: PathBuf,
    /// containerd namespace the agent's containers and images live in.
    #[arg(long, default_value = "skiff")]
    containerd_namespace: String,
    /// Pod CIDR of this node (written to the Node's spec.podCIDR).
    #[arg(long)]
    pod_cidr: Option<String>,
    /// Directory for container logs and volumes.
    #[arg(long, default_value = "/var/lib/skiff-agent")]
    root_dir: PathBuf,
    /// Directory of the CNI plugin binaries.
    #[arg(long, default_value = "/usr/lib/cni")]
    cni_bin_dir: PathBuf,
    /// Linux bridge the pods of this node attach to (created by the CNI bridge plugin).
    #[arg(long, default_value = "skiff0")]
    cni_bridge: String,
    /// Port of the agent API (logs, healthz, metrics); 0 picks a free one.
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// Run the service proxy: iptables nat rules for ClusterIPs and NodePorts.
    #[arg(long)]
    proxy: bool,
    /// Prefix of the proxy's iptables chains (`<PREFIX>-SERVICES`, ...).
    #[arg(long, default_value = "SKIFF")]
    proxy_chain_prefix: String,
    /// Cluster pod network: pod traffic to it keeps its source address, and ClusterIP
    /// traffic from outside it is masqueraded.
    #[arg(long)]
    cluster_cidr: Option<String>,
    /// CIDRs NodePorts answer on (comma-separated); default every local non-loopback address.
    #[arg(long, value_delimiter = ',')]
    nodeport_addresses: Vec<String>,
    /// Remove every iptables chain and jump rule of the service proxy (--proxy-chain-prefix),
    /// the pod sandboxes left under --root-dir and the pod network rules (FORWARD,
    /// masquerade) of --cni-bridge, and exit.
    #[arg(long)]
    cleanup: bool,
    /// Run the cluster DNS server on this address (e.g. the pod bridge's gateway, 10.244.0.1:53).
    #[arg(long)]
    dns_listen: Option<std::net::SocketAddr>,
    /// Upstream DNS server for names outside the cluster domain (none: they get NXDOMAIN).
    #[arg(long)]
    dns_upstream: Option<std::net::SocketAddr>,
    /// Nameserver written into ClusterFirst pods' resolv.conf (defaults to --dns-listen's IP).
    #[arg(long)]
    cluster_dns: Option<std::net::IpAddr>,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Registry (HOST:PORT, as written in image references) to pull from over plain HTTP
    /// instead of HTTPS; repeat the flag or separate with commas.
    #[arg(long, value_delimiter = ',')]
    insecure_registry: Vec<String>,
    /// Directory of per-registry CA certificates for HTTPS pulls: DIR/HOST:PORT/*.crt (the layout
    /// of docker's and containerd's certs.d), trusted besides the system's roots for that
    /// registry only. Read on every pull, so a CA added while the agent runs needs no restart.
    #[arg(long, default_value = skiff_agent::images::registry::DEFAULT_CERTS_DIR)]
    registry_certs_dir: std::path::PathBuf,
    /// Logging binary containerd's shim runs per container to timestamp its output (this
    /// binary's `log-writer` subcommand by default; it must exist at this path for the shim,
    /// e.g. inside a kind node); `none`: the shim writes raw logs, without timestamps.
    #[arg(long)]
    log_writer: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Import an OCI image layout tarball into containerd (for offline hosts).
    LoadImage {
        /// The tarball (index.json, oci-layout, blobs/).
        file: PathBuf,
        /// Image name, when the layout's index does not carry one.
        #[arg(long)]
        name: Option<String>,
    },
    /// Container logger run by containerd's shim (stdio URI `binary://`): copies the
    /// container's stdout and stderr (fds 3 and 4) into FILE with a timestamp per line.
    #[command(hide = true)]
    LogWriter {
        /// The log file (appended to).
        file: PathBuf,
    },
    /// Write an OCI layout tarball of a one-layer image made from a static busybox binary.
    BuildBusyboxImage {
        /// Output tarball.
        out: PathBuf,
        #[arg(long, default_value = "/bin/busybox")]
        busybox: PathBuf,
        #[arg(long, default_value = "skiff.local/busybox:latest")]
        name: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing("info");
    let args = Args::parse();
    match &args.command {
        Some(Command::LoadImage { file, name }) => {
            let cd =
                Containerd::connect(&args.containerd_socket, &args.containerd_namespace).await?;
            for n in cd.import_layout_tar(file, name.as_deref()).await? {
                println!("{n}");
            }
            return Ok(());
        }
        Some(Command::LogWriter { file }) => {
            return skiff_agent::kubelet::cri_log::run_writer(file)
        }
        Some(Command::BuildBusyboxImage { out, busybox, name }) => {
            skiff_agent::images::busybox::build_busybox_layout(busybox, out, name)?;
            return Ok(());
        }
        None => {}
    }
    if args.cleanup {
        skiff_agent::proxy::cleanup(&args.proxy_chain_prefix).await?;
        // Pod sandboxes an agent killed mid-way left behind, so their CNI rules go too.
        let network = skiff_agent::network::Network::new(skiff_agent::network::NetworkConfig {
            cni_bin_dir: args.cni_bin_dir.clone(),
            bridge: args.cni_bridge.clone(),
            state_dir: args.root_dir.join("network"),
            cluster_cidr: args.cluster_cidr.clone(),
        });
        for e in network.remove_all().await {
            tracing::warn!(error = %format!("{e:#}"), "cleanup");
        }
        return skiff_agent::network::remove_pod_network_rules(&args.cni_bridge).await;
    }
    let mut client_args = args.client.clone();
    if let Some(url) = &args.apiserver {
        client_args.server = Some(url.clone());
    }
    let client_config = client_args.config().await?;
    let client_ca = match &args.client_ca_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading --client-ca-file {}", path.display()))?,
        ),
        None => client_config
            .root_cert
            .as_deref()
            .map(skiff_pki::pem::encode_certificates),
    };
    let client = kube::Client::try_from(client_config)?;
    let node_name = identity::node_name(args.node_name.as_deref());
    let mut config = Config::new(
        &node_name,
        args.containerd_socket.clone(),
        args.root_dir.clone(),
    );
    config.containerd_namespace = args.containerd_namespace.clone();
    config.pod_cidr = args.pod_cidr.clone();
    config.port = args.port;
    config.cni_bin_dir = args.cni_bin_dir.clone();
    config.cni_bridge = args.cni_bridge.clone();
    config.cluster_cidr = args.cluster_cidr.clone();
    if args.proxy {
        config.proxy = Some(skiff_agent::proxy::ProxyConfig {
            chain_prefix: args.proxy_chain_prefix.clone(),
            cluster_cidr: args.cluster_cidr.clone(),
            nodeport_addresses: args.nodeport_addresses.clone(),
            ..Default::default()
        });
    }
    if let Some(listen) = args.dns_listen {
        let mut dns = skiff_agent::dns::DnsConfig::new(listen);
        dns.domain = args.cluster_domain.clone();
        dns.upstream = args.dns_upstream;
        config.dns = Some(dns);
    }
    config.cluster_dns = args.cluster_dns.or(args.dns_listen.map(|a| a.ip()));
    config.cluster_domain = args.cluster_domain.clone();
    config.insecure_registries = args.insecure_registry.clone();
    config.client_ca = client_ca;
    config.insecure_plain_http_api_for_testing = args.insecure_plain_http_api_for_testing;
    config.registry_certs_dir = Some(args.registry_certs_dir.clone());
    config.log_writer = match args.log_writer.as_deref() {
        Some("none") => None,
        Some(path) => Some(path.into()),
        None => {
            // This binary is the containers' logger (the `log-writer` subcommand).
            let exe = std::env::current_exe().context("locating the agent binary")?;
            // Rebuilt in place while running: the same path holds the new binary.
            let exe = exe.display().to_string();
            Some(exe.trim_end_matches(" (deleted)").into())
        }
    };
    skiff_agent::run(client, config, shutdown_signal()).await
}
