//! The kubelet part of the agent: the Node and its Lease ([`node`]), one worker per pod
//! ([`pods`], [`pod_worker`]) with its probes, volumes, environment and status, and the agent
//! API ([`server`]: logs, metrics, image loading).
//!
//! Dependencies run one way: the kubelet uses [`crate::images`], [`crate::runtime`] and
//! [`crate::network`]; none of them knows the kubelet.

pub mod cri_log;
pub mod env;
pub mod events;
pub mod node;
pub mod pod_worker;
pub mod pods;
pub mod probe;
pub mod resolv_conf;
pub mod server;
pub mod service_env;
pub mod spec;
pub mod status;
pub mod status_writer;
pub mod tokens;
pub mod volumes;

use std::sync::atomic::{AtomicU16, Ordering};

use skiff_component::Recorder;

use crate::config::Config;
use crate::images::registry::Registry;
use crate::network::Network;
use crate::runtime::Containerd;
use crate::servicecache::ServiceCache;

/// What every part of the agent shares.
pub struct Shared {
    pub client: kube::Client,
    pub containerd: Containerd,
    pub config: Config,
    pub host_ip: String,
    pub logs: server::LogState,
    pub network: Network,
    pub registry: Registry,
    /// The kubelet's Events (component `kubelet`, host `<node>`).
    pub recorder: Recorder,
    pub(crate) api_port: AtomicU16,
    /// ServiceAccount tokens of the pods' projected volumes.
    pub tokens: tokens::TokenManager,
    /// Services and EndpointSlices (service env vars, the proxy, DNS).
    pub services: ServiceCache,
}

impl Shared {
    /// The port the agent API actually listens on.
    pub fn api_port(&self) -> u16 {
        self.api_port.load(Ordering::Relaxed)
    }

    pub fn volume_sources(&self) -> volumes::VolumeSources<'_> {
        volumes::VolumeSources {
            client: &self.client,
            tokens: &self.tokens,
        }
    }
}
