//! The apiserver's configuration.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
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
    /// TLS, authentication and authorization.
    pub security: Security,
    /// The EncryptionConfiguration for encryption at rest (created when missing).
    pub encryption_provider_config: Option<PathBuf>,
}

/// How the apiserver secures its port.
#[derive(Debug, Clone)]
pub enum Security {
    /// HTTPS with client certificates, tokens and RBAC (the default).
    Secure(SecureServing),
    /// Plain HTTP where every request acts as `system:masters`: only for tests that exercise
    /// something other than security (the flag that selects it says so).
    InsecurePlainHttpForTesting,
}

#[derive(Debug, Clone)]
pub struct SecureServing {
    /// Where the cluster CA, the serving certificate, the ServiceAccount key and the
    /// components' kubeconfigs are kept (created when missing).
    pub cert_dir: PathBuf,
    /// Static bearer tokens (`token,user,uid,"groups"` per line).
    pub token_auth_file: Option<PathBuf>,
    /// Extra names and addresses for the serving certificate.
    pub tls_sans: Vec<String>,
    /// Tests only: the shortest ServiceAccount token lifetime accepted, instead of ten minutes.
    pub min_token_expiration_for_testing: Option<std::time::Duration>,
}

impl Default for SecureServing {
    fn default() -> Self {
        SecureServing {
            cert_dir: PathBuf::from("/var/lib/skiff/pki"),
            token_auth_file: None,
            tls_sans: Vec::new(),
            min_token_expiration_for_testing: None,
        }
    }
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
            security: Security::Secure(SecureServing::default()),
            encryption_provider_config: None,
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
