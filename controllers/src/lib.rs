//! skiff-controllers: level-triggered reconcilers that make the cluster converge on what was
//! declared. Each controller reads state, computes what to do with a small pure function (unit
//! tested in its module), then acts through the API and records core/v1 Events.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;

pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod garbage_collector;
pub mod job;
pub mod leader;
pub mod metrics;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod replicaset;
pub mod util;

pub use metrics::Metrics;

/// Every controller this binary runs, by the name used in `--controllers`.
pub const ALL_CONTROLLERS: &[&str] = &[
    "replicaset",
    "deployment",
    "endpoints",
    "endpointslice",
    "garbagecollector",
    "namespace",
    "nodeipam",
    "nodelifecycle",
    "job",
];

#[derive(Clone, Debug)]
pub struct Config {
    /// Hold a Lease in `leader_elect_namespace` before acting; exit when it is lost.
    pub leader_elect: bool,
    pub leader_elect_namespace: String,
    pub leader_elect_name: String,
    pub leader_elect_identity: String,
    pub leader_elect_lease_duration: Duration,
    /// A node whose Lease was not renewed for this long is unreachable.
    pub node_monitor_grace_period: Duration,
    /// How often node health is checked.
    pub node_monitor_period: Duration,
    /// Pod CIDRs are carved from this range, one `node_cidr_mask_size` block per node.
    pub cluster_cidr: Option<Ipv4Net>,
    pub node_cidr_mask_size: u8,
    /// Which controllers run (names from [`ALL_CONTROLLERS`]).
    pub controllers: Vec<String>,
    /// How often the garbage collector rescans everything even without changes.
    pub gc_resync_period: Duration,
    /// Shared metrics (served by the binary at /metrics).
    pub metrics: Arc<Metrics>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            leader_elect: false,
            leader_elect_namespace: "kube-system".into(),
            leader_elect_name: "skiff-controllers".into(),
            leader_elect_identity: default_identity(),
            leader_elect_lease_duration: Duration::from_secs(15),
            node_monitor_grace_period: Duration::from_secs(40),
            node_monitor_period: Duration::from_secs(5),
            cluster_cidr: Some("10.244.0.0/16".parse().expect("valid default CIDR")),
            node_cidr_mask_size: 24,
            controllers: ALL_CONTROLLERS.iter().map(|s| s.to_string()).collect(),
            gc_resync_period: Duration::from_secs(30),
            metrics: Arc::new(Metrics::default()),
        }
    }
}

/// `hostname_random`, as client-go identifies leader-election candidates.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "skiff".into());
    format!("{host}_{:08x}", rand::random::<u32>())
}

/// Run the enabled controllers until `shutdown` completes (or leadership is lost, which is an
/// error so that a supervisor restarts the process as a follower).
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let elector = config.leader_elect.then(|| {
        leader::LeaderElector::new(
            client.clone(),
            &config.leader_elect_namespace,
            &config.leader_elect_name,
            &config.leader_elect_identity,
            config.leader_elect_lease_duration,
        )
    });
    tokio::pin!(shutdown);
    if let Some(e) = &elector {
        tracing::info!(identity = %config.leader_elect_identity, "waiting for the leader lease");
        tokio::select! {
            _ = e.acquire() => {}
            _ = &mut shutdown => return Ok(()),
        }
        tracing::info!("became leader");
    }
    config.metrics.leader.set(1);

    let enabled = |name: &str| config.controllers.iter().any(|c| c == name);
    let ctx = |component: &str| {
        Arc::new(util::Context {
            client: client.clone(),
            recorder: events::Recorder::new(client.clone(), component),
            metrics: config.metrics.clone(),
            config: config.clone(),
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    if enabled("replicaset") {
        tasks.spawn(replicaset::run(ctx(replicaset::NAME)));
    }
    if enabled("deployment") {
        tasks.spawn(deployment::run(ctx(deployment::NAME)));
    }
    if enabled("endpoints") {
        tasks.spawn(endpoints::run_endpoints(ctx(endpoints::NAME)));
    }
    if enabled("endpointslice") {
        tasks.spawn(endpoints::run_slices(ctx(endpoints::SLICE_NAME)));
    }
    if enabled("garbagecollector") {
        tasks.spawn(garbage_collector::run(ctx(garbage_collector::NAME)));
    }
    if enabled("namespace") {
        tasks.spawn(namespace::run(ctx(namespace::NAME)));
    }
    if enabled("nodeipam") {
        if let Some(cidr) = config.cluster_cidr {
            tasks.spawn(node_ipam::run(
                ctx(node_ipam::NAME),
                cidr,
                config.node_cidr_mask_size,
            ));
        }
    }
    if enabled("nodelifecycle") {
        tasks.spawn(node_lifecycle::run(ctx(node_lifecycle::NAME)));
    }
    if enabled("job") {
        tasks.spawn(job::run(ctx(job::NAME)));
    }

    let lost = async {
        match &elector {
            Some(e) => e.hold().await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        _ = &mut shutdown => Ok(()),
        _ = lost => Err(anyhow::anyhow!("lost the leader lease")),
        Some(r) = tasks.join_next() => Err(anyhow::anyhow!("a controller stopped unexpectedly: {r:?}")),
    };
    tasks.shutdown().await;
    config.metrics.leader.set(0);
    result
}
