//! The kubelet's Events about a pod's containers, with the reasons the kubelet gives them
//! (what `kubectl describe pod` lists): Pulling, Pulled, Created, Started, Killing, BackOff,
//! Unhealthy, FailedMount. `Scheduled` is the scheduler's. They go through the one aggregating
//! [`Recorder`] of skiff-component, reported as component `kubelet` on host `<node>`.

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use skiff_component::{object_ref, EventKind, Recorder};

use crate::images::manager::{PullEvents, PullProgress};

pub const PULLING: &str = "Pulling";
pub const PULLED: &str = "Pulled";
pub const CREATED: &str = "Created";
pub const STARTED: &str = "Started";
pub const KILLING: &str = "Killing";
pub const BACK_OFF: &str = "BackOff";
pub const UNHEALTHY: &str = "Unhealthy";
pub const FAILED_MOUNT: &str = "FailedMount";

/// `spec.containers{name}` or `spec.initContainers{name}`: the `involvedObject.fieldPath` the
/// kubelet gives a container's Events.
pub fn container_field_path(name: &str, init: bool) -> String {
    let list = if init { "initContainers" } else { "containers" };
    format!("spec.{list}{{{name}}}")
}

/// Whether `name` is one of the pod's init containers.
pub fn is_init_container(pod: &Pod, name: &str) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.name == name))
}

/// The Events of one container of a pod.
#[derive(Clone)]
pub struct ContainerEvents {
    recorder: Recorder,
    regarding: ObjectReference,
}

impl ContainerEvents {
    pub fn new(recorder: &Recorder, pod: &Pod, container: &str, init: bool) -> ContainerEvents {
        let mut regarding = object_ref(pod);
        regarding.field_path = Some(container_field_path(container, init));
        ContainerEvents {
            recorder: recorder.clone(),
            regarding,
        }
    }

    pub async fn normal(&self, reason: &str, message: &str) {
        self.recorder
            .publish(&self.regarding, EventKind::Normal, reason, message)
            .await
    }

    pub async fn warning(&self, reason: &str, message: &str) {
        self.recorder
            .publish(&self.regarding, EventKind::Warning, reason, message)
            .await
    }
}

/// The message of a pull progress Event, as the kubelet words it.
pub fn pull_message(progress: &PullProgress) -> String {
    match progress {
        PullProgress::Pulling { image } => format!("Pulling image \"{image}\""),
        PullProgress::Pulled { image, took } => format!(
            "Successfully pulled image \"{image}\" in {:.3}s",
            took.as_secs_f64()
        ),
        PullProgress::AlreadyPresent { image } => {
            format!("Container image \"{image}\" already present on machine")
        }
    }
}

impl PullEvents for ContainerEvents {
    fn report(&self, progress: PullProgress) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let reason = match progress {
                PullProgress::Pulling { .. } => PULLING,
                PullProgress::Pulled { .. } | PullProgress::AlreadyPresent { .. } => PULLED,
            };
            self.normal(reason, &pull_message(&progress)).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn containers_are_named_and_pulls_worded_as_the_kubelet_does() {
        assert_eq!(container_field_path("web", false), "spec.containers{web}");
        assert_eq!(
            container_field_path("init", true),
            "spec.initContainers{init}"
        );
        assert_eq!(
            pull_message(&PullProgress::AlreadyPresent {
                image: "a:1".into()
            }),
            "Container image \"a:1\" already present on machine"
        );
        assert_eq!(
            pull_message(&PullProgress::Pulled {
                image: "a:1".into(),
                took: Duration::from_millis(1500)
            }),
            "Successfully pulled image \"a:1\" in 1.500s"
        );
        assert_eq!(
            pull_message(&PullProgress::Pulling {
                image: "a:1".into()
            }),
            "Pulling image \"a:1\""
        );
    }
}
