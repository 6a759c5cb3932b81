//! ServiceAccount admission, as Kubernetes' plugin: a new pod runs as `default` unless it names
//! a ServiceAccount, which must exist; unless `automountServiceAccountToken` says no (on the
//! pod, else on the ServiceAccount), the pod gets a projected `kube-api-access-*` volume with
//! a token bound to it, the cluster CA (`kube-root-ca.crt`) and its namespace, mounted at
//! [`MOUNT_PATH`] in every container. The agent fills the volume and keeps the token fresh.

use futures::future::BoxFuture;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::object;
use crate::registry::core::{pod, serviceaccount};
use crate::registry::{Admission, Registry};
use crate::resource::ResourceInfo;

pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The ConfigMap every namespace has with the cluster CA (published by the controllers).
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The lifetime the volume asks for: an hour, plus seven seconds as Kubernetes does so the
/// value is recognisable.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

pub struct ServiceAccountAdmission;

/// The projected volume that carries a pod's API credentials.
pub fn api_access_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

/// Set the pod's ServiceAccount name (and the deprecated `serviceAccount` alias) and return it.
fn service_account_name(pod: &mut Value) -> String {
    let spec = &mut pod["spec"];
    let name = spec["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .or_else(|| spec["serviceAccount"].as_str().filter(|s| !s.is_empty()))
        .unwrap_or(serviceaccount::DEFAULT)
        .to_string();
    spec["serviceAccountName"] = json!(name);
    spec["serviceAccount"] = json!(name);
    name
}

/// Add the API access volume and mount it in every container that has nothing at
/// [`MOUNT_PATH`] yet.
pub fn mount_api_access(pod: &mut Value, volume_name: &str) {
    let spec = &mut pod["spec"];
    if spec["volumes"].as_array().into_iter().flatten().any(|v| {
        v["name"]
            .as_str()
            .is_some_and(|n| n.starts_with(VOLUME_PREFIX))
    }) {
        return;
    }
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_array_mut().into_iter().flatten() {
            let mounts = &mut c["volumeMounts"];
            if mounts
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"].as_str() == Some(MOUNT_PATH))
            {
                continue;
            }
            let mount = json!({"name": volume_name, "readOnly": true, "mountPath": MOUNT_PATH});
            match mounts.as_array_mut() {
                Some(list) => list.push(mount),
                None => *mounts = json!([mount]),
            }
            mounted = true;
        }
    }
    if mounted {
        let volume = api_access_volume(volume_name);
        match spec["volumes"].as_array_mut() {
            Some(list) => list.push(volume),
            None => spec["volumes"] = json!([volume]),
        }
    }
}

impl Admission for ServiceAccountAdmission {
    fn mutate_create<'a>(
        &'a self,
        registry: &'a Registry,
        info: &'static ResourceInfo,
        ns: &'a str,
        obj: &'a mut Value,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            if !std::ptr::eq(info, &pod::INFO) {
                return Ok(());
            }
            let name = service_account_name(obj);
            let sa = registry
                .of(&serviceaccount::INFO)
                .storage
                .get_cached_or_stored(&serviceaccount::INFO.key(Some(ns), &name))
                .await?;
            // A namespace's `default` ServiceAccount is created by a controller a moment after
            // the namespace; pods are not refused in that moment (the agent waits for it
            // before it can mount the token). A named one must exist, as in Kubernetes.
            if sa.is_none() && name != serviceaccount::DEFAULT {
                return Err(ApiError::forbidden(
                    info,
                    object::name(obj),
                    &format!(
                        "error looking up service account {ns}/{name}: serviceaccount \"{name}\" not found"
                    ),
                ));
            }
            let automount = obj["spec"]["automountServiceAccountToken"]
                .as_bool()
                .unwrap_or_else(|| sa.as_ref().is_none_or(serviceaccount::automounts_token));
            if automount {
                let volume = format!("{VOLUME_PREFIX}{}", object::random_suffix());
                mount_api_access(obj, &volume);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_mounts_the_volume_once() {
        let mut pod = json!({"spec": {
            "serviceAccount": "builder",
            "initContainers": [{"name": "init"}],
            "containers": [
                {"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "own", "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }});
        assert_eq!(service_account_name(&mut pod), "builder");
        assert_eq!(pod["spec"]["serviceAccountName"], "builder");
        mount_api_access(&mut pod, "kube-api-access-abcde");
        let spec = &pod["spec"];
        assert_eq!(spec["volumes"].as_array().unwrap().len(), 2);
        assert_eq!(
            spec["volumes"][1]["projected"]["sources"][0]["serviceAccountToken"]["path"],
            "token"
        );
        assert_eq!(
            spec["initContainers"][0]["volumeMounts"][0]["mountPath"],
            MOUNT_PATH
        );
        assert_eq!(spec["containers"][0]["volumeMounts"][1]["readOnly"], true);
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let before = pod.clone();
        mount_api_access(&mut pod, "kube-api-access-fghij");
        assert_eq!(pod, before, "a second pass changes nothing");
    }

    #[test]
    fn pods_run_as_default_unless_named() {
        let mut pod = json!({"spec": {"containers": []}});
        assert_eq!(service_account_name(&mut pod), "default");
        assert_eq!(pod["spec"]["serviceAccount"], "default");
    }
}
