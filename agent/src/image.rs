//! Images through containerd's content, images, snapshots and diff services.
//!
//! Import: an OCI image layout tarball (`index.json`, `oci-layout`, `blobs/sha256/*`) is written
//! blob by blob into the content store, an image record is created per named manifest, and the
//! layers are unpacked into the snapshotter (prepare → diff apply → commit per layer, keyed by
//! chain ID) exactly as containerd's own client unpacks. Everything runs under a containerd
//! lease so the garbage collector cannot remove half-imported content; the finished image is
//! kept alive by `containerd.io/gc.ref.*` labels from the image record down to the snapshots.
//!
//! Registry pulls ([`crate::registry`]) end in the same steps: [`Containerd::store_manifest`]
//! writes a manifest and its blobs from a [`BlobSource`] (the tarball or the registry), and
//! [`Containerd::commit_image`] creates the record and unpacks.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, DeleteRequest as DeleteLeaseRequest, GetImageRequest, Image,
    InfoRequest, ReadContentRequest, UpdateImageRequest, WriteAction, WriteContentRequest,
};
use containerd_client::services::v1::{CreateRequest as CreateLeaseRequest, UpdateRequest};
use containerd_client::types::Descriptor;
use futures::stream::BoxStream;
use futures::StreamExt;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::runtime::{request, Containerd, SNAPSHOTTER};

pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

use containerd_client::tonic;

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

/// Why an image is not usable, with the Kubernetes waiting reason it maps to.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {0} is not present on the node")]
    NotPresent(String),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

/// Where the blobs of an image come from while it is stored. (An enum rather than a trait
/// with async methods: the pod worker's future must be provably Send, which generic async
/// trait methods taking references defeat in today's rustc.)
pub(crate) enum BlobSource<'a> {
    /// An OCI layout tarball, read into memory.
    Layout(&'a BTreeMap<String, Vec<u8>>),
    /// The registry the image is pulled from.
    Registry(&'a crate::registry::RemoteBlobs<'a>),
}

impl BlobSource<'_> {
    /// Write blob `digest` (`size` bytes) into the content store under `lease`; only called
    /// for blobs the content store lacks.
    async fn store(
        &self,
        cd: &Containerd,
        lease: &str,
        digest: &str,
        size: i64,
    ) -> anyhow::Result<()> {
        match self {
            BlobSource::Layout(blobs) => {
                let data = blobs
                    .get(digest)
                    .cloned()
                    .ok_or_else(|| anyhow!("blob {digest} missing from the tarball"))?;
                let written = cd.write_blob(lease, data, HashMap::new()).await?;
                if written != digest {
                    bail!("blob {digest} in the tarball has digest {written}");
                }
                Ok(())
            }
            BlobSource::Registry(remote) => remote.store(cd, lease, digest, size).await,
        }
    }
}

/// The Write messages of one content-store write (one per chunk, at running offsets), then
/// the Commit carrying `labels`.
fn write_requests(
    reference: String,
    digest: String,
    total: i64,
    chunks: impl futures::Stream<Item = Vec<u8>> + Send + 'static,
    labels: HashMap<String, String>,
) -> impl futures::Stream<Item = WriteContentRequest> + Send + 'static {
    let commit = WriteContentRequest {
        action: WriteAction::Commit as i32,
        r#ref: reference.clone(),
        total,
        expected: digest.clone(),
        offset: total,
        data: Vec::new(),
        labels,
    };
    let mut offset = 0i64;
    chunks
        .map(move |data| {
            let at = offset;
            offset += data.len() as i64;
            WriteContentRequest {
                action: WriteAction::Write as i32,
                r#ref: reference.clone(),
                total,
                expected: digest.clone(),
                offset: at,
                data,
                labels: HashMap::new(),
            }
        })
        .chain(futures::stream::once(futures::future::ready(commit)))
}

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
    format!("sha256:{:x}", Sha256::digest(data))
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

impl Containerd {
    /// Read a whole blob from the content store.
    pub async fn read_blob(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let mut stream = self
            .client
            .content()
            .read(request(
                &self.namespace,
                ReadContentRequest {
                    digest: digest.to_string(),
                    offset: 0,
                    size: 0,
                },
            ))
            .await
            .with_context(|| format!("reading blob {digest}"))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?.data);
        }
        Ok(out)
    }

    async fn blob_exists(&self, digest: &str) -> anyhow::Result<bool> {
        let res = self
            .client
            .content()
            .info(request(
                &self.namespace,
                InfoRequest {
                    digest: digest.to_string(),
                },
            ))
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) => Err(s.into()),
        }
    }

    /// Write a blob into the content store (no-op when present), with GC labels.
    pub(crate) async fn write_blob(
        &self,
        lease: &str,
        data: Vec<u8>,
        labels: HashMap<String, String>,
    ) -> anyhow::Result<String> {
        let digest = sha256_digest(&data);
        if self.blob_exists(&digest).await? {
            if !labels.is_empty() {
                self.label_blob(&digest, labels).await?;
            }
            return Ok(digest);
        }
        let total = data.len() as i64;
        const CHUNK: usize = 1 << 20;
        let chunks: Vec<Vec<u8>> = data.chunks(CHUNK).map(<[u8]>::to_vec).collect();
        self.write_content(lease, &digest, total, futures::stream::iter(chunks), labels)
            .await?;
        Ok(digest)
    }

    /// Write a blob that arrives in pieces (a registry download) without holding it whole.
    /// A piece that fails ends the write with that error and no blob; containerd checks the
    /// size and the digest when it commits.
    pub(crate) async fn write_blob_stream(
        &self,
        lease: &str,
        digest: &str,
        size: i64,
        mut pieces: BoxStream<'static, Result<Vec<u8>, String>>,
    ) -> anyhow::Result<()> {
        // A task moves the pieces into a channel: the request stream handed to tonic is then a
        // concrete type (a boxed dyn stream there makes the pod worker's future fail the Send
        // check in today's rustc). After a failed piece nothing more is sent; containerd then
        // rejects the commit on size or digest, and the piece's error is the one reported.
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let feeder = tokio::spawn(async move {
            // Pieces gathered to about 1 MiB per message (HTTP delivers a few KiB at a time).
            let mut batch = Vec::new();
            while let Some(piece) = pieces.next().await {
                batch.extend_from_slice(&piece?);
                if batch.len() >= 1 << 20 && tx.send(std::mem::take(&mut batch)).await.is_err() {
                    return Ok(());
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(batch).await;
            }
            Ok::<(), String>(())
        });
        let chunks = tokio_stream::wrappers::ReceiverStream::new(rx);
        let written = self
            .write_content(lease, digest, size, chunks, HashMap::new())
            .await;
        match feeder.await {
            Ok(Err(e)) => bail!("downloading blob {digest}: {e}"),
            Err(e) => bail!("downloading blob {digest}: {e}"),
            Ok(Ok(())) => written,
        }
    }

    /// One content-store write: a Write message per chunk, then Commit with `labels`. The
    /// ingest ref is unique per write, so a retry never meets a half-written ingest and
    /// concurrent writers of one blob do not lock each other out (the second commit finds
    /// the blob there); the lease removes abandoned ingests.
    async fn write_content(
        &self,
        lease: &str,
        digest: &str,
        total: i64,
        chunks: impl futures::Stream<Item = Vec<u8>> + Send + 'static,
        labels: HashMap<String, String>,
    ) -> anyhow::Result<()> {
        let reference = format!(
            "skiff-{}-{}",
            digest.trim_start_matches("sha256:"),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let msgs = write_requests(reference, digest.to_string(), total, chunks, labels);
        let mut req = tonic::Request::new(msgs);
        self.add_metadata(req.metadata_mut(), Some(lease));
        let mut responses = match self.client.content().write(req).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::AlreadyExists => return Ok(()),
            Err(s) => return Err(anyhow!(s).context(format!("writing blob {digest}"))),
        };
        while let Some(r) = responses.next().await {
            match r {
                Ok(_) => {}
                Err(s) if s.code() == Code::AlreadyExists => break,
                Err(s) => return Err(anyhow!(s).context(format!("writing blob {digest}"))),
            }
        }
        Ok(())
    }

    async fn label_blob(
        &self,
        digest: &str,
        labels: HashMap<String, String>,
    ) -> anyhow::Result<()> {
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        self.client
            .content()
            .update(request(
                &self.namespace,
                UpdateRequest {
                    info: Some(containerd_client::services::v1::Info {
                        digest: digest.to_string(),
                        labels,
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask { paths }),
                },
            ))
            .await
            .with_context(|| format!("labelling blob {digest}"))?;
        Ok(())
    }

    /// A lease that protects content written during an import; removed by [`Self::end_lease`].
    pub(crate) async fn start_lease(&self) -> anyhow::Result<String> {
        let id = format!(
            "skiff-import-{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let expire = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        self.client
            .leases()
            .create(request(
                &self.namespace,
                CreateLeaseRequest {
                    id: id.clone(),
                    labels: HashMap::from([("containerd.io/gc.expire".to_string(), expire)]),
                },
            ))
            .await
            .context("creating a containerd lease")?;
        Ok(id)
    }

    pub(crate) async fn end_lease(&self, id: &str) {
        let _ = self
            .client
            .leases()
            .delete(request(
                &self.namespace,
                DeleteLeaseRequest {
                    id: id.to_string(),
                    sync: false,
                },
            ))
            .await;
    }

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
            let manifest = self
                .store_manifest(
                    lease,
                    &BlobSource::Layout(blobs),
                    &manifest_digest,
                    manifest_bytes,
                )
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

    /// Write a manifest and the blobs it names into the content store, children first so
    /// every GC label points at content that exists; blobs already present are not fetched.
    pub(crate) async fn store_manifest(
        &self,
        lease: &str,
        source: &BlobSource<'_>,
        manifest_digest: &str,
        manifest_bytes: Vec<u8>,
    ) -> anyhow::Result<ImageManifest> {
        let manifest: ImageManifest =
            serde_json::from_slice(&manifest_bytes).context("parsing the image manifest")?;
        let config_digest = manifest.config().digest().to_string();
        // Owned (digest, size) pairs: borrowed iterators held across the awaits below make
        // the pod worker's future fail the Send check (a rustc limitation).
        let children: Vec<(String, i64)> = manifest
            .layers()
            .iter()
            .chain([manifest.config()])
            .map(|d| (d.digest().to_string(), d.size() as i64))
            .collect();
        for (digest, size) in children {
            if !self.blob_exists(&digest).await? {
                source.store(self, lease, &digest, size).await?;
            }
        }
        let mut labels = HashMap::from([(
            "containerd.io/gc.ref.content.config".to_string(),
            config_digest,
        )]);
        for (i, layer) in manifest.layers().iter().enumerate() {
            labels.insert(
                format!("containerd.io/gc.ref.content.l.{i}"),
                layer.digest().to_string(),
            );
        }
        let written = self.write_blob(lease, manifest_bytes, labels).await?;
        if written != manifest_digest {
            bail!("manifest digest mismatch: expected {manifest_digest}, content is {written}");
        }
        Ok(manifest)
    }

    /// Point the image record `name` at `target` (a manifest, or an index holding `manifest`)
    /// and unpack `manifest`'s layers.
    pub(crate) async fn commit_image(
        &self,
        lease: &str,
        name: &str,
        target: Descriptor,
        manifest: &ImageManifest,
    ) -> anyhow::Result<()> {
        self.put_image_record(name, target).await?;
        self.unpack(lease, manifest).await?;
        Ok(())
    }

    /// The descriptor the image record `reference` points at, if there is one.
    pub async fn image_target(&self, reference: &str) -> anyhow::Result<Option<Descriptor>> {
        match self
            .client
            .images()
            .get(request(
                &self.namespace,
                GetImageRequest {
                    name: normalize_reference(reference),
                },
            ))
            .await
        {
            Ok(r) => Ok(r.into_inner().image.and_then(|i| i.target)),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(anyhow!(s).context("looking up the image")),
        }
    }

    async fn put_image_record(&self, name: &str, target: Descriptor) -> anyhow::Result<()> {
        let image = Image {
            name: name.to_string(),
            labels: HashMap::new(),
            target: Some(target),
            created_at: None,
            updated_at: None,
        };
        let created = self
            .client
            .images()
            .create(request(
                &self.namespace,
                CreateImageRequest {
                    image: Some(image.clone()),
                    source_date_epoch: None,
                },
            ))
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => {
                self.client
                    .images()
                    .update(request(
                        &self.namespace,
                        UpdateImageRequest {
                            image: Some(image),
                            update_mask: Some(prost_types::FieldMask {
                                paths: vec!["target".into()],
                            }),
                            source_date_epoch: None,
                        },
                    ))
                    .await
                    .context("updating the image record")?;
                Ok(())
            }
            Err(s) => Err(anyhow!(s).context("creating the image record")),
        }
    }

    async fn snapshot_exists(&self, key: &str) -> anyhow::Result<bool> {
        match self
            .client
            .snapshots()
            .stat(request(
                &self.namespace,
                StatSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: key.to_string(),
                },
            ))
            .await
        {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) => Err(s.into()),
        }
    }

    /// Unpack the layers of a manifest into committed snapshots named by chain ID.
    async fn unpack(&self, lease: &str, manifest: &ImageManifest) -> anyhow::Result<String> {
        let config_digest = manifest.config().digest().to_string();
        let config: ImageConfiguration =
            serde_json::from_slice(&self.read_blob(&config_digest).await?)
                .context("parsing the image config")?;
        let diff_ids = config.rootfs().diff_ids().clone();
        if diff_ids.len() != manifest.layers().len() {
            bail!(
                "image config lists {} diff IDs for {} layers",
                diff_ids.len(),
                manifest.layers().len()
            );
        }
        let chains = chain_ids(&diff_ids);
        let mut parent = String::new();
        for (i, layer) in manifest.layers().iter().enumerate() {
            let chain = &chains[i];
            if !self.snapshot_exists(chain).await? {
                let key = format!(
                    "extract-{}-{chain}",
                    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
                );
                let mut snaps = self.client.snapshots();
                let mut prep = request(
                    &self.namespace,
                    PrepareSnapshotRequest {
                        snapshotter: SNAPSHOTTER.into(),
                        key: key.clone(),
                        parent: parent.clone(),
                        labels: HashMap::new(),
                    },
                );
                self.add_metadata(prep.metadata_mut(), Some(lease));
                let mounts = snaps
                    .prepare(prep)
                    .await
                    .context("preparing an extraction snapshot")?
                    .into_inner()
                    .mounts;
                let applied = self
                    .client
                    .diff()
                    .apply(request(
                        &self.namespace,
                        ApplyRequest {
                            diff: Some(Descriptor {
                                media_type: layer.media_type().to_string(),
                                digest: layer.digest().to_string(),
                                size: layer.size() as i64,
                                annotations: HashMap::new(),
                            }),
                            mounts,
                            payloads: HashMap::new(),
                            sync_fs: false,
                        },
                    ))
                    .await;
                if let Err(e) = applied {
                    let _ = snaps
                        .remove(request(
                            &self.namespace,
                            RemoveSnapshotRequest {
                                snapshotter: SNAPSHOTTER.into(),
                                key,
                            },
                        ))
                        .await;
                    return Err(anyhow!(e).context(format!("applying layer {}", layer.digest())));
                }
                let mut commit = request(
                    &self.namespace,
                    CommitSnapshotRequest {
                        snapshotter: SNAPSHOTTER.into(),
                        name: chain.clone(),
                        key,
                        labels: HashMap::new(),
                    },
                );
                self.add_metadata(commit.metadata_mut(), Some(lease));
                match snaps.commit(commit).await {
                    Ok(_) => {}
                    Err(s) if s.code() == Code::AlreadyExists => {}
                    Err(s) => return Err(anyhow!(s).context("committing a layer snapshot")),
                }
            }
            parent = chain.clone();
        }
        // The config keeps the top snapshot (and so the whole chain) alive.
        self.label_blob(
            &config_digest,
            HashMap::from([(
                format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"),
                parent.clone(),
            )]),
        )
        .await?;
        Ok(parent)
    }

    /// Look an image up by reference and make sure it is unpacked.
    pub async fn resolve_image(&self, reference: &str) -> Result<ResolvedImage, ImageError> {
        let name = normalize_reference(reference);
        let Some(target) = self.image_target(&name).await? else {
            return Err(ImageError::NotPresent(name));
        };
        let manifest = self.platform_manifest(&target).await?;
        let config_digest = manifest.config().digest().to_string();
        let config: ImageConfiguration =
            serde_json::from_slice(&self.read_blob(&config_digest).await?)
                .context("parsing the image config")?;
        let chains = chain_ids(config.rootfs().diff_ids());
        let top = chains.last().cloned().unwrap_or_default();
        if !self.snapshot_exists(&top).await? {
            let lease = self.start_lease().await?;
            let r = self.unpack(&lease, &manifest).await;
            self.end_lease(&lease).await;
            r?;
        }
        Ok(ResolvedImage {
            name,
            id: target.digest,
            config,
            chain_id: top,
        })
    }

    /// The manifest for this platform (following an index if the target is one).
    async fn platform_manifest(&self, target: &Descriptor) -> anyhow::Result<ImageManifest> {
        let bytes = self.read_blob(&target.digest).await?;
        match target.media_type.as_str() {
            MEDIA_INDEX | DOCKER_LIST => {
                let index: ImageIndex = serde_json::from_slice(&bytes)?;
                let chosen = choose_platform(&index)?;
                let bytes = self.read_blob(chosen.digest().as_ref()).await?;
                Ok(serde_json::from_slice(&bytes)?)
            }
            MEDIA_MANIFEST | DOCKER_MANIFEST | "" => Ok(serde_json::from_slice(&bytes)?),
            other => bail!("unsupported image media type {other}"),
        }
    }
}

/// The manifest of an index for this host (linux and [`oci_arch`]; entries without a platform
/// match anything).
pub fn choose_platform(index: &ImageIndex) -> anyhow::Result<&oci_spec::image::Descriptor> {
    let arch = oci_arch();
    index
        .manifests()
        .iter()
        .find(|m| {
            m.platform().as_ref().is_none_or(|p| {
                p.architecture().to_string() == arch && p.os().to_string() == "linux"
            })
        })
        .ok_or_else(|| anyhow!("no manifest for linux/{arch} in the image index"))
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

/// Build an OCI image layout tarball holding a single-layer busybox image made from a static
/// busybox binary (Debian's busybox-static): `bin/busybox` plus links for common applets.
/// Used by the tests and for offline demos: `skiff-agent load-image` imports the result.
pub fn build_busybox_layout(busybox: &Path, out: &Path, name: &str) -> anyhow::Result<()> {
    let binary =
        std::fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?;
    // The layer: an uncompressed tar (its digest is the diff ID), then gzip (the blob).
    let mut layer = tar::Builder::new(Vec::new());
    let dir = |path: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_path(path).unwrap();
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        h.set_cksum();
        h
    };
    for d in [
        "bin/", "etc/", "tmp/", "proc/", "sys/", "dev/", "var/", "www/",
    ] {
        layer.append(&dir(d), std::io::empty())?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_path("bin/busybox")?;
    h.set_mode(0o755);
    h.set_size(binary.len() as u64);
    h.set_mtime(0);
    h.set_cksum();
    layer.append(&h, binary.as_slice())?;
    for applet in [
        "sh", "echo", "httpd", "sleep", "hostname", "cat", "wget", "mkdir", "ls", "env", "true",
        "false", "id", "nc", "ps", "kill", "test", "grep",
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_path(format!("bin/{applet}"))?;
        h.set_link_name("busybox")?;
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(0);
        h.set_cksum();
        layer.append(&h, std::io::empty())?;
    }
    for (path, content) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("www/index.html", "hello from skiff\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_path(path)?;
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        h.set_mtime(0);
        h.set_cksum();
        layer.append(&h, content.as_bytes())?;
    }
    let layer_tar = layer.into_inner()?;
    let diff_id = sha256_digest(&layer_tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer_tar)?;
    let layer_gz = gz.finish()?;
    let layer_digest = sha256_digest(&layer_gz);

    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin"],
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo hello from busybox"],
            "WorkingDir": "/",
        },
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
    }

    #[test]
    fn busybox_layout_is_a_valid_oci_layout() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("busybox");
        std::fs::write(&fake, b"not really busybox").unwrap();
        let out = dir.path().join("img.tar");
        build_busybox_layout(&fake, &out, "skiff.test/busybox:latest").unwrap();
        let mut archive = tar::Archive::new(std::fs::File::open(&out).unwrap());
        let mut files = BTreeMap::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            files.insert(p, data);
        }
        let index: ImageIndex = serde_json::from_slice(&files["index.json"]).unwrap();
        let m = &index.manifests()[0];
        let blob = |d: &str| &files[&format!("blobs/sha256/{}", d.trim_start_matches("sha256:"))];
        let manifest_bytes = blob(m.digest().as_ref());
        assert_eq!(&sha256_digest(manifest_bytes), m.digest().as_ref() as &str);
        let manifest: ImageManifest = serde_json::from_slice(manifest_bytes).unwrap();
        let config: ImageConfiguration =
            serde_json::from_slice(blob(manifest.config().digest().as_ref())).unwrap();
        let layer = blob(manifest.layers()[0].digest().as_ref());
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(layer.as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(sha256_digest(&raw), config.rootfs().diff_ids()[0]);
    }
}
