//! skiff-scheduler: places pending pods on nodes.
//!
//! Layout follows the Kubernetes scheduler framework: [`framework`] (plugin traits, node and pod
//! views, the filter → score → select pipeline), [`plugins`] (one module per plugin),
//! [`queue`] (active, back-off and unschedulable pods), [`cache`] (nodes with bound and assumed
//! pods), [`binder`] (bindings and conditions) and [`scheduler`] (the loop that ties them to
//! kube-runtime informers). Leader election, the Event recorder, client bootstrap, shutdown and
//! tracing come from skiff-component.
//!
//! Benchmarks: `make bench` (tests/benches/scheduler.rs, figures in docs/benchmarks.md). Not built: preemption;
//! inter-pod affinity; topology spread constraints.

pub mod binder;
pub mod cache;
pub mod config;
pub mod framework;
pub mod metrics;
pub mod plugins;
pub mod queue;
pub mod scheduler;

use std::future::Future;

pub use config::{Config, FileConfig, Weights};
pub use metrics::Metrics;
/// The random source `framework::Framework::schedule` takes (ties are broken randomly), for
/// callers outside the crate such as the benchmark.
pub use rand;
pub use skiff_component::LeaderElectionConfig;

/// Run the scheduler until `shutdown` completes. With `config.leader_election`, schedule only
/// while holding the lease: wait for it, schedule, and go back to waiting if it is lost; on
/// shutdown the lease is released so another replica takes over at once.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    futures::pin_mut!(shutdown);
    let Some(le) = config.leader_election.clone() else {
        config.metrics.set_leader(true);
        let r = scheduler::run_scheduler(client, config.clone(), shutdown).await;
        config.metrics.set_leader(false);
        return r;
    };
    let mut elector = skiff_component::LeaderElector::new(client.clone(), le);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = elector.acquire() => {}
        }
        config.metrics.set_leader(true);
        enum Outcome {
            Shutdown,
            Lost,
            Exited(anyhow::Result<()>),
        }
        let outcome = {
            let sched =
                scheduler::run_scheduler(client.clone(), config.clone(), std::future::pending());
            futures::pin_mut!(sched);
            tokio::select! {
                _ = &mut shutdown => Outcome::Shutdown,
                _ = elector.renew_until_lost() => Outcome::Lost,
                r = &mut sched => Outcome::Exited(r),
            }
        };
        config.metrics.set_leader(false);
        match outcome {
            Outcome::Shutdown => {
                elector.release().await;
                return Ok(());
            }
            Outcome::Lost => tracing::warn!("lost the lease; stopped scheduling"),
            Outcome::Exited(r) => {
                elector.release().await;
                return r;
            }
        }
    }
}
