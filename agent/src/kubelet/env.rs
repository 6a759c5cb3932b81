//! Values of a container's env entries that reference ConfigMaps and Secrets
//! (`valueFrom.configMapKeyRef`, `valueFrom.secretKeyRef`); [`super::spec::environment`]
//! builds the whole environment from them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;

/// Why a container's environment could not be resolved (`CreateContainerConfigError`).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("configmap {namespace}/{name} key {key} not found")]
    ConfigMapKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("secret {namespace}/{name} key {key} not found")]
    SecretKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    #[error(transparent)]
    Api(#[from] kube::Error),
}

/// The referenced values by env name; optional references that do not resolve are left out.
pub async fn resolve_refs(
    client: &kube::Client,
    pod: &Pod,
    c: &Container,
) -> Result<BTreeMap<String, String>, EnvError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = BTreeMap::new();
    for env in c.env.iter().flatten() {
        let Some(from) = &env.value_from else {
            continue;
        };
        if let Some(r) = &from.config_map_key_ref {
            let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
                .get_opt(&r.name)
                .await?;
            match cm.and_then(|cm| cm.data.and_then(|d| d.get(&r.key).cloned())) {
                Some(v) => {
                    out.insert(env.name.clone(), v);
                }
                None if r.optional.unwrap_or(false) => {}
                None => {
                    return Err(EnvError::ConfigMapKeyNotFound {
                        namespace: ns.to_string(),
                        name: r.name.clone(),
                        key: r.key.clone(),
                    })
                }
            }
        } else if let Some(r) = &from.secret_key_ref {
            let s = Api::<Secret>::namespaced(client.clone(), ns)
                .get_opt(&r.name)
                .await?;
            match s.and_then(|s| s.data.and_then(|d| d.get(&r.key).cloned())) {
                Some(v) => {
                    out.insert(env.name.clone(), String::from_utf8_lossy(&v.0).into_owned());
                }
                None if r.optional.unwrap_or(false) => {}
                None => {
                    return Err(EnvError::SecretKeyNotFound {
                        namespace: ns.to_string(),
                        name: r.name.clone(),
                        key: r.key.clone(),
                    })
                }
            }
        }
    }
    Ok(out)
}
