//! The content store, image records and snapshots, through containerd's content, images,
//! snapshots and diff services.
//!
//! Blobs are written under a containerd lease so the garbage collector cannot remove
//! half-imported content; an image record is created per named manifest, and the layers are
//! unpacked into the snapshotter (prepare → diff apply → commit per layer, keyed by chain ID)
//! exactly as containerd's own client unpacks. The finished image is kept alive by
//! `containerd.io/gc.ref.*` labels from the image record down to the snapshots.
//!
//! Both ways an image arrives ([`super::layout`] import and [`super::registry`] pulls) end
//! here: they write the blobs [`Containerd::missing_blobs`] names, then
//! [`Containerd::put_manifest`] and [`Containerd::commit_image`].

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context};
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, DeleteRequest as DeleteLeaseRequest, GetImageRequest, Image,
    InfoRequest, ReadContentRequest, UpdateImageRequest, WriteAction, WriteContentRequest,
};
use containerd_client::services::v1::{CreateRequest as CreateLeaseRequest, UpdateRequest};
use containerd_client::tonic::{self, Code};
use containerd_client::types::Descriptor;
use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use super::{chain_ids, choose_platform, normalize_reference, sha256_digest, ResolvedImage};
use super::{DOCKER_LIST, DOCKER_MANIFEST, MEDIA_INDEX, MEDIA_MANIFEST};
use crate::runtime::{request, Containerd, SNAPSHOTTER};

/// Why [`Containerd::resolve_image`] has no image to run.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("image {0} is not present on the node")]
    NotPresent(String),
    #[error("{0:#}")]
    Store(#[from] anyhow::Error),
}

/// Parse a manifest's bytes.
pub fn parse_manifest(bytes: &[u8]) -> anyhow::Result<ImageManifest> {
    serde_json::from_slice(bytes).context("parsing the image manifest")
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
            Timestamp::now().as_nanosecond()
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
        let id = format!("skiff-import-{}", Timestamp::now().as_nanosecond());
        let expire = (Timestamp::now() + SignedDuration::from_hours(1)).to_string();
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

    /// The blobs `manifest` names (layers, then config) that the content store lacks, as
    /// (digest, size): the caller writes them before [`Self::put_manifest`], so every GC label
    /// points at content that exists and blobs already present are not fetched again.
    pub(crate) async fn missing_blobs(
        &self,
        manifest: &ImageManifest,
    ) -> anyhow::Result<Vec<(String, i64)>> {
        // Owned (digest, size) pairs: borrowed iterators held across the awaits below make
        // the pod worker's future fail the Send check (a rustc limitation).
        let children: Vec<(String, i64)> = manifest
            .layers()
            .iter()
            .chain([manifest.config()])
            .map(|d| (d.digest().to_string(), d.size() as i64))
            .collect();
        let mut missing = Vec::new();
        for (digest, size) in children {
            if !self.blob_exists(&digest).await? {
                missing.push((digest, size));
            }
        }
        Ok(missing)
    }

    /// Write the manifest itself, labelled so that it keeps its config and layers alive.
    pub(crate) async fn put_manifest(
        &self,
        lease: &str,
        manifest_digest: &str,
        manifest_bytes: Vec<u8>,
        manifest: &ImageManifest,
    ) -> anyhow::Result<()> {
        let mut labels = HashMap::from([(
            "containerd.io/gc.ref.content.config".to_string(),
            manifest.config().digest().to_string(),
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
        Ok(())
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
                let key = format!("extract-{}-{chain}", Timestamp::now().as_nanosecond());
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
    pub async fn resolve_image(&self, reference: &str) -> Result<ResolvedImage, ResolveError> {
        let name = normalize_reference(reference);
        let Some(target) = self.image_target(&name).await? else {
            return Err(ResolveError::NotPresent(name));
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
