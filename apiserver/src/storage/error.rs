//! What can go wrong below the HTTP layer. Mapped to a `Status` only at the edge
//! (`crate::error`), so the storage layer knows nothing of HTTP.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// The revision asked for is older than etcd's compaction point.
    #[error("{0}")]
    Compacted(String),
    #[error("object stored at {key} is not valid JSON: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    /// A watch asked to resume from a revision the cache's window no longer holds.
    #[error("too old resource version: {requested} ({oldest})")]
    TooOldResourceVersion { requested: i64, oldest: i64 },
    /// The cache did not reach the revision asked for in time (Kubernetes waits 3 s).
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion { requested: i64, current: i64 },
    #[error("watch cache stopped")]
    CacheStopped,
    #[error("invalid resourceVersion: {0}")]
    InvalidResourceVersion(String),
    #[error("continue key is not valid: {0}")]
    InvalidContinue(String),
    #[error(transparent)]
    Encryption(#[from] super::encryption::EncryptionError),
}

pub type StoreResult<T> = Result<T, StoreError>;
