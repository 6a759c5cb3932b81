//! One worker per pod: observe the pod's containers in containerd, compare with the pod spec,
//! act (start, restart after back-off, stop), and write the pod status.
//!
//! The observed state is rebuilt from containerd on every pass (containers carry labels naming
//! pod and container, and an attempt number that is the restart count), so a restarted agent
//! adopts what is running instead of starting it again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use super::probe;
use super::spec::{self, BindMount, SpecContext};
use super::status::{self, ContainerView, State, Terminated};
use super::Shared;
use crate::images::store::ResolveError;
use crate::images::ResolvedImage;
use crate::network::{PortMapping, Sandbox};
use crate::runtime::{
    PodContainer, TaskState, LABEL_ATTEMPT, LABEL_CONTAINER, LABEL_IMAGE, LABEL_LOG,
    LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
};

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
    pub task: tokio::task::JoinHandle<()>,
}

pub fn spawn(shared: Arc<Shared>, pod: Pod) -> WorkerHandle {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let (tx, rx) = watch::channel(Some(pod));
    let task = tokio::spawn(async move {
        let mut w = Worker {
            shared,
            uid,
            pod: rx,
            wake: Arc::new(Notify::new()),
            waiting_on: HashSet::new(),
            errors: HashMap::new(),
            last_status: None,
            next_restart: None,
            sandbox: None,
            sandbox_retry_at: None,
            probers: HashMap::new(),
            killing: HashSet::new(),
        };
        w.run().await
    });
    WorkerHandle { pod: tx, task }
}

/// A start failure and when to try again.
struct StartError {
    reason: &'static str,
    message: String,
    failures: u32,
    retry_at: tokio::time::Instant,
}

struct Worker {
    shared: Arc<Shared>,
    uid: String,
    pod: watch::Receiver<Option<Pod>>,
    /// Woken when a task this worker waits on exits.
    wake: Arc<Notify>,
    waiting_on: HashSet<String>,
    errors: HashMap<String, StartError>,
    last_status: Option<serde_json::Value>,
    /// Earliest end of a restart back-off, computed by the last reconcile.
    next_restart: Option<tokio::time::Instant>,
    /// The pod's namespaces and IP, once set up.
    sandbox: Option<Sandbox>,
    /// After a failed sandbox setup: when to try again, and the error.
    sandbox_retry_at: Option<(tokio::time::Instant, String)>,
    /// Probes of the running containers, by containerd ID.
    probers: HashMap<String, probe::Prober>,
    /// Containers being stopped after a failed liveness probe.
    killing: HashSet<String>,
}

impl Worker {
    async fn run(&mut self) {
        loop {
            let pod = self.pod.borrow_and_update().clone();
            let Some(pod) = pod else {
                // The pod object is gone: stop and remove what is left of it.
                if let Err(e) = self.teardown(None).await {
                    warn!(error = %format!("{e:#}"), "cleaning up a deleted pod");
                }
                return;
            };
            if pod.metadata.deletion_timestamp.is_some() {
                match self.teardown(Some(&pod)).await {
                    Ok(()) => return,
                    Err(e) => warn!(pod = %name(&pod), error = %format!("{e:#}"), "stopping pod"),
                }
            } else {
                match self.reconcile(&pod).await {
                    Ok(()) => {}
                    Err(e) => {
                        warn!(pod = %name(&pod), error = %format!("{e:#}"), "reconciling pod")
                    }
                }
            }
            let next = self
                .errors
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
    async fn reconcile(&mut self, pod: &Pod) -> anyhow::Result<()> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        self.next_restart = None;
        if let Err(message) = self.ensure_sandbox(pod).await {
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
        let observed = self
            .shared
            .containerd
            .list_pod_containers(Some(&uid))
            .await?;
        let now = Utc::now();
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

    /// Observe one container, act on it (start, restart after back-off, restart after a failed
    /// liveness probe), and say what its status is.
    #[allow(clippy::too_many_arguments)]
    async fn container_view(
        &mut self,
        pod: &Pod,
        c: &Container,
        observed: &[PodContainer],
        policy: &str,
        now: chrono::DateTime<Utc>,
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
        let image = c.image.clone().unwrap_or_default();
        let Some(cur) = current else {
            // Never started: start it now (or report why it cannot start).
            return Ok(self.start(pod, c, 0, None, init).await);
        };
        let state = self.shared.containerd.task_state(&cur.id).await?;
        let cid = format!("containerd://{}", cur.id);
        let base = ContainerView {
            name: c.name.clone(),
            image: image.clone(),
            image_id: cur.image.clone(),
            container_id: Some(cid.clone()),
            state: State::Running {
                started_at: cur.created_at,
            },
            last: last.clone(),
            restart_count: cur.attempt as i32,
            ready: false,
        };
        Ok(match state {
            TaskState::Running { .. } => {
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
            TaskState::Missing | TaskState::Created => {
                // Interrupted between create and start: replace this run.
                self.shared.containerd.remove_container(&cur.id).await?;
                self.start(pod, c, cur.attempt, last, init).await
            }
            TaskState::Exited { code, at } => {
                self.shared.logs.set_running(&cur.log_path, false);
                let term = Terminated {
                    exit_code: code,
                    reason: exit_reason(code, &cgroups_path(&uid, &cur.id)).into(),
                    started_at: cur.created_at,
                    finished_at: at,
                    container_id: cid,
                };
                if !status::should_restart(policy, code) {
                    return Ok(ContainerView {
                        state: State::Terminated(term),
                        ..base
                    });
                }
                let delay = status::backoff(cur.attempt);
                let due = at.unwrap_or(now) + chrono::Duration::from_std(delay).unwrap_or_default();
                if due <= now {
                    // Keep only the run just finished (for lastState and previous logs).
                    if let Some(p) = previous {
                        self.shared.containerd.remove_container(&p.id).await?;
                    }
                    self.start(pod, c, cur.attempt + 1, Some(term), init).await
                } else {
                    let wait = (due - now).to_std().unwrap_or_default();
                    let at = tokio::time::Instant::now() + wait;
                    self.next_restart = Some(self.next_restart.map_or(at, |n| n.min(at)));
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
                        last: Some(term),
                        ..base
                    }
                }
            }
        })
    }

    /// The pod's network sandbox (none for hostNetwork pods); the error is a status message.
    async fn ensure_sandbox(&mut self, pod: &Pod) -> Result<(), String> {
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
                let msg = format!("setting up the pod network: {e:#}");
                warn!(pod = %name(pod), error = %msg, "pod sandbox");
                let at = tokio::time::Instant::now() + Duration::from_secs(2);
                self.next_restart = Some(at);
                self.sandbox_retry_at = Some((at, msg.clone()));
                Err(msg)
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
        tokio::spawn(async move {
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
        if let Some(err) = self.errors.get(&c.name) {
            if tokio::time::Instant::now() < err.retry_at {
                view.state = if err.reason == "ErrImagePull" {
                    // The kubelet's wording (1.32 on): the back-off, then the error that
                    // caused it, so the reason stays in the status while no pull runs.
                    State::Waiting {
                        reason: "ImagePullBackOff".into(),
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
        match self.try_start(pod, c, attempt).await {
            Ok((id, image_id)) => {
                self.errors.remove(&c.name);
                self.watch_exit(&id);
                view.container_id = Some(format!("containerd://{id}"));
                view.image_id = image_id;
                view.state = State::Running {
                    started_at: Some(Utc::now()),
                };
                // Probed containers become ready through their probes; init containers never
                // are while they run.
                view.ready = !init && c.readiness_probe.is_none() && c.startup_probe.is_none();
            }
            Err((reason, message)) => {
                warn!(pod = %name(pod), container = %c.name, reason, %message, "container did not start");
                let failures = self.errors.get(&c.name).map_or(0, |e| e.failures) + 1;
                let delay = status::backoff(failures).max(Duration::from_secs(1));
                self.errors.insert(
                    c.name.clone(),
                    StartError {
                        reason,
                        message: message.clone(),
                        failures,
                        retry_at: tokio::time::Instant::now() + delay,
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

    /// Image, spec, container, task. Errors carry their Kubernetes waiting reason.
    async fn try_start(
        &self,
        pod: &Pod,
        c: &Container,
        attempt: u32,
    ) -> Result<(String, String), (&'static str, String)> {
        let shared = &self.shared;
        let image = self.ensure_image(pod, c).await?;
        let resolved = self
            .resolve_env_refs(pod, c)
            .await
            .map_err(|e| ("CreateContainerConfigError", format!("{e:#}")))?;
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
        std::fs::create_dir_all(&log_dir).map_err(|e| {
            (
                "CreateContainerError",
                format!("creating {}: {e}", log_dir.display()),
            )
        })?;
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
        };
        let image_config = image.config.config().clone();
        let args = spec::process_args(c, image_config.as_ref());
        let env = spec::environment(pod, c, image_config.as_ref(), &ctx, &resolved)
            .map_err(|e| ("CreateContainerConfigError", format!("{e:#}")))?;
        self.write_config_volumes(pod, c, &dir)
            .await
            .map_err(|e| ("CreateContainerConfigError", format!("{e:#}")))?;
        let mut binds = volume_binds(pod, c, &dir)
            .map_err(|e| ("CreateContainerConfigError", format!("{e:#}")))?;
        // /etc/resolv.conf per dnsPolicy (cluster DNS for ClusterFirst pods).
        binds.extend(
            super::resolv_conf::pod_resolv_conf(&shared.config, pod, &dir)
                .map_err(|e| ("CreateContainerConfigError", format!("{e:#}")))?,
        );
        let oci = spec::build_spec(c, image_config.as_ref(), &ctx, args, env, &binds)
            .map_err(|e| ("CreateContainerError", format!("{e:#}")))?;
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
            .map_err(|e| ("CreateContainerError", format!("{e:#}")))?;
        shared
            .logs
            .set_running(&log_path.display().to_string(), true);
        if let Err(e) = shared.containerd.start_task(&id, &log_uri).await {
            shared
                .logs
                .set_running(&log_path.display().to_string(), false);
            let _ = shared.containerd.remove_container(&id).await;
            return Err(("RunContainerError", format!("{e:#}")));
        }
        info!(pod = %name(pod), container = %c.name, attempt, id = %id, "container started");
        Ok((id, image.id))
    }

    /// The image of container `c`, present or pulled as its imagePullPolicy says: `Never` uses
    /// only what is on the node (`ErrImageNeverPull` otherwise, as the kubelet says), and
    /// `IfNotPresent` pulls when absent. `Always` asks the registry on every container start and
    /// pulls when the reference now names another digest than the node has (pulling identical
    /// content again would only rewrite the same blobs). The apiserver defaults the policy as
    /// Kubernetes does (`Always` for `:latest` and untagged images); an unset one counts as
    /// `IfNotPresent`.
    async fn ensure_image(
        &self,
        pod: &Pod,
        c: &Container,
    ) -> Result<ResolvedImage, (&'static str, String)> {
        let shared = &self.shared;
        let image_ref = c.image.clone().unwrap_or_default();
        let policy = c
            .image_pull_policy
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("IfNotPresent");
        let present = match shared.containerd.resolve_image(&image_ref).await {
            Ok(i) => Some(i),
            Err(ResolveError::NotPresent(_)) => None,
            Err(e) => return Err(("ErrImagePull", e.to_string())),
        };
        let pulled = |e: anyhow::Error| {
            (
                "ErrImagePull",
                format!("failed to pull image \"{image_ref}\": {e:#}"),
            )
        };
        match (policy, present) {
            ("Never", None) => {
                return Err((
                    "ErrImageNeverPull",
                    format!(
                        "Container image \"{image_ref}\" is not present with pull policy of Never"
                    ),
                ))
            }
            ("Never" | "IfNotPresent", Some(i)) => return Ok(i),
            ("Always", Some(i)) => {
                let auth = self.pull_auth(pod, &image_ref).await;
                let remote = shared
                    .registry
                    .remote_digest(&image_ref, &auth)
                    .await
                    .map_err(pulled)?;
                if remote == i.id {
                    return Ok(i);
                }
                info!(pod = %name(pod), image = %image_ref, %remote, local = %i.id, "image changed at the registry, pulling");
                shared
                    .registry
                    .pull(&shared.containerd, &image_ref, &auth)
                    .await
                    .map_err(pulled)?;
            }
            _ => {
                let auth = self.pull_auth(pod, &image_ref).await;
                info!(pod = %name(pod), image = %image_ref, "pulling image");
                shared
                    .registry
                    .pull(&shared.containerd, &image_ref, &auth)
                    .await
                    .map_err(pulled)?;
            }
        }
        shared
            .containerd
            .resolve_image(&image_ref)
            .await
            .map_err(|e| ("ErrImagePull", e.to_string()))
    }

    /// Registry credentials for `image` from the pod's imagePullSecrets. Like the kubelet, a
    /// secret that cannot be read is logged and the pull goes on without it.
    async fn pull_auth(&self, pod: &Pod, image: &str) -> oci_client::secrets::RegistryAuth {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api = Api::<Secret>::namespaced(self.shared.client.clone(), ns);
        let mut datas = Vec::new();
        let refs = pod.spec.as_ref().and_then(|s| s.image_pull_secrets.clone());
        for r in refs.into_iter().flatten() {
            match api.get_opt(&r.name).await {
                Ok(Some(secret)) => datas.push(
                    secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect::<BTreeMap<_, _>>(),
                ),
                Ok(None) => warn!(pod = %name(pod), secret = %r.name, "imagePullSecret not found"),
                Err(e) => {
                    warn!(pod = %name(pod), secret = %r.name, error = %e, "reading imagePullSecret")
                }
            }
        }
        crate::images::registry::auth_for(&datas, &crate::images::registry::registry_of(image))
    }

    /// Write the files of the configMap and secret volumes this container mounts under the pod
    /// directory (`volumes/<name>/<key>`); they are bind-mounted read-only.
    async fn write_config_volumes(
        &self,
        pod: &Pod,
        c: &Container,
        pod_dir: &std::path::Path,
    ) -> anyhow::Result<()> {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        let client = self.shared.client.clone();
        for m in c.volume_mounts.iter().flatten() {
            let Some(v) = volumes.iter().find(|v| v.name == m.name) else {
                continue;
            };
            // (key → bytes, items, default mode), or None when an optional source is missing.
            let (data, items, mode): VolumeSource = if let Some(src) = &v.config_map {
                let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
                    .get_opt(&src.name)
                    .await?;
                let data = match cm {
                    Some(cm) => {
                        let mut d: BTreeMap<String, Vec<u8>> = cm
                            .data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.into_bytes()))
                            .collect();
                        for (k, v) in cm.binary_data.unwrap_or_default() {
                            d.insert(k, v.0);
                        }
                        Some(d)
                    }
                    None if src.optional.unwrap_or(false) => None,
                    None => anyhow::bail!("configmap \"{}\" not found", src.name),
                };
                (data, src.items.clone(), src.default_mode)
            } else if let Some(src) = &v.secret {
                let name = src.secret_name.clone().unwrap_or_default();
                let secret = Api::<Secret>::namespaced(client.clone(), &ns)
                    .get_opt(&name)
                    .await?;
                let data = match secret {
                    Some(s) => {
                        let mut d: BTreeMap<String, Vec<u8>> = s
                            .data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.0))
                            .collect();
                        for (k, v) in s.string_data.unwrap_or_default() {
                            d.insert(k, v.into_bytes());
                        }
                        Some(d)
                    }
                    None if src.optional.unwrap_or(false) => None,
                    None => anyhow::bail!("secret \"{name}\" not found"),
                };
                (data, src.items.clone(), src.default_mode)
            } else {
                continue;
            };
            let dir = pod_dir.join("volumes").join(&v.name);
            std::fs::create_dir_all(&dir)?;
            let data = data.unwrap_or_default();
            let files: Vec<(String, &Vec<u8>, Option<i32>)> = match &items {
                Some(items) => items
                    .iter()
                    .map(|i| {
                        data.get(&i.key)
                            .map(|d| (i.path.clone(), d, i.mode))
                            .ok_or_else(|| anyhow::anyhow!("volume {}: no key {}", v.name, i.key))
                    })
                    .collect::<anyhow::Result<_>>()?,
                None => data.iter().map(|(k, d)| (k.clone(), d, None)).collect(),
            };
            for (path, bytes, file_mode) in files {
                if path.split('/').any(|p| p == "..") || path.starts_with('/') {
                    anyhow::bail!("volume {}: invalid path {path}", v.name);
                }
                let target = dir.join(&path);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let tmp = target.with_extension("skiff-tmp");
                std::fs::write(&tmp, bytes)?;
                use std::os::unix::fs::PermissionsExt;
                let m = file_mode.or(mode).unwrap_or(0o644) as u32;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(m))?;
                std::fs::rename(&tmp, &target)?;
            }
        }
        Ok(())
    }

    /// Values of env entries that reference ConfigMaps and Secrets.
    async fn resolve_env_refs(
        &self,
        pod: &Pod,
        c: &Container,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let client = self.shared.client.clone();
        let mut out = BTreeMap::new();
        for env in c.env.iter().flatten() {
            let Some(from) = &env.value_from else {
                continue;
            };
            if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional.unwrap_or(false);
                let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
                    .get_opt(&r.name)
                    .await?;
                match cm.and_then(|cm| cm.data.and_then(|d| d.get(&r.key).cloned())) {
                    Some(v) => {
                        out.insert(env.name.clone(), v);
                    }
                    None if optional => {}
                    None => anyhow::bail!("configmap {}/{} key {} not found", ns, r.name, r.key),
                }
            } else if let Some(r) = &from.secret_key_ref {
                let optional = r.optional.unwrap_or(false);
                let s = Api::<Secret>::namespaced(client.clone(), &ns)
                    .get_opt(&r.name)
                    .await?;
                match s.and_then(|s| s.data.and_then(|d| d.get(&r.key).cloned())) {
                    Some(v) => {
                        out.insert(env.name.clone(), String::from_utf8_lossy(&v.0).into_owned());
                    }
                    None if optional => {}
                    None => anyhow::bail!("secret {}/{} key {} not found", ns, r.name, r.key),
                }
            }
        }
        Ok(out)
    }

    async fn write_status(
        &mut self,
        pod: &Pod,
        init_views: &[ContainerView],
        views: &[ContainerView],
    ) -> anyhow::Result<()> {
        let pod_ip = self.pod_ip(pod);
        let st = status::pod_status(
            pod,
            init_views,
            views,
            &self.shared.host_ip,
            pod_ip.as_deref(),
            Utc::now(),
        );
        let value = serde_json::to_value(&st)?;
        let current = pod.status.as_ref().map(serde_json::to_value).transpose()?;
        if self.last_status.as_ref() == Some(&value) || current.as_ref() == Some(&value) {
            return Ok(());
        }
        let api = Api::<Pod>::namespaced(
            self.shared.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        match api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": value })),
            )
            .await
        {
            Ok(_) => {
                debug!(pod = %name, phase = ?st.phase, "status written");
                self.last_status = Some(value);
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e).context("writing pod status"),
        }
    }

    /// Stop every container of the pod (SIGTERM, grace period, SIGKILL), remove them and the
    /// pod's directory, then delete the pod object (if given) with gracePeriodSeconds=0.
    async fn teardown(&mut self, pod: Option<&Pod>) -> anyhow::Result<()> {
        let uid = self.uid.clone();
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
        stop_pod_containers(&self.shared, &uid, Duration::from_secs(grace)).await?;
        self.shared.network.remove(&uid).await?;
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
                Err(e) => return Err(e).context("deleting the pod object"),
            }
        }
        Ok(())
    }
}

/// Stop and remove every container of a pod. Used for deletion and for orphans.
pub async fn stop_pod_containers(
    shared: &Shared,
    uid: &str,
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

/// The files of a configMap or secret volume (key → bytes; `None` when an optional source is
/// missing), its `items` and its default mode.
type VolumeSource = (
    Option<BTreeMap<String, Vec<u8>>>,
    Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>,
    Option<i32>,
);

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

/// Host directories for the container's volumeMounts (emptyDir and hostPath volumes).
fn volume_binds(
    pod: &Pod,
    c: &Container,
    pod_dir: &std::path::Path,
) -> anyhow::Result<Vec<BindMount>> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let v = volumes
            .iter()
            .find(|v| v.name == m.name)
            .ok_or_else(|| anyhow::anyhow!("volumeMount {} names no volume", m.name))?;
        let config_volume = v.config_map.is_some() || v.secret.is_some();
        let host = if v.empty_dir.is_some() || config_volume {
            let d = pod_dir.join("volumes").join(&v.name);
            std::fs::create_dir_all(&d)?;
            d.display().to_string()
        } else if let Some(hp) = &v.host_path {
            if hp.type_.as_deref() == Some("DirectoryOrCreate") {
                std::fs::create_dir_all(&hp.path)?;
            }
            hp.path.clone()
        } else {
            anyhow::bail!(
                "volume {}: only emptyDir, hostPath, configMap and secret are supported",
                v.name
            );
        };
        let host = match &m.sub_path {
            Some(sp) if !sp.is_empty() => format!("{host}/{sp}"),
            _ => host,
        };
        out.push(BindMount {
            host_path: host,
            container_path: m.mount_path.clone(),
            read_only: config_volume || m.read_only.unwrap_or(false),
        });
    }
    Ok(out)
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
}
