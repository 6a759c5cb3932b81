//! Pulling images from OCI registries (the distribution API through `oci-client`) into
//! containerd.
//!
//! containerd 1.6 has no Transfer service, so pulling is client-side, as containerd's own Go
//! client does it: resolve the reference to a manifest (or an index, then this platform's
//! manifest), fetch the blobs the content store lacks, then hand over to the same
//! store/record/unpack steps the OCI-layout import uses ([`Containerd::put_manifest`],
//! [`Containerd::commit_image`]).
//!
//! Registries are reached over HTTPS unless listed with `--insecure-registry`, anonymously or
//! with the credentials of the pod's `imagePullSecrets` (Basic, which `oci-client` turns into a
//! bearer token when the registry asks for one, or a bearer token given directly).
//!
//! HTTPS trusts the system's roots plus, per registry, the CA certificates in
//! `<certs dir>/<host:port>/*.crt` (`--registry-certs-dir`, default `/etc/skiff/certs.d`): the
//! layout of docker's `/etc/docker/certs.d` and of containerd's `certs.d` without a
//! `hosts.toml`, so a CA an operator already placed for those works here too. A CA given for one
//! registry is trusted for that registry only.
//!
//! Every pull (and every digest check) gets a client of its own: `oci-client` keeps the first
//! credentials it is given per registry for the client's lifetime, so a shared client would pull
//! for one pod with another pod's imagePullSecret (or stay anonymous after an anonymous pull).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context};
use base64::Engine;
use containerd_client::types::Descriptor;
use futures::{StreamExt, TryStreamExt};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use oci_spec::image::ImageIndex;

use super::store::parse_manifest;
use super::{choose_platform, normalize_reference};
use super::{DOCKER_LIST, DOCKER_MANIFEST, MEDIA_INDEX, MEDIA_MANIFEST};
use crate::runtime::Containerd;

/// The client crate, for callers that push (the tests) or build credentials.
pub use oci_client;

/// Manifest media types the agent can run (and so asks registries for).
const ACCEPTED: &[&str] = &[MEDIA_MANIFEST, DOCKER_MANIFEST, MEDIA_INDEX, DOCKER_LIST];

/// Where the agent looks for registry CA certificates unless told otherwise.
pub const DEFAULT_CERTS_DIR: &str = "/etc/skiff/certs.d";

/// Registry access shared by all pod workers: which registries are plain HTTP, where their CA
/// certificates are, and one pull at a time per image.
pub struct Registry {
    insecure: Vec<String>,
    certs_dir: Option<PathBuf>,
    /// One lock per image name, so two pods starting with the same image pull it once (and
    /// do not race on the same content-store ingest refs).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Registry {
    /// `insecure` registries (`HOST:PORT`, as written in image references) are spoken to over
    /// plain HTTP; every other one over HTTPS with the system's roots and the CA certificates
    /// in `certs_dir/<HOST:PORT>/*.crt` (`None`: system roots only).
    pub fn new(insecure: &[String], certs_dir: Option<PathBuf>) -> Registry {
        // reqwest is built without a crypto provider of its own (see Cargo.toml): use ring, as
        // the kube client does. Installing fails only when one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Registry {
            insecure: insecure.to_vec(),
            certs_dir,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// A new client for operations on `registry` (`HOST[:PORT]` as in image references): plain
    /// HTTP when it is listed as insecure, else HTTPS trusting its CA certificates from the
    /// certs dir, read now so a CA placed while the agent runs is used from the next pull on.
    /// The tests push images with it.
    pub fn client_for(&self, registry: &str) -> anyhow::Result<oci_client::Client> {
        let protocol = if self.insecure.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(self.insecure.clone())
        };
        let roots = match &self.certs_dir {
            Some(dir) => ca_certificates(&dir.join(registry))?,
            None => Vec::new(),
        };
        let config = ClientConfig {
            protocol,
            extra_root_certificates: roots,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..Default::default()
        };
        // Not `Client::new`: on a bad certificate it falls back to a default client silently.
        oci_client::Client::try_from(config)
            .map_err(|e| anyhow!("setting up the client for {registry}: {}", describe(&e)))
    }

    /// A client for the registry of `reference`.
    fn client_of(&self, reference: &Reference) -> anyhow::Result<oci_client::Client> {
        self.client_for(reference.registry())
    }

    /// The error of a failed request to `reference`'s registry, as the registry (or the TLS
    /// handshake) put it; an untrusted certificate also says where its CA would be trusted.
    fn request_error(&self, reference: &Reference, e: &OciDistributionError) -> anyhow::Error {
        let text = describe(e);
        let tls = text.contains("certificate") || text.contains("UnknownIssuer");
        match &self.certs_dir {
            Some(dir) if tls && !self.insecure.iter().any(|h| h == reference.registry()) => {
                anyhow!(
                    "{text} (to trust the registry's CA, put it in {}/ca.crt)",
                    dir.join(reference.registry()).display()
                )
            }
            _ => anyhow!(text),
        }
    }

    /// The digest of the manifest (or index) `image` names at its registry now.
    pub async fn remote_digest(&self, image: &str, auth: &RegistryAuth) -> anyhow::Result<String> {
        let reference = parse(image)?;
        self.client_of(&reference)?
            .fetch_manifest_digest(&reference, auth)
            .await
            .map_err(|e| self.request_error(&reference, &e))
    }

    /// Pull `image` into containerd: blobs the content store lacks, the image record, and the
    /// unpacked layers. Returns the digest the image record points at.
    pub async fn pull(
        &self,
        cd: &Containerd,
        image: &str,
        auth: &RegistryAuth,
    ) -> anyhow::Result<String> {
        let name = normalize_reference(image);
        let reference = parse(&name)?;
        let lock = {
            let mut locks = self.locks.lock().expect("registry lock map");
            locks.entry(name.clone()).or_default().clone()
        };
        let _pulling = lock.lock().await;

        let client = self.client_of(&reference)?;
        let (top, top_digest) = client
            .pull_manifest_raw(&reference, auth, ACCEPTED)
            .await
            .map_err(|e| self.request_error(&reference, &e))?;
        let top_media = media_type(&top)?;
        let lease = cd.start_lease().await?;
        let remote = RemoteBlobs {
            client: &client,
            reference: &reference,
        };
        let result = async {
            let (manifest_digest, manifest_bytes) =
                if matches!(top_media.as_str(), MEDIA_INDEX | DOCKER_LIST) {
                    let index: ImageIndex =
                        serde_json::from_slice(&top).context("parsing the image index")?;
                    let chosen = choose_platform(&index)?.digest().to_string();
                    let (bytes, digest) = client
                        .pull_manifest_raw(
                            &reference.clone_with_digest(chosen.clone()),
                            auth,
                            ACCEPTED,
                        )
                        .await
                        .map_err(|e| self.request_error(&reference, &e))?;
                    (digest, bytes.to_vec())
                } else {
                    (top_digest.clone(), top.to_vec())
                };
            let manifest = parse_manifest(&manifest_bytes)?;
            for (digest, size) in cd.missing_blobs(&manifest).await? {
                remote.store(cd, &lease, &digest, size).await?;
            }
            cd.put_manifest(&lease, &manifest_digest, manifest_bytes, &manifest)
                .await?;
            if manifest_digest != top_digest {
                // Keep the index too (the record points at it, as with containerd's pull); its
                // label keeps the chosen manifest alive.
                cd.write_blob(
                    &lease,
                    top.to_vec(),
                    HashMap::from([(
                        "containerd.io/gc.ref.content.m.0".to_string(),
                        manifest_digest.clone(),
                    )]),
                )
                .await?;
            }
            let target = Descriptor {
                media_type: top_media.clone(),
                digest: top_digest.clone(),
                size: top.len() as i64,
                annotations: HashMap::new(),
            };
            cd.commit_image(&lease, &name, target, &manifest).await
        }
        .await;
        cd.end_lease(&lease).await;
        result.with_context(|| format!("storing {name} in containerd"))?;
        Ok(top_digest)
    }
}

/// Blobs fetched from the registry the image comes from.
struct RemoteBlobs<'a> {
    client: &'a oci_client::Client,
    reference: &'a Reference,
}

impl RemoteBlobs<'_> {
    async fn store(
        &self,
        cd: &Containerd,
        lease: &str,
        digest: &str,
        size: i64,
    ) -> anyhow::Result<()> {
        // Streamed from the registry into containerd: a layer is never held whole in memory.
        // oci-client checks the digest as the last piece arrives; containerd again at commit.
        let download = self
            .client
            .pull_blob_stream(self.reference, digest)
            .await
            .map_err(|e| anyhow!("fetching blob {digest}: {}", describe(&e)))?;
        let pieces = download
            .stream
            .map_ok(|b| b.to_vec())
            .map_err(|e| e.to_string())
            .boxed();
        cd.write_blob_stream(lease, digest, size, pieces).await
    }
}

/// The CA certificates (`*.crt`, PEM) in a registry's certs directory, in name order; none when
/// the directory does not exist.
fn ca_certificates(dir: &Path) -> anyhow::Result<Vec<Certificate>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            Ok(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            })
        })
        .collect()
}

fn parse(image: &str) -> anyhow::Result<Reference> {
    image
        .parse()
        .map_err(|e| anyhow!("invalid image reference {image:?}: {e}"))
}

/// A manifest's media type: its `mediaType` field, else what its shape says (the field is
/// optional in OCI manifests and indexes).
fn media_type(bytes: &[u8]) -> anyhow::Result<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).context("parsing the manifest")?;
    if let Some(m) = v["mediaType"].as_str().filter(|m| !m.is_empty()) {
        return Ok(m.to_string());
    }
    Ok(if v.get("manifests").is_some() {
        MEDIA_INDEX
    } else {
        MEDIA_MANIFEST
    }
    .to_string())
}

/// A registry error as the registry said it (`MANIFEST_UNKNOWN: manifest unknown`), or the
/// transport error with its causes (`connection refused`, TLS failures, ...).
pub fn describe(e: &OciDistributionError) -> String {
    match e {
        OciDistributionError::RegistryError { envelope, url } => {
            let errors: Vec<String> = envelope
                .errors
                .iter()
                .map(|x| {
                    let code = serde_json::to_value(&x.code)
                        .ok()
                        .and_then(|c| c.as_str().map(str::to_string))
                        .unwrap_or_default();
                    format!("{code}: {}", x.message)
                })
                .collect();
            format!("{} ({url})", errors.join("; "))
        }
        OciDistributionError::ServerError { code, url, message } => {
            format!("{url}: HTTP {code}: {}", message.trim())
        }
        // oci-client keeps only the status of a 401, not the registry's error body.
        OciDistributionError::UnauthorizedError { url } => {
            format!("unexpected status from {url}: 401 Unauthorized")
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                let s_text = s.to_string();
                if !text.contains(&s_text) {
                    text.push_str(": ");
                    text.push_str(&s_text);
                }
                source = s.source();
            }
            text
        }
    }
}

/// Credentials for `registry` from `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`) or
/// legacy `.dockercfg` secret data, as the kubelet reads imagePullSecrets; anonymous when none
/// match. Keys may be a bare host (`127.0.0.1:5000`) or a URL (`https://host/v1/`).
pub fn auth_for<'a>(
    secrets: impl IntoIterator<Item = &'a std::collections::BTreeMap<String, Vec<u8>>>,
    registry: &str,
) -> RegistryAuth {
    for data in secrets {
        let auths = if let Some(raw) = data.get(".dockerconfigjson") {
            serde_json::from_slice::<serde_json::Value>(raw)
                .ok()
                .and_then(|v| v.get("auths").cloned())
        } else {
            data.get(".dockercfg")
                .and_then(|raw| serde_json::from_slice::<serde_json::Value>(raw).ok())
        };
        let Some(serde_json::Value::Object(auths)) = auths else {
            continue;
        };
        for (key, entry) in auths {
            if registry_host(&key) != registry_host(registry) {
                continue;
            }
            if let Some(token) = entry["registrytoken"].as_str().filter(|t| !t.is_empty()) {
                return RegistryAuth::Bearer(token.to_string());
            }
            let (mut user, mut pass) = (
                entry["username"].as_str().unwrap_or_default().to_string(),
                entry["password"].as_str().unwrap_or_default().to_string(),
            );
            if let Some(encoded) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                if let Some((u, p)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                    (user, pass) = (u.to_string(), p.to_string());
                }
            }
            if !user.is_empty() {
                return RegistryAuth::Basic(user, pass);
            }
        }
    }
    RegistryAuth::Anonymous
}

/// The registry an image reference names (`busybox` → `docker.io`).
pub fn registry_of(image: &str) -> String {
    parse(image)
        .map(|r| r.registry().to_string())
        .unwrap_or_default()
}

/// `https://index.docker.io/v1/` → `docker.io`; `127.0.0.1:5000` stays.
fn registry_host(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn secret(key: &str, json: serde_json::Value) -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([(key.to_string(), serde_json::to_vec(&json).unwrap())])
    }

    #[test]
    fn pull_secrets_give_basic_or_bearer_credentials_for_their_registry_only() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let a = secret(
            ".dockerconfigjson",
            serde_json::json!({"auths": {"https://127.0.0.1:5000/v1/": {"auth": encoded}}}),
        );
        let b = secret(
            ".dockercfg",
            serde_json::json!({"index.docker.io": {"username": "bob", "password": "pw"}}),
        );
        let c = secret(
            ".dockerconfigjson",
            serde_json::json!({"auths": {"ghcr.example": {"registrytoken": "tok"}}}),
        );
        let all = [a, b, c];
        assert!(matches!(
            auth_for(&all, "127.0.0.1:5000"),
            RegistryAuth::Basic(u, p) if u == "alice" && p == "s3cret"
        ));
        assert!(matches!(
            auth_for(&all, "docker.io"),
            RegistryAuth::Basic(u, p) if u == "bob" && p == "pw"
        ));
        assert!(matches!(
            auth_for(&all, "ghcr.example"),
            RegistryAuth::Bearer(t) if t == "tok"
        ));
        assert!(matches!(
            auth_for(&all, "quay.example"),
            RegistryAuth::Anonymous
        ));
    }

    #[test]
    fn media_type_falls_back_to_the_manifest_shape() {
        assert_eq!(
            media_type(br#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
            MEDIA_INDEX
        );
        assert_eq!(
            media_type(br#"{"schemaVersion":2,"config":{},"layers":[]}"#).unwrap(),
            MEDIA_MANIFEST
        );
        assert_eq!(
            media_type(format!(r#"{{"mediaType":"{DOCKER_MANIFEST}"}}"#).as_bytes()).unwrap(),
            DOCKER_MANIFEST
        );
    }
}
