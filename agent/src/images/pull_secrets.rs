//! Registry credentials from a pod's imagePullSecrets, read when a pull needs them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use oci_client::secrets::RegistryAuth;
use tracing::warn;

use super::registry::{auth_for, registry_of};

/// The imagePullSecrets of one pod.
pub struct PullSecrets<'a> {
    client: &'a kube::Client,
    namespace: &'a str,
    names: Vec<String>,
    /// `namespace/name` of the pod, for logs.
    pub pod: String,
}

impl<'a> PullSecrets<'a> {
    pub fn of(client: &'a kube::Client, pod: &'a Pod) -> PullSecrets<'a> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let names = pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
            .into_iter()
            .flatten()
            .map(|r| r.name.clone())
            .collect();
        PullSecrets {
            client,
            namespace,
            names,
            pod: format!(
                "{namespace}/{}",
                pod.metadata.name.as_deref().unwrap_or_default()
            ),
        }
    }

    /// Credentials for `image`. Like the kubelet, a secret that cannot be read is logged and
    /// the pull goes on without it.
    pub async fn auth_for(&self, image: &str) -> RegistryAuth {
        let api = Api::<Secret>::namespaced(self.client.clone(), self.namespace);
        let mut datas = Vec::new();
        for name in &self.names {
            match api.get_opt(name).await {
                Ok(Some(secret)) => datas.push(
                    secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect::<BTreeMap<_, _>>(),
                ),
                Ok(None) => warn!(pod = %self.pod, secret = %name, "imagePullSecret not found"),
                Err(e) => {
                    warn!(pod = %self.pod, secret = %name, error = %e, "reading imagePullSecret")
                }
            }
        }
        auth_for(&datas, &registry_of(image))
    }
}
