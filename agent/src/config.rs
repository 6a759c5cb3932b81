//! The agent's settings (its command-line flags, see `main.rs`).

use std::path::PathBuf;

use crate::dns::DnsConfig;
use crate::images::registry::DEFAULT_CERTS_DIR;
use crate::kubelet::node::HEARTBEAT;
use crate::proxy::ProxyConfig;

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
    pub proxy: Option<ProxyConfig>,
    /// Run the cluster DNS server with these settings.
    pub dns: Option<DnsConfig>,
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
    /// The CA (PEM) whose client certificates the agent API accepts (the cluster CA, which
    /// signs the apiserver's `kube-apiserver-kubelet-client` certificate).
    pub client_ca: Option<String>,
    /// TESTS ONLY: serve the agent API as plain HTTP to anyone.
    pub insecure_plain_http_api_for_testing: bool,
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
            heartbeat_interval: HEARTBEAT,
            proxy: None,
            dns: None,
            cluster_dns: None,
            cluster_domain: "cluster.local".into(),
            cluster_cidr: None,
            insecure_registries: Vec::new(),
            registry_certs_dir: Some(DEFAULT_CERTS_DIR.into()),
            log_writer: None,
            client_ca: None,
            insecure_plain_http_api_for_testing: false,
        }
    }
}
