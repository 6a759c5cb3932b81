//! Pod volumes on the host: emptyDir and configMap/secret volumes under the pod directory
//! (`volumes/<name>`), hostPath volumes where they are, each bind-mounted into the containers
//! that mount it.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret, Volume};
use kube::Api;

use super::spec::BindMount;

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
    #[error("volumeMount {0} names no volume")]
    NoSuchVolume(String),
    #[error("volume {0}: only emptyDir, hostPath, configMap and secret are supported")]
    Unsupported(String),
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The files of a configMap or secret volume: key → bytes (`None` when an optional source is
/// missing), its `items` and its default mode.
struct ConfigFiles {
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<Vec<KeyToPath>>,
    default_mode: Option<i32>,
}

fn volumes_of(pod: &Pod) -> Vec<Volume> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default()
}

/// Write the files of the configMap and secret volumes container `c` mounts under the pod
/// directory (`volumes/<name>/<key>`); they are bind-mounted read-only.
pub async fn write_config_volumes(
    client: &kube::Client,
    pod: &Pod,
    c: &Container,
    pod_dir: &Path,
) -> Result<(), VolumeError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let volumes = volumes_of(pod);
    for m in c.volume_mounts.iter().flatten() {
        let Some(v) = volumes.iter().find(|v| v.name == m.name) else {
            continue;
        };
        let Some(files) = config_files(client, ns, v).await? else {
            continue;
        };
        let dir = pod_dir.join("volumes").join(&v.name);
        std::fs::create_dir_all(&dir)?;
        write_files(&dir, &v.name, &files)?;
    }
    Ok(())
}

/// The files of volume `v` if it is a configMap or secret volume.
async fn config_files(
    client: &kube::Client,
    ns: &str,
    v: &Volume,
) -> Result<Option<ConfigFiles>, VolumeError> {
    if let Some(src) = &v.config_map {
        let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get_opt(&src.name)
            .await?;
        let data = match cm {
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
                Some(d)
            }
            None if src.optional.unwrap_or(false) => None,
            None => return Err(VolumeError::ConfigMapNotFound(src.name.clone())),
        };
        return Ok(Some(ConfigFiles {
            data,
            items: src.items.clone(),
            default_mode: src.default_mode,
        }));
    }
    if let Some(src) = &v.secret {
        let name = src.secret_name.clone().unwrap_or_default();
        let secret = Api::<Secret>::namespaced(client.clone(), ns)
            .get_opt(&name)
            .await?;
        let data = match secret {
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
                Some(d)
            }
            None if src.optional.unwrap_or(false) => None,
            None => return Err(VolumeError::SecretNotFound(name)),
        };
        return Ok(Some(ConfigFiles {
            data,
            items: src.items.clone(),
            default_mode: src.default_mode,
        }));
    }
    Ok(None)
}

/// One file of a configMap or secret volume.
#[derive(Debug)]
struct ConfigFile<'a> {
    /// Relative to the volume's directory.
    path: String,
    bytes: &'a [u8],
    mode: Option<i32>,
}

/// The files of a configMap or secret volume: every key, or the `items` chosen (each must
/// exist); paths may not leave the volume.
fn file_list<'a>(
    volume: &str,
    files: &'a ConfigFiles,
    empty: &'a BTreeMap<String, Vec<u8>>,
) -> Result<Vec<ConfigFile<'a>>, VolumeError> {
    let data = files.data.as_ref().unwrap_or(empty);
    let list: Vec<ConfigFile<'a>> = match &files.items {
        Some(items) => items
            .iter()
            .map(|i| {
                data.get(&i.key)
                    .map(|d| ConfigFile {
                        path: i.path.clone(),
                        bytes: d,
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
            .map(|(k, d)| ConfigFile {
                path: k.clone(),
                bytes: d,
                mode: None,
            })
            .collect(),
    };
    for f in &list {
        if f.path.split('/').any(|p| p == "..") || f.path.starts_with('/') {
            return Err(VolumeError::InvalidPath {
                volume: volume.to_string(),
                path: f.path.clone(),
            });
        }
    }
    Ok(list)
}

/// Write the files into `dir`, each replaced atomically (write, chmod, rename).
fn write_files(dir: &Path, volume: &str, files: &ConfigFiles) -> Result<(), VolumeError> {
    let empty = BTreeMap::new();
    for f in file_list(volume, files, &empty)? {
        let target = dir.join(&f.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = target.with_extension("skiff-tmp");
        std::fs::write(&tmp, f.bytes)?;
        let m = f.mode.or(files.default_mode).unwrap_or(0o644) as u32;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(m))?;
        std::fs::rename(&tmp, &target)?;
    }
    Ok(())
}

/// Host directories for the container's volumeMounts (emptyDir, configMap, secret and
/// hostPath volumes).
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
        let config_volume = v.config_map.is_some() || v.secret.is_some();
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

    fn files(items: Option<Vec<(&str, &str)>>) -> ConfigFiles {
        ConfigFiles {
            data: Some(BTreeMap::from([
                ("a".to_string(), b"1".to_vec()),
                ("b".to_string(), b"2".to_vec()),
            ])),
            items: items.map(|items| {
                items
                    .into_iter()
                    .map(|(key, path)| KeyToPath {
                        key: key.into(),
                        path: path.into(),
                        mode: None,
                    })
                    .collect()
            }),
            default_mode: None,
        }
    }

    #[test]
    fn config_volume_files_are_every_key_or_the_chosen_items() {
        let empty = BTreeMap::new();
        let all = files(None);
        let names: Vec<String> = file_list("v", &all, &empty)
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let chosen = files(Some(vec![("b", "sub/b.txt")]));
        let list = file_list("v", &chosen, &empty).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].path, "sub/b.txt");
        let missing = files(Some(vec![("c", "c")]));
        assert_eq!(
            file_list("v", &missing, &empty).unwrap_err().to_string(),
            "volume v: no key c"
        );
        let escaping = files(Some(vec![("a", "../a")]));
        assert_eq!(
            file_list("v", &escaping, &empty).unwrap_err().to_string(),
            "volume v: invalid path ../a"
        );
    }
}
