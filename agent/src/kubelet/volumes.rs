//! Pod volumes on the host: emptyDir, configMap, secret, downwardAPI and projected volumes
//! (the ServiceAccount token volume among them) under the pod directory (`volumes/<name>`),
//! hostPath volumes where they are, each bind-mounted into the containers that mount it.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret,
    ServiceAccountTokenProjection, Volume,
};
use kube::Api;

use super::spec::BindMount;
use super::tokens::{TokenKey, TokenManager};

/// Why a container's volumes could not be set up (the kubelet's `FailedMount`).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("volume {volume}: no key {key}")]
    MissingKey { volume: String, key: String },
    #[error("volume {volume}: invalid path {path}")]
    InvalidPath { volume: String, path: String },
    #[error("volume {volume}: unsupported downward API field {field}")]
    UnsupportedField { volume: String, field: String },
    #[error("volumeMount {0} names no volume")]
    NoSuchVolume(String),
    #[error("volume {0}: only emptyDir, hostPath, configMap, secret, downwardAPI and projected are supported")]
    Unsupported(String),
    #[error("ServiceAccount token for volume {volume}: {source}")]
    Token {
        volume: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What filling a pod's volumes needs.
pub struct VolumeSources<'a> {
    pub client: &'a kube::Client,
    pub tokens: &'a TokenManager,
}

/// One file of a volume, relative to the volume's directory.
#[derive(Debug, PartialEq, Eq)]
struct VolumeFile {
    path: String,
    bytes: Vec<u8>,
    mode: Option<i32>,
}

fn volumes_of(pod: &Pod) -> Vec<Volume> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default()
}

/// Whether the volume's files are written by the agent (and mounted read-only).
fn is_file_volume(v: &Volume) -> bool {
    v.config_map.is_some()
        || v.secret.is_some()
        || v.downward_api.is_some()
        || v.projected.is_some()
}

/// Write the files of the file volumes container `c` mounts under the pod directory
/// (`volumes/<name>/<path>`); they are bind-mounted read-only.
pub async fn write_file_volumes(
    sources: &VolumeSources<'_>,
    pod: &Pod,
    c: &Container,
    pod_dir: &Path,
) -> Result<(), VolumeError> {
    let volumes = volumes_of(pod);
    for m in c.volume_mounts.iter().flatten() {
        let Some(v) = volumes.iter().find(|v| v.name == m.name) else {
            continue;
        };
        let Some((files, default_mode)) = volume_files(sources, pod, v).await? else {
            continue;
        };
        let dir = pod_dir.join("volumes").join(&v.name);
        std::fs::create_dir_all(&dir)?;
        write_files(&dir, &files, default_mode)?;
    }
    Ok(())
}

/// Rewrite the ServiceAccount token files of a pod's projected volumes whose tokens were
/// replaced (called on every pass of the pod's worker; cheap while the tokens are fresh).
pub async fn refresh_tokens(
    sources: &VolumeSources<'_>,
    pod: &Pod,
    pod_dir: &Path,
) -> Result<(), VolumeError> {
    for v in volumes_of(pod) {
        let Some(projected) = &v.projected else {
            continue;
        };
        let dir = pod_dir.join("volumes").join(&v.name);
        if !dir.exists() {
            continue;
        }
        for source in projected.sources.iter().flatten() {
            if let Some(t) = &source.service_account_token {
                let file = token_file(sources, pod, &v.name, t).await?;
                let current = std::fs::read(dir.join(&file.path)).unwrap_or_default();
                if current != file.bytes {
                    write_files(&dir, &[file], projected.default_mode)?;
                }
            }
        }
    }
    Ok(())
}

async fn config_map_data(
    client: &kube::Client,
    ns: &str,
    name: &str,
    optional: bool,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, VolumeError> {
    match Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
    {
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
            Ok(Some(d))
        }
        None if optional => Ok(None),
        None => Err(VolumeError::ConfigMapNotFound(name.to_string())),
    }
}

async fn secret_data(
    client: &kube::Client,
    ns: &str,
    name: &str,
    optional: bool,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, VolumeError> {
    match Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
    {
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
            Ok(Some(d))
        }
        None if optional => Ok(None),
        None => Err(VolumeError::SecretNotFound(name.to_string())),
    }
}

/// The files of volume `v` and its default mode, if the agent writes its files.
async fn volume_files(
    sources: &VolumeSources<'_>,
    pod: &Pod,
    v: &Volume,
) -> Result<Option<(Vec<VolumeFile>, Option<i32>)>, VolumeError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let client = sources.client;
    if let Some(src) = &v.config_map {
        let data = config_map_data(client, ns, &src.name, src.optional.unwrap_or(false)).await?;
        let files = file_list(&v.name, data.as_ref(), src.items.as_deref())?;
        return Ok(Some((files, src.default_mode)));
    }
    if let Some(src) = &v.secret {
        let name = src.secret_name.clone().unwrap_or_default();
        let data = secret_data(client, ns, &name, src.optional.unwrap_or(false)).await?;
        let files = file_list(&v.name, data.as_ref(), src.items.as_deref())?;
        return Ok(Some((files, src.default_mode)));
    }
    if let Some(src) = &v.downward_api {
        let files = downward_files(&v.name, pod, src.items.as_deref().unwrap_or_default())?;
        return Ok(Some((files, src.default_mode)));
    }
    let Some(projected) = &v.projected else {
        return Ok(None);
    };
    let mut files = Vec::new();
    for source in projected.sources.iter().flatten() {
        if let Some(src) = &source.config_map {
            let data =
                config_map_data(client, ns, &src.name, src.optional.unwrap_or(false)).await?;
            files.extend(file_list(&v.name, data.as_ref(), src.items.as_deref())?);
        }
        if let Some(src) = &source.secret {
            let data = secret_data(client, ns, &src.name, src.optional.unwrap_or(false)).await?;
            files.extend(file_list(&v.name, data.as_ref(), src.items.as_deref())?);
        }
        if let Some(src) = &source.downward_api {
            files.extend(downward_files(
                &v.name,
                pod,
                src.items.as_deref().unwrap_or_default(),
            )?);
        }
        if let Some(t) = &source.service_account_token {
            files.push(token_file(sources, pod, &v.name, t).await?);
        }
    }
    Ok(Some((files, projected.default_mode)))
}

/// The token file of a `serviceAccountToken` projection, bound to the pod.
async fn token_file(
    sources: &VolumeSources<'_>,
    pod: &Pod,
    volume: &str,
    t: &ServiceAccountTokenProjection,
) -> Result<VolumeFile, VolumeError> {
    let key = TokenKey {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        service_account: pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        audience: t.audience.clone().unwrap_or_default(),
        expiration_seconds: t.expiration_seconds.unwrap_or(3600),
    };
    let token = sources
        .tokens
        .token(sources.client, &key)
        .await
        .map_err(|source| VolumeError::Token {
            volume: volume.to_string(),
            source,
        })?;
    let file = VolumeFile {
        path: t.path.clone(),
        bytes: token.into_bytes(),
        mode: None,
    };
    check_path(volume, &file.path)?;
    Ok(file)
}

/// A pod field as a downward API volume file holds it (labels and annotations: one
/// `key="value"` line each).
fn downward_value(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let lines = |map: &Option<BTreeMap<String, String>>| {
        map.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    };
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => lines(&meta.labels),
        "metadata.annotations" => lines(&meta.annotations),
        _ => return None,
    })
}

fn downward_files(
    volume: &str,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
) -> Result<Vec<VolumeFile>, VolumeError> {
    let mut out = Vec::new();
    for item in items {
        // resourceFieldRef (limits and requests) is not served yet: refused, not left empty.
        let field = item
            .field_ref
            .as_ref()
            .map(|f| f.field_path.clone())
            .unwrap_or_else(|| "resourceFieldRef".into());
        let value = downward_value(pod, &field).ok_or_else(|| VolumeError::UnsupportedField {
            volume: volume.to_string(),
            field,
        })?;
        check_path(volume, &item.path)?;
        out.push(VolumeFile {
            path: item.path.clone(),
            bytes: value.into_bytes(),
            mode: item.mode,
        });
    }
    Ok(out)
}

fn check_path(volume: &str, path: &str) -> Result<(), VolumeError> {
    if path.split('/').any(|p| p == "..") || path.starts_with('/') || path.is_empty() {
        return Err(VolumeError::InvalidPath {
            volume: volume.to_string(),
            path: path.to_string(),
        });
    }
    Ok(())
}

/// The files of a configMap or secret source: every key, or the `items` chosen (each must
/// exist); paths may not leave the volume. A missing optional source has none.
fn file_list(
    volume: &str,
    data: Option<&BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
) -> Result<Vec<VolumeFile>, VolumeError> {
    let Some(data) = data else {
        return Ok(Vec::new());
    };
    let list: Vec<VolumeFile> = match items {
        Some(items) => items
            .iter()
            .map(|i| {
                data.get(&i.key)
                    .map(|d| VolumeFile {
                        path: i.path.clone(),
                        bytes: d.clone(),
                        mode: i.mode,
                    })
                    .ok_or_else(|| VolumeError::MissingKey {
                        volume: volume.to_string(),
                        key: i.key.clone(),
                    })
            })
            .collect::<Result<_, _>>()?,
        None => data
            .iter()
            .map(|(k, d)| VolumeFile {
                path: k.clone(),
                bytes: d.clone(),
                mode: None,
            })
            .collect(),
    };
    for f in &list {
        check_path(volume, &f.path)?;
    }
    Ok(list)
}

/// Write the files into `dir`, each replaced atomically (write, chmod, rename), so a reader
/// never sees half a file (a token being refreshed included).
fn write_files(
    dir: &Path,
    files: &[VolumeFile],
    default_mode: Option<i32>,
) -> Result<(), VolumeError> {
    for f in files {
        let target = dir.join(&f.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = target.with_extension("skiff-tmp");
        std::fs::write(&tmp, &f.bytes)?;
        let m = f.mode.or(default_mode).unwrap_or(0o644) as u32;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(m))?;
        std::fs::rename(&tmp, &target)?;
    }
    Ok(())
}

/// Host directories for the container's volumeMounts (emptyDir, file and hostPath volumes).
pub fn volume_binds(
    pod: &Pod,
    c: &Container,
    pod_dir: &Path,
) -> Result<Vec<BindMount>, VolumeError> {
    let volumes = volumes_of(pod);
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let v = volumes
            .iter()
            .find(|v| v.name == m.name)
            .ok_or_else(|| VolumeError::NoSuchVolume(m.name.clone()))?;
        let config_volume = is_file_volume(v);
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
            return Err(VolumeError::Unsupported(v.name.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ])
    }

    fn items(items: &[(&str, &str)]) -> Vec<KeyToPath> {
        items
            .iter()
            .map(|(key, path)| KeyToPath {
                key: key.to_string(),
                path: path.to_string(),
                mode: None,
            })
            .collect()
    }

    #[test]
    fn config_volume_files_are_every_key_or_the_chosen_items() {
        let d = data();
        let names: Vec<String> = file_list("v", Some(&d), None)
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let list = file_list("v", Some(&d), Some(&items(&[("b", "sub/b.txt")]))).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].path, "sub/b.txt");
        assert_eq!(
            file_list("v", Some(&d), Some(&items(&[("c", "c")])))
                .unwrap_err()
                .to_string(),
            "volume v: no key c"
        );
        assert_eq!(
            file_list("v", Some(&d), Some(&items(&[("a", "../a")])))
                .unwrap_err()
                .to_string(),
            "volume v: invalid path ../a"
        );
        assert!(file_list("v", None, None).unwrap().is_empty());
    }

    #[test]
    fn downward_files_hold_metadata() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "dev", "labels": {"app": "web", "tier": "a"}},
        }))
        .unwrap();
        let item = |field: &str, path: &str| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                field_path: field.into(),
                api_version: None,
            }),
            ..Default::default()
        };
        let files = downward_files(
            "v",
            &pod,
            &[
                item("metadata.namespace", "namespace"),
                item("metadata.labels", "labels"),
            ],
        )
        .unwrap();
        assert_eq!(files[0].bytes, b"dev");
        assert_eq!(
            String::from_utf8(files[1].bytes.clone()).unwrap(),
            "app=\"web\"\ntier=\"a\"\n"
        );
        assert!(downward_files("v", &pod, &[item("spec.nodeName", "n")]).is_err());
    }
}
