//! The pods bound to this node: one [`pod_worker`] per pod UID, started, fed and stopped from a
//! watch on `spec.nodeName=<node>`, and the removal of containers and sandboxes of pods that no
//! longer exist.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{watcher, WatchStreamExt};
use tracing::{info, warn};

use super::{pod_worker, Shared};

/// The pod workers by pod UID; aborted on drop (their containers keep running).
#[derive(Default)]
pub struct Workers(HashMap<String, pod_worker::WorkerHandle>);

/// Watch the pods bound to this node and keep one worker per pod UID.
pub async fn watch_pods(shared: Arc<Shared>, workers: &mut Workers) -> anyhow::Result<()> {
    let api = kube::Api::<Pod>::all(shared.client.clone());
    let cfg =
        watcher::Config::default().fields(&format!("spec.nodeName={}", shared.config.node_name));
    let mut stream = watcher(api, cfg).default_backoff().boxed();
    let mut seen_in_init: HashSet<String> = HashSet::new();
    let workers = &mut workers.0;
    while let Some(event) = stream.try_next().await? {
        match event {
            watcher::Event::Init => seen_in_init.clear(),
            watcher::Event::InitApply(pod) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    seen_in_init.insert(uid);
                }
                apply(&shared, workers, pod);
            }
            watcher::Event::Apply(pod) => apply(&shared, workers, pod),
            watcher::Event::Delete(pod) => {
                if let Some(w) = pod.metadata.uid.as_ref().and_then(|u| workers.remove(u)) {
                    let _ = w.pod.send(None);
                }
            }
            watcher::Event::InitDone => {
                // Pods that vanished while we were not watching.
                let gone: Vec<String> = workers
                    .keys()
                    .filter(|u| !seen_in_init.contains(*u))
                    .cloned()
                    .collect();
                for uid in gone {
                    if let Some(w) = workers.remove(&uid) {
                        let _ = w.pod.send(None);
                    }
                }
                // Inline, before any later event can start new containers.
                if let Err(e) = cleanup_orphans(&shared, &seen_in_init).await {
                    warn!(error = %format!("{e:#}"), "cleaning up orphaned containers");
                }
            }
        }
        workers.retain(|_, w| !w.task.is_finished());
    }
    Ok(())
}

fn apply(shared: &Arc<Shared>, workers: &mut HashMap<String, pod_worker::WorkerHandle>, pod: Pod) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    match workers.get(&uid) {
        Some(w) if !w.task.is_finished() => {
            let _ = w.pod.send(Some(pod));
        }
        _ => {
            workers.insert(uid, pod_worker::spawn(shared.clone(), pod));
        }
    }
}

/// Containers labelled with a pod UID that no longer exists are stopped and removed.
async fn cleanup_orphans(shared: &Shared, known: &HashSet<String>) -> anyhow::Result<()> {
    let all = shared.containerd.list_pod_containers(None).await?;
    let orphans: HashSet<String> = all
        .into_iter()
        .map(|c| c.pod_uid)
        .filter(|u| !known.contains(u))
        .collect();
    for uid in orphans {
        info!(pod_uid = %uid, "removing containers of a pod that no longer exists");
        pod_worker::stop_pod_containers(shared, &uid, None, Duration::from_secs(10)).await?;
    }
    for uid in shared.network.sandboxes() {
        if !known.contains(&uid) {
            info!(pod_uid = %uid, "removing the sandbox of a pod that no longer exists");
            shared.network.remove(&uid).await?;
        }
    }
    Ok(())
}
