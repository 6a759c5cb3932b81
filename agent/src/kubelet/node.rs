//! Node registration, status and the heartbeat Lease in `kube-node-lease`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tracing::{info, warn};

use super::Shared;

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_DURATION_SECONDS: i32 = 40;
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// Host facts for the Node object.
#[derive(Clone, Debug)]
pub struct HostInfo {
    pub hostname: String,
    pub cpus: usize,
    pub memory_kib: u64,
    pub kernel: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
}

impl HostInfo {
    pub fn detect() -> HostInfo {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let memory_kib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        HostInfo {
            hostname: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_kib,
            kernel: read("/proc/sys/kernel/osrelease"),
            os_image,
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
        }
    }
}

/// The first non-loopback IPv4 address of the host (127.0.0.1 when there is none).
pub fn host_ipv4() -> String {
    let mut out = None;
    // SAFETY: getifaddrs fills a linked list we only read and then free with freeifaddrs.
    unsafe {
        let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut addrs) == 0 {
            let mut cur = addrs;
            while !cur.is_null() {
                let ifa = &*cur;
                if !ifa.ifa_addr.is_null()
                    && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET
                    && ifa.ifa_flags & libc::IFF_LOOPBACK as u32 == 0
                    && ifa.ifa_flags & libc::IFF_UP as u32 != 0
                {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                    out = Some(ip.to_string());
                    break;
                }
                cur = ifa.ifa_next;
            }
            libc::freeifaddrs(addrs);
        }
    }
    out.unwrap_or_else(|| "127.0.0.1".into())
}

/// The Node object as the agent registers it (metadata and spec).
pub fn node_object(shared: &Shared, host: &HostInfo) -> Node {
    let labels = BTreeMap::from([
        (
            "kubernetes.io/hostname".to_string(),
            shared.config.node_name.clone(),
        ),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "kubernetes.io/arch".to_string(),
            crate::images::oci_arch().to_string(),
        ),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "beta.kubernetes.io/arch".to_string(),
            crate::images::oci_arch().to_string(),
        ),
    ]);
    let _ = host;
    Node {
        metadata: ObjectMeta {
            name: Some(shared.config.node_name.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: shared.config.pod_cidr.clone(),
            pod_cidrs: shared.config.pod_cidr.clone().map(|c| vec![c]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The Node status: capacity, addresses, nodeInfo, daemon endpoint and conditions.
pub fn node_status(
    shared: &Shared,
    host: &HostInfo,
    runtime_version: &str,
    previous: Option<&NodeStatus>,
) -> NodeStatus {
    let now = Timestamp::now();
    let capacity = BTreeMap::from([
        ("cpu".to_string(), Quantity(host.cpus.to_string())),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", host.memory_kib)),
        ),
        ("pods".to_string(), Quantity("110".into())),
    ]);
    let cond = |kind: &str, status: &str, reason: &str, message: &str| {
        let last_transition = previous
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        NodeCondition {
            type_: kind.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_heartbeat_time: Some(Time(now)),
            last_transition_time: Some(last_transition),
        }
    };
    NodeStatus {
        capacity: Some(capacity.clone()),
        allocatable: Some(capacity),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: shared.host_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: shared.config.node_name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(shared.api_port()),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: crate::images::oci_arch().into(),
            boot_id: host.boot_id.clone(),
            container_runtime_version: format!("containerd://{runtime_version}"),
            kernel_version: host.kernel.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: format!("v1.33.0-skiff.{}", env!("CARGO_PKG_VERSION")),
            machine_id: host.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: host.os_image.clone(),
            system_uuid: host.machine_id.clone(),
            ..Default::default()
        }),
        conditions: Some(vec![
            cond(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "agent has sufficient memory available",
            ),
            cond(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "agent has no disk pressure",
            ),
            cond(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "agent has sufficient PID available",
            ),
            cond(
                "Ready",
                "True",
                "KubeletReady",
                "skiff agent is posting ready status",
            ),
        ]),
        ..Default::default()
    }
}

/// Create the Node if missing (or update its labels and podCIDR), then write its status.
pub async fn register(
    shared: &Shared,
    host: &HostInfo,
    runtime_version: &str,
) -> anyhow::Result<Node> {
    let api = Api::<Node>::all(shared.client.clone());
    let desired = node_object(shared, host);
    let name = shared.config.node_name.clone();
    let node = match api.get_opt(&name).await? {
        None => {
            info!(node = %name, "registering node");
            api.create(&PostParams::default(), &desired)
                .await
                .context("creating the Node")?
        }
        Some(_) => {
            let mut patch = serde_json::json!({"metadata": {"labels": desired.metadata.labels}});
            if let Some(cidr) = &shared.config.pod_cidr {
                patch["spec"] = serde_json::json!({"podCIDR": cidr, "podCIDRs": [cidr]});
            }
            api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .context("updating the Node")?
        }
    };
    update_status(shared, host, runtime_version, &node).await
}

pub async fn update_status(
    shared: &Shared,
    host: &HostInfo,
    runtime_version: &str,
    node: &Node,
) -> anyhow::Result<Node> {
    let api = Api::<Node>::all(shared.client.clone());
    let status = node_status(shared, host, runtime_version, node.status.as_ref());
    api.patch_status(
        &shared.config.node_name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": status })),
    )
    .await
    .context("writing the Node status")
}

/// Create or renew the node's Lease.
pub async fn renew_lease(shared: &Shared, node: &Node) -> anyhow::Result<()> {
    let api = Api::<Lease>::namespaced(shared.client.clone(), LEASE_NAMESPACE);
    let name = &shared.config.node_name;
    let now = MicroTime(Timestamp::now());
    match api.get_opt(name).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            spec.holder_identity = Some(name.clone());
            spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
            spec.renew_time = Some(now);
            api.replace(name, &PostParams::default(), &lease)
                .await
                .context("renewing the node Lease")?;
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    owner_references: node.metadata.uid.clone().map(|uid| {
                        vec![OwnerReference {
                            api_version: "v1".into(),
                            kind: "Node".into(),
                            name: name.clone(),
                            uid,
                            ..Default::default()
                        }]
                    }),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.clone()),
                    lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                    renew_time: Some(now.clone()),
                    acquire_time: Some(now),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease)
                .await
                .context("creating the node Lease")?;
        }
    }
    Ok(())
}

/// Register, then renew the Lease every `heartbeat_interval` (default 10 s) and refresh the Node
/// status every minute.
pub async fn heartbeat_loop(
    shared: std::sync::Arc<Shared>,
    host: HostInfo,
    runtime_version: String,
) {
    let mut node = None;
    let mut last_status = tokio::time::Instant::now();
    loop {
        match &node {
            None => match register(&shared, &host, &runtime_version).await {
                Ok(n) => {
                    node = Some(n);
                    last_status = tokio::time::Instant::now();
                }
                Err(e) => warn!(error = %format!("{e:#}"), "registering the node"),
            },
            Some(n) => {
                if last_status.elapsed() >= Duration::from_secs(60) {
                    match update_status(&shared, &host, &runtime_version, n).await {
                        Ok(updated) => {
                            node = Some(updated);
                            last_status = tokio::time::Instant::now();
                        }
                        Err(e) => warn!(error = %format!("{e:#}"), "updating node status"),
                    }
                }
            }
        }
        if let Some(n) = &node {
            if let Err(e) = renew_lease(&shared, n).await {
                warn!(error = %format!("{e:#}"), "renewing the node lease");
            }
        }
        tokio::time::sleep(if node.is_some() {
            shared.config.heartbeat_interval
        } else {
            Duration::from_secs(1)
        })
        .await;
    }
}
