//! skiff's cluster PKI: one certificate authority, certificates for every identity in the
//! cluster (the apiserver's serving certificate, components' and users' client certificates),
//! the rustls configurations that use them, and kubeconfigs that embed them.
//!
//! Identities follow Kubernetes: a client certificate's Common Name is the user name and each
//! Organization is a group (`system:node:<name>` in `system:nodes`, `system:kube-scheduler`, …).

pub mod authority;
pub mod cluster;
pub mod identity;
pub mod kubeconfig;
pub mod pem;
pub mod tls;

pub use authority::{Authority, CertRequest, IssuedCert, Usage};
pub use cluster::{ClusterPki, ServingNames};
pub use identity::CertIdentity;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{what}: {reason}")]
    Parse { what: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("building the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("building the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

pub type PkiResult<T> = Result<T, PkiError>;
