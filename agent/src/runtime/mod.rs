//! containerd through its native gRPC API: containers, snapshots and tasks.
//!
//! Every container the agent creates carries labels naming its pod (UID, namespace, name), its
//! container name and its attempt number, so the observed state of a pod can always be rebuilt
//! from containerd alone: that is what lets a restarted agent adopt running containers.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, Context};
use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
};
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteProcessRequest, DeleteTaskRequest, ExecProcessRequest, GetContainerRequest, GetRequest,
    KillRequest, ListContainersRequest, StartRequest, WaitRequest,
};
use containerd_client::tonic::metadata::MetadataMap;
use containerd_client::tonic::{self, Code};
use containerd_client::types::v1::Status as ProcStatus;
use k8s_openapi::jiff::Timestamp;
use oci_spec::runtime::Spec;

pub const SNAPSHOTTER: &str = "overlayfs";
pub const RUNTIME: &str = "io.containerd.runc.v2";
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
pub const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

pub const LABEL_POD_UID: &str = "io.skiff.pod.uid";
pub const LABEL_POD_NAME: &str = "io.skiff.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.skiff.pod.namespace";
pub const LABEL_CONTAINER: &str = "io.skiff.container.name";
pub const LABEL_ATTEMPT: &str = "io.skiff.container.attempt";
pub const LABEL_LOG: &str = "io.skiff.container.log";
pub const LABEL_IMAGE: &str = "io.skiff.container.image";

/// How many processes the kernel's OOM killer killed in the cgroup at `cgroups_path` (as in
/// the runtime spec's `linux.cgroupsPath`): cgroup v1's `memory.oom_control` or v2's
/// `memory.events`. `None` when the cgroup is gone or the kernel does not count.
pub fn oom_kills(cgroups_path: &str) -> Option<u64> {
    let rel = cgroups_path.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    // A v1 memory hierarchy (also on hybrid hosts, where runc uses v1 for controllers).
    let file = if root.join("memory").is_dir() {
        root.join("memory").join(rel).join("memory.oom_control")
    } else {
        root.join(rel).join("memory.events")
    };
    parse_oom_kills(&std::fs::read_to_string(file).ok()?)
}

/// The `oom_kill N` line of `memory.oom_control` (v1) or `memory.events` (v2).
fn parse_oom_kills(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == "oom_kill").then(|| v.trim().parse().ok()).flatten()
    })
}

/// A containerd connection bound to one namespace.
pub struct Containerd {
    pub client: containerd_client::Client,
    pub namespace: String,
}

/// Build a request carrying the containerd namespace.
pub fn request<T>(namespace: &str, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert(
        "containerd-namespace",
        namespace.parse().expect("namespace is valid ASCII"),
    );
    req
}

/// A container of a pod as containerd records it.
#[derive(Clone, Debug)]
pub struct PodContainer {
    pub id: String,
    pub pod_uid: String,
    pub name: String,
    pub attempt: u32,
    pub log_path: String,
    pub image: String,
    pub created_at: Option<Timestamp>,
}

/// What the task of a container is doing.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskState {
    /// No task (never started, or deleted).
    Missing,
    Created,
    Running {
        pid: u32,
    },
    Exited {
        code: i32,
        at: Option<Timestamp>,
    },
}

pub fn timestamp(ts: &prost_types::Timestamp) -> Option<Timestamp> {
    if ts.seconds <= 0 {
        return None;
    }
    Timestamp::new(ts.seconds, ts.nanos.max(0)).ok()
}

impl Containerd {
    pub async fn connect(socket: &Path, namespace: &str) -> anyhow::Result<Containerd> {
        let client = containerd_client::Client::from_path(socket)
            .await
            .with_context(|| format!("connecting to containerd at {}", socket.display()))?;
        Ok(Containerd {
            client,
            namespace: namespace.to_string(),
        })
    }

    pub fn add_metadata(&self, md: &mut MetadataMap, lease: Option<&str>) {
        md.insert(
            "containerd-namespace",
            self.namespace.parse().expect("namespace is valid ASCII"),
        );
        if let Some(lease) = lease {
            md.insert(
                "containerd-lease",
                lease.parse().expect("lease id is ASCII"),
            );
        }
    }

    /// containerd's version, e.g. `1.6.20~ds1`.
    pub async fn version(&self) -> anyhow::Result<String> {
        let v = self
            .client
            .version()
            .version(())
            .await
            .context("asking containerd for its version")?
            .into_inner();
        Ok(v.version)
    }

    /// All containers the agent created (optionally only one pod's).
    pub async fn list_pod_containers(
        &self,
        pod_uid: Option<&str>,
    ) -> anyhow::Result<Vec<PodContainer>> {
        let filter = match pod_uid {
            Some(uid) => format!("labels.\"{LABEL_POD_UID}\"=={uid}"),
            None => format!("labels.\"{LABEL_POD_UID}\""),
        };
        let containers = self
            .client
            .containers()
            .list(request(
                &self.namespace,
                ListContainersRequest {
                    filters: vec![filter],
                },
            ))
            .await
            .context("listing containers")?
            .into_inner()
            .containers;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let l = &c.labels;
                Some(PodContainer {
                    pod_uid: l.get(LABEL_POD_UID)?.clone(),
                    name: l.get(LABEL_CONTAINER)?.clone(),
                    attempt: l.get(LABEL_ATTEMPT)?.parse().ok()?,
                    log_path: l.get(LABEL_LOG).cloned().unwrap_or_default(),
                    image: l.get(LABEL_IMAGE).cloned().unwrap_or_default(),
                    created_at: c.created_at.as_ref().and_then(timestamp),
                    id: c.id,
                })
            })
            .collect())
    }

    /// Create a container (record + writable snapshot over `parent_snapshot`, the committed
    /// top layer of `image`).
    pub async fn create_container(
        &self,
        id: &str,
        labels: HashMap<String, String>,
        image: &str,
        parent_snapshot: &str,
        spec: &Spec,
    ) -> anyhow::Result<()> {
        // A leftover snapshot from an interrupted create is replaced.
        let _ = self.remove_snapshot(id).await;
        self.client
            .snapshots()
            .prepare(request(
                &self.namespace,
                PrepareSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: id.to_string(),
                    parent: parent_snapshot.to_string(),
                    labels: HashMap::new(),
                },
            ))
            .await
            .context("preparing the container's snapshot")?;
        let spec_any = prost_types::Any {
            type_url: SPEC_TYPE_URL.into(),
            value: serde_json::to_vec(spec)?,
        };
        let container = Container {
            id: id.to_string(),
            labels,
            image: image.to_string(),
            runtime: Some(Runtime {
                name: RUNTIME.into(),
                options: None,
            }),
            spec: Some(spec_any),
            snapshotter: SNAPSHOTTER.into(),
            snapshot_key: id.to_string(),
            ..Default::default()
        };
        let created = self
            .client
            .containers()
            .create(request(
                &self.namespace,
                CreateContainerRequest {
                    container: Some(container),
                },
            ))
            .await;
        if let Err(e) = created {
            let _ = self.remove_snapshot(id).await;
            return Err(anyhow!(e).context("creating the container"));
        }
        Ok(())
    }

    /// Create and start the container's task with stdout and stderr going to `log_uri`
    /// (`file:///path`, or a `binary://` logger such as the kubelet's `cri_log`).
    pub async fn start_task(&self, id: &str, log_uri: &str) -> anyhow::Result<u32> {
        let mounts = self
            .client
            .snapshots()
            .mounts(request(
                &self.namespace,
                MountsRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: id.to_string(),
                },
            ))
            .await
            .context("getting the container's rootfs mounts")?
            .into_inner()
            .mounts;
        let uri = log_uri.to_string();
        self.client
            .tasks()
            .create(request(
                &self.namespace,
                CreateTaskRequest {
                    container_id: id.to_string(),
                    rootfs: mounts,
                    stdout: uri.clone(),
                    stderr: uri,
                    ..Default::default()
                },
            ))
            .await
            .context("creating the task")?;
        let started = self
            .client
            .tasks()
            .start(request(
                &self.namespace,
                StartRequest {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                },
            ))
            .await
            .context("starting the task")?;
        Ok(started.into_inner().pid)
    }

    pub async fn task_state(&self, id: &str) -> anyhow::Result<TaskState> {
        let res = self
            .client
            .tasks()
            .get(request(
                &self.namespace,
                GetRequest {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                },
            ))
            .await;
        let process = match res {
            Ok(r) => r.into_inner().process,
            Err(s) if s.code() == Code::NotFound => return Ok(TaskState::Missing),
            Err(s) => return Err(anyhow!(s).context("getting the task")),
        };
        let Some(p) = process else {
            return Ok(TaskState::Missing);
        };
        Ok(
            match ProcStatus::try_from(p.status).unwrap_or(ProcStatus::Unknown) {
                ProcStatus::Created => TaskState::Created,
                ProcStatus::Stopped => TaskState::Exited {
                    code: p.exit_status as i32,
                    at: p.exited_at.as_ref().and_then(timestamp),
                },
                _ => TaskState::Running { pid: p.pid },
            },
        )
    }

    /// Block until the task exits; returns its exit code.
    pub async fn wait_task(&self, id: &str) -> anyhow::Result<u32> {
        let r = self
            .client
            .tasks()
            .wait(request(
                &self.namespace,
                WaitRequest {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                },
            ))
            .await
            .context("waiting for the task")?;
        Ok(r.into_inner().exit_status)
    }

    pub async fn kill_task(&self, id: &str, signal: i32) -> anyhow::Result<()> {
        match self
            .client
            .tasks()
            .kill(request(
                &self.namespace,
                KillRequest {
                    container_id: id.to_string(),
                    exec_id: String::new(),
                    signal: signal as u32,
                    all: true,
                },
            ))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if matches!(s.code(), Code::NotFound | Code::FailedPrecondition) => Ok(()),
            Err(s) => Err(anyhow!(s).context("signalling the task")),
        }
    }

    /// Run `args` in the running container (its process spec: env, cwd, user) and return the
    /// exit code; `None` when it did not finish within `timeout` (it is then killed).
    pub async fn exec(
        &self,
        id: &str,
        exec_id: &str,
        args: &[String],
        timeout: std::time::Duration,
    ) -> anyhow::Result<Option<u32>> {
        let container = self
            .client
            .containers()
            .get(request(
                &self.namespace,
                GetContainerRequest { id: id.to_string() },
            ))
            .await
            .context("getting the container")?
            .into_inner()
            .container
            .ok_or_else(|| anyhow!("container {id} has no record"))?;
        let spec: serde_json::Value = serde_json::from_slice(
            &container
                .spec
                .ok_or_else(|| anyhow!("container {id} has no spec"))?
                .value,
        )?;
        let mut process = spec["process"].clone();
        process["args"] = serde_json::json!(args);
        process["terminal"] = serde_json::json!(false);
        let mut tasks = self.client.tasks();
        tasks
            .exec(request(
                &self.namespace,
                ExecProcessRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.to_string(),
                    spec: Some(prost_types::Any {
                        type_url: PROCESS_TYPE_URL.into(),
                        value: serde_json::to_vec(&process)?,
                    }),
                    ..Default::default()
                },
            ))
            .await
            .context("creating the exec process")?;
        let outcome = async {
            tasks
                .start(request(
                    &self.namespace,
                    StartRequest {
                        container_id: id.to_string(),
                        exec_id: exec_id.to_string(),
                    },
                ))
                .await
                .context("starting the exec process")?;
            let mut waiter = tasks.clone();
            let wait = waiter.wait(request(
                &self.namespace,
                WaitRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.to_string(),
                },
            ));
            match tokio::time::timeout(timeout, wait).await {
                Ok(r) => Ok(Some(
                    r.context("waiting for the exec process")?
                        .into_inner()
                        .exit_status,
                )),
                Err(_) => {
                    let _ = tasks
                        .kill(request(
                            &self.namespace,
                            KillRequest {
                                container_id: id.to_string(),
                                exec_id: exec_id.to_string(),
                                signal: libc::SIGKILL as u32,
                                all: false,
                            },
                        ))
                        .await;
                    let mut waiter = tasks.clone();
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        waiter.wait(request(
                            &self.namespace,
                            WaitRequest {
                                container_id: id.to_string(),
                                exec_id: exec_id.to_string(),
                            },
                        )),
                    )
                    .await;
                    Ok(None)
                }
            }
        }
        .await;
        let _ = tasks
            .delete_process(request(
                &self.namespace,
                DeleteProcessRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.to_string(),
                },
            ))
            .await;
        outcome
    }

    /// Delete the task (it must have exited), the container record and its snapshot.
    pub async fn remove_container(&self, id: &str) -> anyhow::Result<()> {
        match self
            .client
            .tasks()
            .delete(request(
                &self.namespace,
                DeleteTaskRequest {
                    container_id: id.to_string(),
                },
            ))
            .await
        {
            Ok(_) => {}
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => return Err(anyhow!(s).context("deleting the task")),
        }
        match self
            .client
            .containers()
            .delete(request(
                &self.namespace,
                DeleteContainerRequest { id: id.to_string() },
            ))
            .await
        {
            Ok(_) => {}
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => return Err(anyhow!(s).context("deleting the container")),
        }
        self.remove_snapshot(id).await
    }

    async fn remove_snapshot(&self, key: &str) -> anyhow::Result<()> {
        match self
            .client
            .snapshots()
            .remove(request(
                &self.namespace,
                RemoveSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: key.to_string(),
                },
            ))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(anyhow!(s).context("removing the snapshot")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kill_counts_are_read_from_v1_and_v2_files() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(parse_oom_kills(v1), Some(2));
        let v2 = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kills(v2), Some(1));
        assert_eq!(parse_oom_kills("oom 3\n"), None);
        assert_eq!(oom_kills("/skiff/no-such-pod/no-such-container"), None);
    }
}
