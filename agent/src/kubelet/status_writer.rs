//! Writing a pod's status (the kubelet's status manager): a merge patch of `status`, skipped
//! when the apiserver or the last write already holds the same status.

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Api, Patch, PatchParams};
use tracing::debug;

/// Why a status could not be written.
#[derive(Debug, thiserror::Error)]
pub enum StatusWriteError {
    #[error("encoding the pod status: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("writing pod status: {0}")]
    Api(#[from] kube::Error),
}

/// The status last written for one pod.
#[derive(Default)]
pub struct StatusWriter {
    last: Option<serde_json::Value>,
}

impl StatusWriter {
    /// Write `status` for `pod` unless nothing changed; a pod that is gone is not an error.
    pub async fn write(
        &mut self,
        client: &kube::Client,
        pod: &Pod,
        status: &PodStatus,
    ) -> Result<(), StatusWriteError> {
        let value = serde_json::to_value(status)?;
        let current = pod.status.as_ref().map(serde_json::to_value).transpose()?;
        if self.last.as_ref() == Some(&value) || current.as_ref() == Some(&value) {
            return Ok(());
        }
        let api = Api::<Pod>::namespaced(
            client.clone(),
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
                debug!(pod = %name, phase = ?status.phase, "status written");
                self.last = Some(value);
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
