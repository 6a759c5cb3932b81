//! One worker per pod, a small state machine as the kubelet's pod workers are:
//!
//! - **syncing** while the pod exists and is not being deleted: each pass observes the pod's
//!   containers in containerd, decides per container with the pure [`next_step`] (start, keep
//!   running, replace an interrupted start, restart after the back-off, leave terminated),
//!   acts, and writes the pod status;
//! - **terminating** once the pod has a deletionTimestamp or is gone ([`pod_step`]): stop the
//!   containers (SIGTERM, grace period, SIGKILL), remove them, the sandbox and the pod
//!   directory, then delete the pod object; a failed teardown is retried on the next pass;
//! - **terminated**: the worker ends.
//!
//! The observed state is rebuilt from containerd on every pass (containers carry labels naming
//! pod and container, and an attempt number that is the restart count), so a restarted agent
//! adopts what is running instead of starting it again. Images come from the
//! [`ImageManager`], volumes from [`volumes`], env references from [`env`], and the status is
//! written by a [`StatusWriter`].

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Preconditions};
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use super::env::{self, EnvError};
use super::events::{self, ContainerEvents};
use super::probe;
use super::spec::{self, SpecContext};
use super::status::{self, ContainerView, State, Terminated};
use super::status_writer::{StatusWriteError, StatusWriter};
use super::volumes::{self, VolumeError};
use super::Shared;
use crate::images::manager::{ImageError, ImageManager, ERR_IMAGE_PULL, IMAGE_PULL_BACK_OFF};
use crate::images::pull_secrets::PullSecrets;
use crate::network::{PortMapping, Sandbox};
use crate::runtime::{
    PodContainer, TaskState, LABEL_ATTEMPT, LABEL_CONTAINER, LABEL_IMAGE, LABEL_LOG,
    LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
};
use skiff_component::AbortOnDrop;

/// How often a worker re-checks its pod without any event.
const RESYNC: Duration = Duration::from_secs(5);

/// The containerd container ID for one run of one container of a pod.
pub fn container_id(pod_uid: &str, name: &str, attempt: u32) -> String {
    crate::images::sha256_digest(format!("{pod_uid}/{name}/{attempt}").as_bytes())
        .trim_start_matches("sha256:")
        .to_string()
}

/// Directory holding a pod's logs and volumes.
pub fn pod_dir(root: &std::path::Path, ns: &str, name: &str, uid: &str) -> PathBuf {
    root.join("pods").join(format!("{ns}_{name}_{uid}"))
}

/// The handle the pod watcher keeps per worker.
pub struct WorkerHandle {
    pub pod: watch::Sender<Option<Pod>>,
    /// Aborted on drop (the pod's containers keep running).
    pub task: AbortOnDrop<()>,
}

pub fn spawn(shared: Arc<Shared>, pod: Pod) -> WorkerHandle {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let (tx, rx) = watch::channel(Some(pod));
    let task = AbortOnDrop::spawn(async move {
        let mut w = Worker {
            shared,
            uid,
            pod: rx,
            wake: Arc::new(Notify::new()),
            waiting_on: HashSet::new(),
            failures: HashMap::new(),
            status: StatusWriter::default(),
            next_restart: None,
            sandbox: None,
            sandbox_retry_at: None,
            probers: HashMap::new(),
            killing: HashSet::new(),
            back_off_recorded: HashSet::new(),
        };
        w.run().await
    });
    WorkerHandle { pod: tx, task }
}

/// Why a container did not start, with the waiting reason the kubelet reports for it.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The container's configuration is unusable (an env field reference, its resolv.conf).
    #[error("{0:#}")]
    Config(anyhow::Error),
    /// containerd could not create the container (or its log directory could not be made).
    #[error("{0:#}")]
    Create(anyhow::Error),
    /// The container's task did not start.
    #[error("{0:#}")]
    Run(anyhow::Error),
}

impl StartError {
    /// The container's waiting reason, as the kubelet names it.
    fn reason(&self) -> &'static str {
        match self {
            StartError::Image(e) => e.reason(),
            StartError::Env(_) | StartError::Volume(_) | StartError::Config(_) => {
                "CreateContainerConfigError"
            }
            StartError::Create(_) => "CreateContainerError",
            StartError::Run(_) => "RunContainerError",
        }
    }
}

/// The pod's network sandbox could not be set up (the pod stays `ContainerCreating`).
#[derive(Clone, Debug, thiserror::Error)]
#[error("setting up the pod network: {0}")]
struct SandboxError(String);

/// Why a pass of the worker failed (logged; the next pass tries again).
#[derive(Debug, thiserror::Error)]
enum WorkerError {
    #[error("{0:#}")]
    Runtime(#[from] anyhow::Error),
    #[error("removing the pod sandbox: {0:#}")]
    Network(anyhow::Error),
    #[error("deleting the pod object: {0}")]
    DeletePod(kube::Error),
    #[error(transparent)]
    Status(#[from] StatusWriteError),
}

/// What the worker does with its pod on a pass.
#[derive(Debug, PartialEq, Eq)]
enum PodStep {
    /// Bring the containers in line with the spec.
    Sync,
    /// Stop everything; then delete the pod object when there is one (the deletion the
    /// apiserver waits for), and end.
    Terminate { delete_object: bool },
}

/// The pod-level state: syncing until the pod is being deleted or gone.
fn pod_step(pod: Option<&Pod>) -> PodStep {
    match pod {
        None => PodStep::Terminate {
            delete_object: false,
        },
        Some(p) if p.metadata.deletion_timestamp.is_some() => PodStep::Terminate {
            delete_object: true,
        },
        Some(_) => PodStep::Sync,
    }
}

/// What one container needs, from the state of its latest run.
#[derive(Debug, PartialEq, Eq)]
enum ContainerStep {
    /// No run yet: start attempt 0.
    Start,
    /// The latest run's task is running.
    Running,
    /// Created but not started, or its task vanished (an interrupted start): replace the run.
    Replace,
    /// Exited, and the restart policy leaves it so.
    Stay,
    /// Exited; restart now as the next attempt.
    Restart,
    /// Exited; restart when the back-off of `delay` ends, `remaining` from now.
    BackOff {
        delay: Duration,
        remaining: Duration,
    },
}

/// The container-level state machine: the latest run (its attempt number and task state),
/// the restart policy and the time decide what happens next.
fn next_step(latest: Option<(u32, &TaskState)>, policy: &str, now: Timestamp) -> ContainerStep {
    let Some((attempt, state)) = latest else {
        return ContainerStep::Start;
    };
    match state {
        TaskState::Running { .. } => ContainerStep::Running,
        TaskState::Missing | TaskState::Created => ContainerStep::Replace,
        TaskState::Exited { code, at } => {
            if !status::should_restart(policy, *code) {
                return ContainerStep::Stay;
            }
            let delay = status::backoff(attempt);
            let since_exit = now.duration_since(at.unwrap_or(now));
            match SignedDuration::try_from(delay).map(|d| d - since_exit) {
                Ok(left) if left.is_positive() => ContainerStep::BackOff {
                    delay,
                    remaining: left.unsigned_abs(),
                },
                _ => ContainerStep::Restart,
            }
        }
    }
}

/// A start failure and when to try again.
struct StartFailure {
    reason: &'static str,
    message: String,
    failures: u32,
    retry_at: tokio::time::Instant,
    /// The BackOff Event of an image pull back-off is recorded (once per failure).
    back_off_recorded: bool,
}

struct Worker {
    shared: Arc<Shared>,
    uid: String,
    pod: watch::Receiver<Option<Pod>>,
    /// Woken when a task this worker waits on exits.
    wake: Arc<Notify>,
    waiting_on: HashSet<String>,
    /// The last start failure per container name.
    failures: HashMap<String, StartFailure>,
    status: StatusWriter,
    /// Earliest end of a restart back-off, computed by the last reconcile.
    next_restart: Option<tokio::time::Instant>,
    /// The pod's namespaces and IP, once set up.
    sandbox: Option<Sandbox>,
    /// After a failed sandbox setup: when to try again, and the error.
    sandbox_retry_at: Option<(tokio::time::Instant, SandboxError)>,
    /// Probes of the running containers, by containerd ID.
    probers: HashMap<String, probe::Prober>,
    /// Containers being stopped after a failed liveness probe.
    killing: HashSet<String>,
    /// Exited runs (containerd IDs) whose crash-loop BackOff Event is recorded.
    back_off_recorded: HashSet<String>,
}

impl Worker {
    async fn run(&mut self) {
        loop {
            let pod = self.pod.borrow_and_update().clone();
            match pod_step(pod.as_ref()) {
                PodStep::Terminate {
                    delete_object: false,
                } => {
                    // The pod object is gone: stop and remove what is left of it.
                    if let Err(e) = self.teardown(None).await {
                        warn!(error = %e, "cleaning up a deleted pod");
                    }
                    return;
                }
                PodStep::Terminate {
                    delete_object: true,
                } => {
                    let pod = pod.as_ref().expect("a pod to delete");
                    match self.teardown(Some(pod)).await {
                        Ok(()) => return,
                        Err(e) => warn!(pod = %name(pod), error = %e, "stopping pod"),
                    }
                }
                PodStep::Sync => {
                    let pod = pod.as_ref().expect("a pod to sync");
                    if let Err(e) = self.reconcile(pod).await {
                        warn!(pod = %name(pod), error = %e, "reconciling pod")
                    }
                }
            }
            let next = self
                .failures
                .values()
                .map(|e| e.retry_at)
                .chain(self.next_restart.take())
                .min()
                .unwrap_or_else(|| tokio::time::Instant::now() + RESYNC)
                .min(tokio::time::Instant::now() + RESYNC);
            let wake = self.wake.clone();
            tokio::select! {
                r = self.pod.changed() => if r.is_err() { return },
                _ = wake.notified() => {},
                _ = tokio::time::sleep_until(next) => {},
            }
        }
    }
}

impl Worker {
    /// One pass: observe, decide per container, act, write status.
    async fn reconcile(&mut self, pod: &Pod) -> Result<(), WorkerError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        self.next_restart = None;
        if let Err(e) = self.ensure_sandbox(pod).await {
            let message = e.to_string();
            let waiting = |c: &Container| ContainerView {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                image_id: String::new(),
                container_id: None,
                state: State::Waiting {
                    reason: "ContainerCreating".into(),
                    message: message.clone(),
                },
                last: None,
                restart_count: 0,
                ready: false,
            };
            let init: Vec<_> = spec.init_containers.iter().flatten().map(waiting).collect();
            let views: Vec<_> = spec.containers.iter().map(waiting).collect();
            return self.write_status(pod, &init, &views).await;
        }
        let dir = pod_dir(
            &self.shared.config.root_dir,
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default(),
            &uid,
        );
        if let Err(e) = volumes::refresh_tokens(&self.shared.volume_sources(), pod, &dir).await {
            warn!(pod = %name(pod), error = %e, "refreshing ServiceAccount tokens");
        }
        let observed = self
            .shared
            .containerd
            .list_pod_containers(Some(&uid))
            .await?;
        let now = Timestamp::now();
        let mut live = HashSet::new();
        // Init containers run one at a time, in order, each to success.
        let init_policy = if policy == "Never" {
            "Never"
        } else {
            "OnFailure"
        };
        let mut initialized = true;
        let mut init_views = Vec::new();
        for c in spec.init_containers.iter().flatten() {
            if !initialized {
                init_views.push(pending_view(c, "PodInitializing"));
                continue;
            }
            let mut v = self
                .container_view(pod, c, &observed, init_policy, now, true, &mut live)
                .await?;
            let done = matches!(&v.state, State::Terminated(t) if t.exit_code == 0);
            v.ready = done;
            initialized &= done;
            init_views.push(v);
        }
        let mut views = Vec::new();
        for c in &spec.containers {
            if !initialized {
                views.push(pending_view(c, "PodInitializing"));
                continue;
            }
            let v = self
                .container_view(pod, c, &observed, &policy, now, false, &mut live)
                .await?;
            views.push(v);
        }
        self.probers.retain(|id, _| live.contains(id));
        self.killing.retain(|id| live.contains(id));
        self.write_status(pod, &init_views, &views).await
    }

    /// Observe one container, act on it as [`next_step`] says, and say what its status is.
    #[allow(clippy::too_many_arguments)]
    async fn container_view(
        &mut self,
        pod: &Pod,
        c: &Container,
        observed: &[PodContainer],
        policy: &str,
        now: Timestamp,
        init: bool,
        live: &mut HashSet<String>,
    ) -> anyhow::Result<ContainerView> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut runs: Vec<&PodContainer> = observed.iter().filter(|o| o.name == c.name).collect();
        runs.sort_by_key(|o| o.attempt);
        let current = runs.last().copied();
        let previous = runs.len().checked_sub(2).map(|i| runs[i]);
        let last = match previous {
            Some(p) => self.terminated_of(p).await?,
            None => None,
        };
        let Some(cur) = current else {
            // Never started: start it now (or report why it cannot start).
            return Ok(self.start(pod, c, 0, None, init).await);
        };
        let state = self.shared.containerd.task_state(&cur.id).await?;
        let cid = format!("containerd://{}", cur.id);
        let term = match &state {
            TaskState::Exited { code, at } => Some(Terminated {
                exit_code: *code,
                reason: exit_reason(*code, &cgroups_path(&uid, &cur.id)).into(),
                started_at: cur.created_at,
                finished_at: *at,
                container_id: cid.clone(),
            }),
            _ => None,
        };
        let base = ContainerView {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: cur.image.clone(),
            container_id: Some(cid),
            state: State::Running {
                started_at: cur.created_at,
            },
            last: last.clone(),
            restart_count: cur.attempt as i32,
            ready: false,
        };
        if term.is_some() {
            self.shared.logs.set_running(&cur.log_path, false);
        }
        Ok(match next_step(Some((cur.attempt, &state)), policy, now) {
            ContainerStep::Start => unreachable!("a run exists"),
            ContainerStep::Running => {
                self.watch_exit(&cur.id);
                self.shared.logs.set_running(&cur.log_path, true);
                let ready = if init {
                    false
                } else {
                    live.insert(cur.id.clone());
                    let probes = self.probe_state(pod, c, &cur.id);
                    if let Some(why) = &probes.failed {
                        self.restart_unhealthy(pod, c, &cur.id, why);
                    }
                    probes.ready && probes.failed.is_none()
                };
                ContainerView { ready, ..base }
            }
            ContainerStep::Replace => {
                self.shared.containerd.remove_container(&cur.id).await?;
                self.start(pod, c, cur.attempt, last, init).await
            }
            ContainerStep::Stay => ContainerView {
                state: State::Terminated(term.expect("an exited run")),
                ..base
            },
            ContainerStep::Restart => {
                self.back_off_recorded.remove(&cur.id);
                // Keep only the run just finished (for lastState and previous logs).
                if let Some(p) = previous {
                    self.shared.containerd.remove_container(&p.id).await?;
                }
                self.start(pod, c, cur.attempt + 1, term, init).await
            }
            ContainerStep::BackOff { delay, remaining } => {
                let at = tokio::time::Instant::now() + remaining;
                self.next_restart = Some(self.next_restart.map_or(at, |n| n.min(at)));
                if self.back_off_recorded.insert(cur.id.clone()) {
                    let message = format!(
                        "Back-off restarting failed container {} in pod {}_{}({uid})",
                        c.name,
                        pod.metadata.name.as_deref().unwrap_or_default(),
                        pod.metadata.namespace.as_deref().unwrap_or_default(),
                    );
                    self.container_events(pod, c, init)
                        .warning(events::BACK_OFF, &message)
                        .await;
                }
                ContainerView {
                    state: State::Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: format!(
                            "back-off {}s restarting failed container={} pod={}_{}({uid})",
                            delay.as_secs(),
                            c.name,
                            pod.metadata.name.as_deref().unwrap_or_default(),
                            pod.metadata.namespace.as_deref().unwrap_or_default(),
                        ),
                    },
                    last: term,
                    ..base
                }
            }
        })
    }

    /// The pod's network sandbox (none for hostNetwork pods). A failure is kept and reported
    /// until the retry is due.
    async fn ensure_sandbox(&mut self, pod: &Pod) -> Result<(), SandboxError> {
        let spec = pod.spec.as_ref();
        if spec.and_then(|s| s.host_network).unwrap_or(false) || self.sandbox.is_some() {
            return Ok(());
        }
        if let Some(retry) = &self.sandbox_retry_at {
            if tokio::time::Instant::now() < retry.0 {
                return Err(retry.1.clone());
            }
        }
        let result = async {
            let cidr = self.pod_cidr().await?;
            let ports = host_ports(pod);
            self.shared.network.ensure(&self.uid, &cidr, &ports).await
        }
        .await;
        match result {
            Ok(sb) => {
                self.sandbox = Some(sb);
                self.sandbox_retry_at = None;
                Ok(())
            }
            Err(e) => {
                let err = SandboxError(format!("{e:#}"));
                warn!(pod = %name(pod), error = %err, "pod sandbox");
                let at = tokio::time::Instant::now() + Duration::from_secs(2);
                self.next_restart = Some(at);
                self.sandbox_retry_at = Some((at, err.clone()));
                Err(err)
            }
        }
    }

    /// The node's pod CIDR: the agent's flag, or the Node's spec.podCIDR.
    async fn pod_cidr(&self) -> anyhow::Result<String> {
        if let Some(c) = &self.shared.config.pod_cidr {
            return Ok(c.clone());
        }
        let node = Api::<k8s_openapi::api::core::v1::Node>::all(self.shared.client.clone())
            .get(&self.shared.config.node_name)
            .await
            .context("reading the Node for its podCIDR")?;
        node.spec
            .and_then(|s| s.pod_cidr)
            .ok_or_else(|| anyhow::anyhow!("the node has no podCIDR (set --pod-cidr)"))
    }

    /// The probe results of a running container (its probes start on first sight).
    fn probe_state(&mut self, pod: &Pod, c: &Container, id: &str) -> probe::ProbeState {
        if !self.probers.contains_key(id) {
            let target = probe::Target {
                events: self.container_events(pod, c, false),
                shared: self.shared.clone(),
                container_id: id.to_string(),
                container: c.clone(),
                pod_ip: self.pod_ip(pod),
            };
            self.probers
                .insert(id.to_string(), probe::start(target, self.wake.clone()));
        }
        self.probers[id].snapshot()
    }

    /// Stop a container whose liveness probe failed: SIGTERM, SIGKILL after the grace period.
    /// Its exit then restarts it through the ordinary restart path.
    fn restart_unhealthy(&mut self, pod: &Pod, c: &Container, id: &str, why: &str) {
        if !self.killing.insert(id.to_string()) {
            return;
        }
        info!(pod = %name(pod), container = %c.name, reason = %why, "container is unhealthy, restarting it");
        let grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64;
        let shared = self.shared.clone();
        let id = id.to_string();
        let events = self.container_events(pod, c, false);
        let message = format!(
            "Container {} failed {}, will be restarted",
            c.name,
            if why.starts_with("Startup") {
                "startup probe"
            } else {
                "liveness probe"
            }
        );
        tokio::spawn(async move {
            events.normal(events::KILLING, &message).await;
            let cd = &shared.containerd;
            let _ = cd.kill_task(&id, libc::SIGTERM).await;
            if tokio::time::timeout(Duration::from_secs(grace), cd.wait_task(&id))
                .await
                .is_err()
            {
                let _ = cd.kill_task(&id, libc::SIGKILL).await;
            }
        });
    }

    fn pod_ip(&self, pod: &Pod) -> Option<String> {
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
        {
            return Some(self.shared.host_ip.clone());
        }
        self.sandbox.as_ref().and_then(|s| s.ip.clone())
    }

    async fn terminated_of(&self, run: &PodContainer) -> anyhow::Result<Option<Terminated>> {
        Ok(match self.shared.containerd.task_state(&run.id).await? {
            TaskState::Exited { code, at } => Some(Terminated {
                exit_code: code,
                reason: exit_reason(code, &cgroups_path(&run.pod_uid, &run.id)).into(),
                started_at: run.created_at,
                finished_at: at,
                container_id: format!("containerd://{}", run.id),
            }),
            _ => None,
        })
    }

    /// Wake this worker when the task exits.
    fn watch_exit(&mut self, id: &str) {
        if !self.waiting_on.insert(id.to_string()) {
            return;
        }
        let shared = self.shared.clone();
        let wake = self.wake.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let _ = shared.containerd.wait_task(&id).await;
            wake.notify_one();
        });
    }

    /// Start run `attempt` of a container; the returned view says how that went.
    async fn start(
        &mut self,
        pod: &Pod,
        c: &Container,
        attempt: u32,
        last: Option<Terminated>,
        init: bool,
    ) -> ContainerView {
        let mut view = ContainerView {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            container_id: None,
            state: State::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            },
            last,
            restart_count: attempt as i32,
            ready: false,
        };
        let events = self.container_events(pod, c, init);
        if let Some(err) = self.failures.get_mut(&c.name) {
            if tokio::time::Instant::now() < err.retry_at {
                if err.reason == ERR_IMAGE_PULL && !err.back_off_recorded {
                    err.back_off_recorded = true;
                    let message = format!("Back-off pulling image \"{}\"", view.image);
                    events.warning(events::BACK_OFF, &message).await;
                }
                view.state = if err.reason == ERR_IMAGE_PULL {
                    // The kubelet's wording (1.32 on): the back-off, then the error that
                    // caused it, so the reason stays in the status while no pull runs.
                    State::Waiting {
                        reason: IMAGE_PULL_BACK_OFF.into(),
                        message: format!(
                            "Back-off pulling image \"{}\": ErrImagePull: {}",
                            view.image, err.message
                        ),
                    }
                } else {
                    State::Waiting {
                        reason: err.reason.into(),
                        message: err.message.clone(),
                    }
                };
                return view;
            }
        }
        match self.try_start(pod, c, attempt, &events).await {
            Ok((id, image_id)) => {
                self.failures.remove(&c.name);
                self.watch_exit(&id);
                view.container_id = Some(format!("containerd://{id}"));
                view.image_id = image_id;
                view.state = State::Running {
                    started_at: Some(Timestamp::now()),
                };
                // Probed containers become ready through their probes; init containers never
                // are while they run.
                view.ready = !init && c.readiness_probe.is_none() && c.startup_probe.is_none();
            }
            Err(e) => {
                let (reason, message) = (e.reason(), e.to_string());
                warn!(pod = %name(pod), container = %c.name, reason, %message, "container did not start");
                if let StartError::Volume(e) = &e {
                    let message = format!("MountVolume.SetUp failed: {e}");
                    events.warning(events::FAILED_MOUNT, &message).await;
                }
                let failures = self.failures.get(&c.name).map_or(0, |e| e.failures) + 1;
                let delay = status::backoff(failures).max(Duration::from_secs(1));
                self.failures.insert(
                    c.name.clone(),
                    StartFailure {
                        reason,
                        message: message.clone(),
                        failures,
                        retry_at: tokio::time::Instant::now() + delay,
                        back_off_recorded: false,
                    },
                );
                view.state = State::Waiting {
                    reason: reason.into(),
                    message,
                };
            }
        }
        view
    }

    /// Image, spec, container, task; returns the container ID and the image ID.
    async fn try_start(
        &self,
        pod: &Pod,
        c: &Container,
        attempt: u32,
        events: &ContainerEvents,
    ) -> Result<(String, String), StartError> {
        let shared = &self.shared;
        let images = ImageManager {
            containerd: &shared.containerd,
            registry: &shared.registry,
        };
        let image = images
            .ensure(
                c.image.as_deref().unwrap_or_default(),
                c.image_pull_policy.as_deref(),
                &PullSecrets::of(&shared.client, pod),
                events,
            )
            .await?;
        let resolved = env::resolve_refs(&shared.client, pod, c).await?;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let id = container_id(&uid, &c.name, attempt);
        let dir = pod_dir(&shared.config.root_dir, &ns, &pod_name, &uid);
        let log_dir = dir.join(&c.name);
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))
            .map_err(StartError::Create)?;
        let writer = shared.config.log_writer.as_deref();
        let log_path = log_dir.join(super::server::log_file_name(attempt, writer.is_some()));
        let log_uri = match writer {
            Some(w) => super::cri_log::uri(w, &log_path),
            None => format!("file://{}", log_path.display()),
        };
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let ctx = SpecContext {
            hostname: if host_network {
                hostname::get()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                pod_name.clone()
            },
            cgroups_path: cgroups_path(&uid, &id),
            netns_path: self
                .sandbox
                .as_ref()
                .map(|s| s.ns_path("net").display().to_string()),
            ipc_path: self
                .sandbox
                .as_ref()
                .map(|s| s.ns_path("ipc").display().to_string()),
            uts_path: self
                .sandbox
                .as_ref()
                .map(|s| s.ns_path("uts").display().to_string()),
            host_network,
            pod_ip: self.pod_ip(pod),
            node_name: shared.config.node_name.clone(),
            service_env: super::service_env::service_env(
                shared.services.services.state().iter().map(|s| s.as_ref()),
                &ns,
                pod.spec
                    .as_ref()
                    .and_then(|s| s.enable_service_links)
                    .unwrap_or(true),
            ),
        };
        let image_config = image.config.config().clone();
        let args = spec::process_args(c, image_config.as_ref());
        let env = spec::environment(pod, c, image_config.as_ref(), &ctx, &resolved)
            .map_err(StartError::Config)?;
        volumes::write_file_volumes(&shared.volume_sources(), pod, c, &dir).await?;
        let mut binds = volumes::volume_binds(pod, c, &dir)?;
        // /etc/resolv.conf per dnsPolicy (cluster DNS for ClusterFirst pods).
        binds.extend(
            super::resolv_conf::pod_resolv_conf(&shared.config, pod, &dir)
                .map_err(StartError::Config)?,
        );
        let oci = spec::build_spec(c, image_config.as_ref(), &ctx, args, env, &binds)
            .map_err(StartError::Create)?;
        let labels = HashMap::from([
            (LABEL_POD_UID.to_string(), uid.clone()),
            (LABEL_POD_NAME.to_string(), pod_name.clone()),
            (LABEL_POD_NAMESPACE.to_string(), ns.clone()),
            (LABEL_CONTAINER.to_string(), c.name.clone()),
            (LABEL_ATTEMPT.to_string(), attempt.to_string()),
            (LABEL_LOG.to_string(), log_path.display().to_string()),
            (LABEL_IMAGE.to_string(), image.id.clone()),
        ]);
        shared
            .containerd
            .create_container(&id, labels, &image.name, &image.chain_id, &oci)
            .await
            .map_err(StartError::Create)?;
        let created = format!("Created container: {}", c.name);
        events.normal(events::CREATED, &created).await;
        shared
            .logs
            .set_running(&log_path.display().to_string(), true);
        if let Err(e) = shared.containerd.start_task(&id, &log_uri).await {
            shared
                .logs
                .set_running(&log_path.display().to_string(), false);
            let _ = shared.containerd.remove_container(&id).await;
            return Err(StartError::Run(e));
        }
        info!(pod = %name(pod), container = %c.name, attempt, id = %id, "container started");
        let started = format!("Started container {}", c.name);
        events.normal(events::STARTED, &started).await;
        Ok((id, image.id))
    }

    /// The Events of container `c` of `pod`.
    fn container_events(&self, pod: &Pod, c: &Container, init: bool) -> ContainerEvents {
        ContainerEvents::new(&self.shared.recorder, pod, &c.name, init)
    }

    async fn write_status(
        &mut self,
        pod: &Pod,
        init_views: &[ContainerView],
        views: &[ContainerView],
    ) -> Result<(), WorkerError> {
        let pod_ip = self.pod_ip(pod);
        let st = status::pod_status(
            pod,
            init_views,
            views,
            &self.shared.host_ip,
            pod_ip.as_deref(),
            Timestamp::now(),
        );
        Ok(self.status.write(&self.shared.client, pod, &st).await?)
    }

    /// Stop every container of the pod (SIGTERM, grace period, SIGKILL), remove them and the
    /// pod's directory, then delete the pod object (if given) with gracePeriodSeconds=0.
    async fn teardown(&mut self, pod: Option<&Pod>) -> Result<(), WorkerError> {
        let uid = self.uid.clone();
        self.shared.tokens.forget_pod(&uid);
        let grace = pod
            .and_then(|p| {
                p.metadata.deletion_grace_period_seconds.or_else(|| {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                })
            })
            .unwrap_or(30)
            .max(0) as u64;
        self.probers.clear();
        stop_pod_containers(&self.shared, &uid, pod, Duration::from_secs(grace)).await?;
        self.shared
            .network
            .remove(&uid)
            .await
            .map_err(WorkerError::Network)?;
        self.sandbox = None;
        if let Some(p) = pod {
            let ns = p
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let name = p.metadata.name.clone().unwrap_or_default();
            let dir = pod_dir(&self.shared.config.root_dir, &ns, &name, &uid);
            let _ = std::fs::remove_dir_all(&dir);
            let api = Api::<Pod>::namespaced(self.shared.client.clone(), &ns);
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => info!(pod = %format!("{ns}/{name}"), "pod stopped and deleted"),
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(WorkerError::DeletePod(e)),
            }
        }
        Ok(())
    }
}

/// Stop and remove every container of a pod. Used for deletion and for orphans.
/// With the pod object at hand, each container stopped gets a Killing Event.
pub async fn stop_pod_containers(
    shared: &Shared,
    uid: &str,
    pod: Option<&Pod>,
    grace: Duration,
) -> anyhow::Result<()> {
    let containers = shared.containerd.list_pod_containers(Some(uid)).await?;
    let cd = &shared.containerd;
    let mut running = Vec::new();
    for c in &containers {
        if matches!(
            cd.task_state(&c.id).await?,
            TaskState::Running { .. } | TaskState::Created
        ) {
            if let Some(pod) = pod {
                let init = events::is_init_container(pod, &c.name);
                ContainerEvents::new(&shared.recorder, pod, &c.name, init)
                    .normal(events::KILLING, &format!("Stopping container {}", c.name))
                    .await;
            }
            cd.kill_task(&c.id, libc::SIGTERM).await?;
            running.push(c.id.clone());
        }
    }
    let waits = running.iter().map(|id| async move {
        let exited = tokio::time::timeout(grace, cd.wait_task(id)).await;
        if exited.is_err() {
            warn!(container = %id, "grace period over: SIGKILL");
            let _ = cd.kill_task(id, libc::SIGKILL).await;
            let _ = tokio::time::timeout(Duration::from_secs(10), cd.wait_task(id)).await;
        }
    });
    futures::future::join_all(waits).await;
    for c in &containers {
        shared.logs.set_running(&c.log_path, false);
        cd.remove_container(&c.id).await?;
    }
    Ok(())
}

/// A container that waits for something else (e.g. `PodInitializing`).
fn pending_view(c: &Container, reason: &str) -> ContainerView {
    ContainerView {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        container_id: None,
        state: State::Waiting {
            reason: reason.into(),
            message: String::new(),
        },
        last: None,
        restart_count: 0,
        ready: false,
    }
}

/// The pod's hostPort mappings, for the portmap plugin.
fn host_ports(pod: &Pod) -> Vec<PortMapping> {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some(PortMapping {
                host_port: p.host_port.filter(|h| *h > 0)?,
                container_port: p.container_port,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                host_ip: p.host_ip.clone().filter(|h| !h.is_empty()),
            })
        })
        .collect()
}

/// The cgroup (relative to each hierarchy's root) a container of the pod runs in.
pub fn cgroups_path(pod_uid: &str, id: &str) -> String {
    format!("/skiff/pod{pod_uid}/{id}")
}

/// Why a container's task exited: `OOMKilled` when the kernel's OOM killer killed a process in
/// its cgroup (the cgroup's own `oom_kill` count, which outlives the task until the container
/// is removed), as containerd's CRI plugin reports after a TaskOOM event.
fn exit_reason(code: i32, cgroup: &str) -> &'static str {
    if code == 0 {
        "Completed"
    } else if crate::runtime::oom_kills(cgroup).unwrap_or(0) > 0 {
        "OOMKilled"
    } else {
        "Error"
    }
}

fn name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_are_valid_and_distinct() {
        let a = container_id("uid-1", "web", 0);
        let b = container_id("uid-1", "web", 1);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn pods_terminate_when_deleted_or_gone() {
        let mut pod = Pod::default();
        assert_eq!(pod_step(Some(&pod)), PodStep::Sync);
        pod.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(
            pod_step(Some(&pod)),
            PodStep::Terminate {
                delete_object: true
            }
        );
        assert_eq!(
            pod_step(None),
            PodStep::Terminate {
                delete_object: false
            }
        );
    }

    #[test]
    fn containers_start_run_restart_and_back_off() {
        let now = Timestamp::now();
        assert_eq!(next_step(None, "Always", now), ContainerStep::Start);
        let running = TaskState::Running { pid: 1 };
        assert_eq!(
            next_step(Some((0, &running)), "Always", now),
            ContainerStep::Running
        );
        assert_eq!(
            next_step(Some((0, &TaskState::Created)), "Always", now),
            ContainerStep::Replace
        );
        let exited = |code, secs_ago| TaskState::Exited {
            code,
            at: Some(now - SignedDuration::from_secs(secs_ago)),
        };
        // The first restart is immediate; the next waits 10 s after the exit.
        assert_eq!(
            next_step(Some((0, &exited(1, 0))), "Always", now),
            ContainerStep::Restart
        );
        assert_eq!(
            next_step(Some((1, &exited(1, 4))), "Always", now),
            ContainerStep::BackOff {
                delay: Duration::from_secs(10),
                remaining: Duration::from_secs(6)
            }
        );
        assert_eq!(
            next_step(Some((1, &exited(1, 10))), "Always", now),
            ContainerStep::Restart
        );
        assert_eq!(
            next_step(Some((0, &exited(0, 0))), "OnFailure", now),
            ContainerStep::Stay
        );
        assert_eq!(
            next_step(Some((0, &exited(1, 0))), "Never", now),
            ContainerStep::Stay
        );
    }
}
