//! The apiserver's configuration.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::registry::builtin::RegistryConfig;

#[derive(Debug, Clone)]
pub struct Config {
    pub etcd_servers: Vec<String>,
    pub bind_address: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    pub service_cluster_ip_range: Ipv4Net,
    pub service_node_port_range: RangeInclusive<u16>,
    /// Events kept per resource for watches that resume from a resourceVersion.
    pub watch_cache_size: usize,
    pub bookmark_interval: Duration,
    /// Watches without timeoutSeconds last between this and twice this.
    pub min_request_timeout: Duration,
    /// How often etcd history older than one interval is compacted (None: never).
    pub compaction_interval: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            etcd_servers: vec!["http://127.0.0.1:2379".into()],
            bind_address: IpAddr::from([127, 0, 0, 1]),
            port: 6443,
            service_cluster_ip_range: "10.96.0.0/12".parse().expect("valid CIDR"),
            service_node_port_range: 30000..=32767,
            watch_cache_size: 10_000,
            bookmark_interval: Duration::from_secs(60),
            min_request_timeout: Duration::from_secs(1800),
            compaction_interval: Some(Duration::from_secs(300)),
        }
    }
}

impl Config {
    pub fn registry(&self) -> RegistryConfig {
        RegistryConfig {
            service_cluster_ip_range: self.service_cluster_ip_range,
            service_node_port_range: self.service_node_port_range.clone(),
        }
    }
}
