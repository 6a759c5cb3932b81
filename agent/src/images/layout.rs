//! OCI image layout tarballs (`index.json`, `oci-layout`, `blobs/sha256/*`).
//!
//! Import reads the tarball into memory, writes the blobs the content store lacks, and then
//! takes the same record-and-unpack steps as a registry pull ([`Containerd::commit_image`]).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use containerd_client::types::Descriptor;
use oci_spec::image::ImageIndex;

use super::{normalize_reference, oci_arch, sha256_digest};
use super::{MEDIA_CONFIG, MEDIA_INDEX, MEDIA_LAYER_GZIP, MEDIA_MANIFEST};
use crate::runtime::Containerd;

/// The index and the blobs (by digest) of an OCI image layout tarball, read into memory.
pub fn read_layout_tar(tar_path: &Path) -> anyhow::Result<(ImageIndex, BTreeMap<String, Vec<u8>>)> {
    let file =
        std::fs::File::open(tar_path).with_context(|| format!("opening {}", tar_path.display()))?;
    let mut archive = tar::Archive::new(file);
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut index_json = None;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        if path == "index.json" {
            index_json = Some(data);
        } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            blobs.insert(format!("sha256:{hex}"), data);
        }
    }
    let index: ImageIndex = serde_json::from_slice(
        &index_json.ok_or_else(|| anyhow!("{} has no index.json", tar_path.display()))?,
    )
    .context("parsing index.json")?;
    Ok((index, blobs))
}

impl Containerd {
    /// Import an OCI image layout tarball; returns the image names created.
    pub async fn import_layout_tar(
        &self,
        tar_path: &Path,
        name_override: Option<&str>,
    ) -> anyhow::Result<Vec<String>> {
        let (index, blobs) = read_layout_tar(tar_path)?;
        let lease = self.start_lease().await?;
        let result = self
            .import_index(&lease, &index, &blobs, name_override)
            .await;
        self.end_lease(&lease).await;
        result
    }

    async fn import_index(
        &self,
        lease: &str,
        index: &ImageIndex,
        blobs: &BTreeMap<String, Vec<u8>>,
        name_override: Option<&str>,
    ) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        for desc in index.manifests() {
            let annotations = desc.annotations().clone().unwrap_or_default();
            let name = name_override
                .map(str::to_string)
                .or_else(|| annotations.get("io.containerd.image.name").cloned())
                .or_else(|| {
                    annotations
                        .get("org.opencontainers.image.ref.name")
                        .filter(|n| n.contains(':') || n.contains('/'))
                        .cloned()
                })
                .ok_or_else(|| anyhow!("manifest {} has no image name: pass one", desc.digest()))?;
            let name = normalize_reference(&name);
            let manifest_digest = desc.digest().to_string();
            let manifest_bytes = blobs
                .get(&manifest_digest)
                .cloned()
                .ok_or_else(|| anyhow!("blob {manifest_digest} missing from the tarball"))?;
            let size = manifest_bytes.len() as i64;
            let manifest = super::store::parse_manifest(&manifest_bytes)?;
            for (digest, _) in self.missing_blobs(&manifest).await? {
                let data = blobs
                    .get(&digest)
                    .cloned()
                    .ok_or_else(|| anyhow!("blob {digest} missing from the tarball"))?;
                let written = self.write_blob(lease, data, HashMap::new()).await?;
                if written != digest {
                    bail!("blob {digest} in the tarball has digest {written}");
                }
            }
            self.put_manifest(lease, &manifest_digest, manifest_bytes, &manifest)
                .await?;
            let target = Descriptor {
                media_type: desc.media_type().to_string(),
                digest: manifest_digest,
                size,
                annotations: HashMap::new(),
            };
            self.commit_image(lease, &name, target, &manifest).await?;
            names.push(name);
        }
        Ok(names)
    }
}

/// Write an OCI image layout tarball at `out` holding one image, `name`, of one layer:
/// `layer_tar` (an uncompressed tar, whose digest is the diff ID) stored gzipped, with
/// `process` as the image config's `config` (`Env`, `Entrypoint`, `Cmd`, `WorkingDir`, ...).
/// The inverse of [`read_layout_tar`]; `skiff-agent load-image` imports the result.
pub fn write_single_layer_layout(
    out: &Path,
    name: &str,
    layer_tar: &[u8],
    process: serde_json::Value,
) -> anyhow::Result<()> {
    let diff_id = sha256_digest(layer_tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(layer_tar)?;
    let layer_gz = gz.finish()?;
    let layer_digest = sha256_digest(&layer_gz);

    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": process,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))?;
    let config_digest = sha256_digest(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": MEDIA_LAYER_GZIP, "digest": layer_digest, "size": layer_gz.len()}],
    }))?;
    let manifest_digest = sha256_digest(&manifest);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST, "digest": manifest_digest, "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": name,
            },
        }],
    }))?;

    let mut out_tar = tar::Builder::new(std::fs::File::create(out)?);
    let mut add = |path: String, data: &[u8]| -> anyhow::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_path(path)?;
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        h.set_cksum();
        out_tar.append(&h, data)?;
        Ok(())
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json".into(), &index)?;
    for (digest, data) in [
        (&layer_digest, &layer_gz),
        (&config_digest, &config),
        (&manifest_digest, &manifest),
    ] {
        add(
            format!("blobs/sha256/{}", digest.trim_start_matches("sha256:")),
            data,
        )?;
    }
    out_tar.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_layout_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("img.tar");
        let mut layer = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_path("hello").unwrap();
        h.set_size(2);
        h.set_cksum();
        layer.append(&h, &b"hi"[..]).unwrap();
        let layer = layer.into_inner().unwrap();
        let process = serde_json::json!({"Cmd": ["/hello"]});
        write_single_layer_layout(&out, "skiff.test/hello:v1", &layer, process).unwrap();
        let (index, blobs) = read_layout_tar(&out).unwrap();
        let m = &index.manifests()[0];
        let names = m.annotations().clone().unwrap_or_default();
        assert_eq!(names["io.containerd.image.name"], "skiff.test/hello:v1");
        let manifest =
            super::super::store::parse_manifest(&blobs[m.digest().as_ref() as &str]).unwrap();
        let config: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(&blobs[manifest.config().digest().as_ref() as &str]).unwrap();
        assert_eq!(config.rootfs().diff_ids()[0], sha256_digest(&layer));
        assert_eq!(
            config.config().as_ref().unwrap().cmd().as_deref(),
            Some(&["/hello".to_string()][..])
        );
    }
}
