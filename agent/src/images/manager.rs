//! The image manager: the image a container runs, present or pulled as its imagePullPolicy
//! says, with the kubelet's image errors (`ErrImagePull`, `ErrImageNeverPull`; the pod worker
//! turns a recent `ErrImagePull` into `ImagePullBackOff`).
//!
//! [`decide`] is the policy as a pure function; [`ImageManager::ensure`] is the shell that asks
//! containerd and the registry.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use oci_client::secrets::RegistryAuth;
use tracing::info;

use super::pull_secrets::PullSecrets;
use super::registry::Registry;
use super::store::ResolveError;
use super::ResolvedImage;
use crate::runtime::Containerd;

/// The kubelet's waiting reason for an image that could not be pulled.
pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
/// The kubelet's waiting reason for an absent image under pull policy `Never`.
pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
/// The kubelet's waiting reason while a failed pull backs off.
pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";

/// Why a container has no image to run.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Pull policy `Never` and the image is not on the node (`ErrImageNeverPull`).
    #[error("Container image \"{image}\" is not present with pull policy of Never")]
    NeverPull { image: String },
    /// Asking the registry, or pulling, failed (`ErrImagePull`).
    #[error("failed to pull image \"{image}\": {cause:#}")]
    Pull { image: String, cause: anyhow::Error },
    /// The image on the node could not be read or unpacked (`ErrImagePull`).
    #[error(transparent)]
    Resolve(#[from] ResolveError),
}

impl ImageError {
    /// The container's waiting reason, as the kubelet names it.
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::NeverPull { .. } => ERR_IMAGE_NEVER_PULL,
            ImageError::Pull { .. } | ImageError::Resolve(_) => ERR_IMAGE_PULL,
        }
    }
}

/// What to do for an image under a pull policy, given whether the node has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run the image the node has.
    UsePresent,
    /// Policy `Never` without the image: refuse (`ErrImageNeverPull`).
    RefuseNeverPull,
    /// Policy `Always` with the image: ask the registry for the reference's digest and pull only
    /// when it names other content (pulling identical content would rewrite the same blobs).
    PullIfChanged,
    /// Pull.
    Pull,
}

/// The decision of an imagePullPolicy (`None` or empty: `IfNotPresent`). The apiserver
/// defaults the policy as Kubernetes does (`Always` for `:latest` and untagged images). A value
/// the agent does not know pulls on every start.
pub fn decide(policy: Option<&str>, present: bool) -> Action {
    let policy = policy.filter(|p| !p.is_empty()).unwrap_or("IfNotPresent");
    match (policy, present) {
        ("Never", false) => Action::RefuseNeverPull,
        ("Never" | "IfNotPresent", true) => Action::UsePresent,
        ("Always", true) => Action::PullIfChanged,
        _ => Action::Pull,
    }
}

/// What the manager reports while it works.
#[derive(Clone, Debug)]
pub enum PullProgress {
    /// A pull starts.
    Pulling { image: String },
    /// A pull finished after `took`.
    Pulled { image: String, took: Duration },
    /// The image was on the node already (also when `Always` found the same digest).
    AlreadyPresent { image: String },
}

/// Hears what the manager does for one container (the kubelet records these as Events).
pub trait PullEvents: Send + Sync {
    fn report(&self, progress: PullProgress) -> BoxFuture<'_, ()>;
}

/// Nobody listens.
impl PullEvents for () {
    fn report(&self, _: PullProgress) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Images for containers, from containerd and the registries.
pub struct ImageManager<'a> {
    pub containerd: &'a Containerd,
    pub registry: &'a Registry,
}

impl ImageManager<'_> {
    /// The image `image_ref` under `policy`, pulled with the credentials of `secrets` when
    /// needed; `progress` hears whether the image was present or pulled.
    pub async fn ensure(
        &self,
        image_ref: &str,
        policy: Option<&str>,
        secrets: &PullSecrets<'_>,
        progress: &dyn PullEvents,
    ) -> Result<ResolvedImage, ImageError> {
        let present = match self.containerd.resolve_image(image_ref).await {
            Ok(i) => Some(i),
            Err(ResolveError::NotPresent(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let pull_error = |cause: anyhow::Error| ImageError::Pull {
            image: image_ref.to_string(),
            cause,
        };
        let already = || PullProgress::AlreadyPresent {
            image: image_ref.to_string(),
        };
        match (decide(policy, present.is_some()), present) {
            (Action::RefuseNeverPull, _) => {
                return Err(ImageError::NeverPull {
                    image: image_ref.to_string(),
                })
            }
            (Action::UsePresent, Some(i)) => {
                progress.report(already()).await;
                return Ok(i);
            }
            (Action::PullIfChanged, Some(i)) => {
                let auth = secrets.auth_for(image_ref).await;
                let remote = self
                    .registry
                    .remote_digest(image_ref, &auth)
                    .await
                    .map_err(pull_error)?;
                if remote == i.id {
                    progress.report(already()).await;
                    return Ok(i);
                }
                info!(pod = %secrets.pod, image = %image_ref, %remote, local = %i.id, "image changed at the registry, pulling");
                self.pull(image_ref, &auth, progress)
                    .await
                    .map_err(pull_error)?;
            }
            _ => {
                let auth = secrets.auth_for(image_ref).await;
                info!(pod = %secrets.pod, image = %image_ref, "pulling image");
                self.pull(image_ref, &auth, progress)
                    .await
                    .map_err(pull_error)?;
            }
        }
        Ok(self.containerd.resolve_image(image_ref).await?)
    }

    async fn pull(
        &self,
        image_ref: &str,
        auth: &RegistryAuth,
        progress: &dyn PullEvents,
    ) -> anyhow::Result<()> {
        progress
            .report(PullProgress::Pulling {
                image: image_ref.to_string(),
            })
            .await;
        let started = Instant::now();
        self.registry.pull(self.containerd, image_ref, auth).await?;
        progress
            .report(PullProgress::Pulled {
                image: image_ref.to_string(),
                took: started.elapsed(),
            })
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies_decide_as_the_kubelet() {
        assert_eq!(decide(Some("Never"), false), Action::RefuseNeverPull);
        assert_eq!(decide(Some("Never"), true), Action::UsePresent);
        assert_eq!(decide(Some("IfNotPresent"), true), Action::UsePresent);
        assert_eq!(decide(Some("IfNotPresent"), false), Action::Pull);
        assert_eq!(decide(None, true), Action::UsePresent);
        assert_eq!(decide(Some(""), false), Action::Pull);
        assert_eq!(decide(Some("Always"), true), Action::PullIfChanged);
        assert_eq!(decide(Some("Always"), false), Action::Pull);
    }

    #[test]
    fn image_errors_carry_the_kubelet_reasons() {
        let never = ImageError::NeverPull {
            image: "x:1".into(),
        };
        assert_eq!(never.reason(), "ErrImageNeverPull");
        assert_eq!(
            never.to_string(),
            "Container image \"x:1\" is not present with pull policy of Never"
        );
        let pull = ImageError::Pull {
            image: "x:1".into(),
            cause: anyhow::anyhow!("connection refused").context("fetching"),
        };
        assert_eq!(pull.reason(), "ErrImagePull");
        assert_eq!(
            pull.to_string(),
            "failed to pull image \"x:1\": fetching: connection refused"
        );
    }
}
