//! skiff-controllers: level-triggered reconcilers that make the cluster converge on what was
//! declared. Each controller lives in its own folder, is registered by name in [`registry`],
//! reads shared reflector stores ([`informers`]) instead of listing the apiserver, decides with
//! small pure functions (unit tested in its module), then acts through the API and records
//! core/v1 Events. Leader election, the recorder and client bootstrap come from skiff-component.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use skiff_component::{LeaderElectionConfig, LeaderElector, Recorder, Reporter};

pub mod clusterrole_aggregation;
pub mod context;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod expectations;
pub mod garbage_collector;
pub mod informers;
pub mod job;
pub mod metrics;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod reconcile;
pub mod registration;
pub mod registry;
pub mod replicaset;
pub mod root_ca_publisher;
pub mod serviceaccount;
pub mod util;

pub use context::Context;
pub use metrics::Metrics;

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
    /// Which controllers run (names from [`registry::CONTROLLERS`]).
    pub controllers: Vec<String>,
    /// How often the garbage collector rescans everything even without changes.
    pub gc_resync_period: Duration,
    /// Shared metrics (served by the binary at /metrics).
    pub metrics: Arc<Metrics>,
    /// The cluster CA (PEM) published to every namespace as `kube-root-ca.crt`.
    pub root_ca: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            leader_elect: false,
            leader_elect_namespace: "kube-system".into(),
            leader_elect_name: "skiff-controllers".into(),
            leader_elect_identity: skiff_component::identity::instance_identity(),
            leader_elect_lease_duration: Duration::from_secs(15),
            node_monitor_grace_period: Duration::from_secs(40),
            node_monitor_period: Duration::from_secs(5),
            cluster_cidr: Some("10.244.0.0/16".parse().expect("valid default CIDR")),
            node_cidr_mask_size: 24,
            controllers: registry::names().map(String::from).collect(),
            gc_resync_period: Duration::from_secs(30),
            metrics: Arc::new(Metrics::default()),
            root_ca: None,
        }
    }
}

impl Config {
    fn leader_election(&self) -> LeaderElectionConfig {
        LeaderElectionConfig {
            lease_namespace: self.leader_elect_namespace.clone(),
            ..LeaderElectionConfig::new(&self.leader_elect_name, &self.leader_elect_identity)
                .with_lease_duration(self.leader_elect_lease_duration)
        }
    }
}

/// Run the enabled controllers until `shutdown` completes (or leadership is lost, which is an
/// error so that a supervisor restarts the process as a follower). On shutdown the lease is
/// released so that another replica takes over at once.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let mut elector = config
        .leader_elect
        .then(|| LeaderElector::new(client.clone(), config.leader_election()));
    tokio::pin!(shutdown);
    if let Some(e) = elector.as_mut() {
        tracing::info!(identity = %config.leader_elect_identity, "waiting for the leader lease");
        tokio::select! {
            _ = e.acquire() => {}
            _ = &mut shutdown => return Ok(()),
        }
        tracing::info!("became leader");
    }
    config.metrics.leader.set(1);

    let result = {
        let controllers = run_controllers(client.clone(), config.clone());
        let lost = async {
            match elector.as_mut() {
                Some(e) => e.renew_until_lost().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => Ok(()),
            _ = lost => Err(anyhow::anyhow!("lost the leader lease")),
            r = controllers => r,
        }
    };
    config.metrics.leader.set(0);
    if result.is_ok() {
        if let Some(e) = elector.as_mut() {
            e.release().await;
        }
    }
    result
}

/// Start the shared informers and every enabled controller; returns only when one stops.
async fn run_controllers(client: kube::Client, config: Arc<Config>) -> anyhow::Result<()> {
    let informers = Arc::new(informers::Informers::new(client.clone()));
    let mut controllers = Vec::new();
    for name in &config.controllers {
        let reg =
            registry::find(name).ok_or_else(|| anyhow::anyhow!("unknown controller {name:?}"))?;
        let ctx = Arc::new(Context {
            client: client.clone(),
            informers: informers.clone(),
            recorder: Recorder::new(client.clone(), Reporter::new(reg.reporter)),
            metrics: config.metrics.clone(),
            config: config.clone(),
        });
        controllers.push((reg.name, (reg.start)(ctx)));
    }
    // Every controller subscribed: start the watches, and act only on complete stores.
    let _informers = informers.start();
    informers.wait_ready().await;
    let mut tasks = tokio::task::JoinSet::new();
    for (name, controller) in controllers {
        tasks.spawn(async move {
            controller.await;
            name
        });
    }
    if tasks.is_empty() {
        std::future::pending::<()>().await;
    }
    let stopped = tasks.join_next().await;
    tasks.shutdown().await;
    Err(anyhow::anyhow!(
        "a controller stopped unexpectedly: {stopped:?}"
    ))
}
