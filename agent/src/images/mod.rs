//! Images: everything between an image reference and a snapshot a container can run on.
//!
//! - [`store`]: containerd's content, images, snapshots and diff services: blobs written under a
//!   lease, image records, layers unpacked into the snapshotter.
//! - [`layout`]: OCI image layout tarballs: import (`skiff-agent load-image`, the agent API) and
//!   writing a single-layer image; [`busybox`]: the image the tests and `make up` run.
//! - [`registry`]: pulls over the distribution API, and registry credentials.
//! - [`manager`]: the image manager the kubelet asks for an image: pull policy, the kubelet's
//!   typed image errors; [`pull_secrets`]: registry credentials from imagePullSecrets.
//!
//! Dependencies run one way: manager → {registry, layout} → store → [`crate::runtime`].

pub mod busybox;
pub mod layout;
pub mod manager;
pub mod pull_secrets;
pub mod registry;
pub mod store;

use oci_spec::image::{ImageConfiguration, ImageIndex};
use sha2::{Digest, Sha256};

pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// An image ready to run: its config and the committed snapshot of its top layer.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    pub name: String,
    /// Digest of the manifest the image record points at (the `imageID`).
    pub id: String,
    pub config: ImageConfiguration,
    /// Chain ID of the top layer: the parent snapshot for containers.
    pub chain_id: String,
}

/// `busybox` → `docker.io/library/busybox:latest`, as containerd names images.
pub fn normalize_reference(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_domain {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    if let Some(d) = digest {
        full.push('@');
        full.push_str(d);
    }
    full
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(data: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in Sha256::digest(data) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Chain IDs of a layer stack from its diff IDs (OCI image spec: `ChainID(L0|…|Ln)`).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256_digest(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The manifest of an index for this host (linux and [`oci_arch`]; entries without a platform
/// match anything).
pub fn choose_platform(
    index: &ImageIndex,
) -> Result<&oci_spec::image::Descriptor, NoPlatformManifest> {
    let arch = oci_arch();
    index
        .manifests()
        .iter()
        .find(|m| {
            m.platform().as_ref().is_none_or(|p| {
                p.architecture().to_string() == arch && p.os().to_string() == "linux"
            })
        })
        .ok_or(NoPlatformManifest { arch })
}

/// This host's architecture as OCI names it.
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// An image index without a manifest for this host.
#[derive(Debug, thiserror::Error)]
#[error("no manifest for linux/{arch} in the image index")]
pub struct NoPlatformManifest {
    pub arch: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalized_like_containerd() {
        assert_eq!(
            normalize_reference("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize_reference("busybox:1.36"),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(normalize_reference("me/app"), "docker.io/me/app:latest");
        assert_eq!(
            normalize_reference("127.0.0.1:5000/app"),
            "127.0.0.1:5000/app:latest"
        );
        assert_eq!(
            normalize_reference("skiff.test/busybox:v1"),
            "skiff.test/busybox:v1"
        );
        assert_eq!(
            normalize_reference("localhost/x@sha256:abc"),
            "localhost/x@sha256:abc"
        );
    }

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let ids = vec!["sha256:a".to_string(), "sha256:b".to_string()];
        let chains = chain_ids(&ids);
        assert_eq!(chains[0], "sha256:a");
        assert_eq!(chains[1], sha256_digest(b"sha256:a sha256:b"));
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
