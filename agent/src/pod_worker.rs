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

use crate::image::{ImageError, ResolvedImage};
use crate::runtime::{
    PodContainer, TaskState, LABEL_ATTEMPT, LABEL_CONTAINER, LABEL_IMAGE, LABEL_LOG,
    LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
};
use crate::spec::{self, BindMount, SpecContext};
use crate::status::{self, ContainerView, State, Terminated};
use crate::Shared;

/// How often a worker re-checks its pod without any event.
const RESYNC: Duration = Duration::from_secs(5);

/// The containerd container ID for one run of one container of a pod.
pub fn container_id(pod_uid: &str, name: &str, attempt: u32) -> String {
    crate::image::sha256_digest(format!("{pod_uid}/{name}/{attempt}").as_bytes())
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
        let observed = self
            .shared
            .containerd
            .list_pod_containers(Some(&uid))
            .await?;
        let now = Utc::now();
        let mut views = Vec::new();
        self.next_restart = None;
        for c in &spec.containers {
            let mut runs: Vec<&PodContainer> =
                observed.iter().filter(|o| o.name == c.name).collect();
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
                let view = self.start(pod, c, 0, None).await;
                views.push(view);
                continue;
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
            match state {
                TaskState::Running { .. } => {
                    self.watch_exit(&cur.id);
                    self.shared.logs.set_running(&cur.log_path, true);
                    views.push(ContainerView {
                        ready: true,
                        ..base
                    });
                }
                TaskState::Missing | TaskState::Created => {
                    // Interrupted between create and start: replace this run.
                    self.shared.containerd.remove_container(&cur.id).await?;
                    let view = self.start(pod, c, cur.attempt, last).await;
                    views.push(view);
                }
                TaskState::Exited { code, at } => {
                    self.shared.logs.set_running(&cur.log_path, false);
                    let term = Terminated {
                        exit_code: code,
                        reason: exit_reason(code).into(),
                        started_at: cur.created_at,
                        finished_at: at,
                        container_id: cid,
                    };
                    if !status::should_restart(&policy, code) {
                        views.push(ContainerView {
                            state: State::Terminated(term),
                            ..base
                        });
                        continue;
                    }
                    let delay = status::backoff(cur.attempt);
                    let due =
                        at.unwrap_or(now) + chrono::Duration::from_std(delay).unwrap_or_default();
                    if due <= now {
                        // Keep only the run just finished (for lastState and previous logs).
                        if let Some(p) = previous {
                            self.shared.containerd.remove_container(&p.id).await?;
                        }
                        let view = self.start(pod, c, cur.attempt + 1, Some(term)).await;
                        views.push(view);
                    } else {
                        let wait = (due - now).to_std().unwrap_or_default();
                        let at = tokio::time::Instant::now() + wait;
                        self.next_restart = Some(self.next_restart.map_or(at, |n| n.min(at)));
                        views.push(ContainerView {
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
                        });
                    }
                }
            }
        }
        self.write_status(pod, &views).await
    }

    async fn terminated_of(&self, run: &PodContainer) -> anyhow::Result<Option<Terminated>> {
        Ok(match self.shared.containerd.task_state(&run.id).await? {
            TaskState::Exited { code, at } => Some(Terminated {
                exit_code: code,
                reason: exit_reason(code).into(),
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
                let reason = if err.reason == "ErrImagePull" {
                    "ImagePullBackOff"
                } else {
                    err.reason
                };
                view.state = State::Waiting {
                    reason: reason.into(),
                    message: err.message.clone(),
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
                view.ready = true;
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
        let image_ref = c.image.clone().unwrap_or_default();
        let image: ResolvedImage = match shared.containerd.resolve_image(&image_ref).await {
            Ok(i) => i,
            Err(ImageError::NotPresent(n)) => {
                return Err((
                    "ErrImagePull",
                    format!("image {n} is not present on the node and pulling is not implemented"),
                ))
            }
            Err(e) => return Err(("ErrImagePull", e.to_string())),
        };
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
        let log_path = log_dir.join(format!("{attempt}.log"));
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
            cgroups_path: format!("/skiff/pod{uid}/{id}"),
            netns_path: None,
            host_network,
            pod_ip: host_network.then(|| shared.host_ip.clone()),
            node_name: shared.config.node_name.clone(),
        };
        let image_config = image.config.config().clone();
        let args = spec::process_args(c, image_config.as_ref());
        let env = spec::environment(pod, c, image_config.as_ref(), &ctx, &resolved)
            .map_err(|e| ("CreateContainerConfigError", format!("{e:#}")))?;
        let binds = volume_binds(pod, c, &dir)
            .map_err(|e| ("CreateContainerConfigError", format!("{e:#}")))?;
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
            .create_container(&id, labels, &image, &oci)
            .await
            .map_err(|e| ("CreateContainerError", format!("{e:#}")))?;
        shared
            .logs
            .set_running(&log_path.display().to_string(), true);
        if let Err(e) = shared.containerd.start_task(&id, &log_path).await {
            shared
                .logs
                .set_running(&log_path.display().to_string(), false);
            let _ = shared.containerd.remove_container(&id).await;
            return Err(("RunContainerError", format!("{e:#}")));
        }
        info!(pod = %name(pod), container = %c.name, attempt, id = %id, "container started");
        Ok((id, image.id))
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

    async fn write_status(&mut self, pod: &Pod, views: &[ContainerView]) -> anyhow::Result<()> {
        let pod_ip = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
            .then(|| self.shared.host_ip.clone());
        let st = status::pod_status(
            pod,
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
        stop_pod_containers(&self.shared, &uid, Duration::from_secs(grace)).await?;
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

fn exit_reason(code: i32) -> &'static str {
    if code == 0 {
        "Completed"
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
        let host = if v.empty_dir.is_some() {
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
                "volume {}: only emptyDir and hostPath are supported yet",
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
            read_only: m.read_only.unwrap_or(false),
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
