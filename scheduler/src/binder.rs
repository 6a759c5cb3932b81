//! Writes to the apiserver: bindings and the PodScheduled=False condition (FailedScheduling
//! events go through skiff-component's recorder). Thin async shells over kube-rs calls; decisions are made elsewhere.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The pod is gone, was bound by someone else, or is being deleted: do not retry.
    #[error("binding refused: {0}")]
    Refused(String),
    /// Anything else (node gone, apiserver unavailable): retry after back-off.
    #[error("binding failed: {0}")]
    Failed(#[from] kube::Error),
}

/// POST `pods/{name}/binding`.
pub async fn bind(client: &Client, pod: &Pod, node: &str) -> Result<(), BindError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    match api
        .create_subresource::<_, serde_json::Value>(
            "binding",
            name,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
            Err(BindError::Refused(s.message.clone()))
        }
        Err(e) => Err(BindError::Failed(e)),
    }
}

/// Whether the pod already carries exactly this PodScheduled=False condition.
pub fn has_unschedulable_condition(pod: &Pod, message: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
        .is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message)
        })
}

/// Set PodScheduled=False/Unschedulable with `message` through `pods/status`.
pub async fn set_unschedulable(
    client: &Client,
    pod: &Pod,
    message: &str,
) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
        "lastProbeTime": null, "lastTransitionTime": Timestamp::now().to_string(),
    }]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_condition_is_recognised() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "web"}, "status": {"conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "m"}]}})).unwrap();
        assert!(has_unschedulable_condition(&pod, "m"));
        assert!(!has_unschedulable_condition(&pod, "other"));
    }
}
