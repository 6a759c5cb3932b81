//! What every reconciler shares: the retry policy and draining a kube-runtime Controller.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::controller::Action;

use crate::metrics::Metrics;

/// A reconcile error that knows whether it is a write conflict (retried at once: the store
/// will show the newer object shortly).
pub trait ReconcileError: std::error::Error + Send + Sync + 'static {
    fn is_conflict(&self) -> bool;
}

/// The error of a reconciler whose only failures are API calls.
#[derive(Debug, thiserror::Error)]
pub enum ApiCallError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl ReconcileError for ApiCallError {
    fn is_conflict(&self) -> bool {
        matches!(self, ApiCallError::Kube(e) if is_conflict(e))
    }
}

/// Whether a kube error is a 409 Conflict.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// How long to wait before retrying a failed reconcile (pure).
pub fn retry_after(conflict: bool) -> Duration {
    if conflict {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(2)
    }
}

/// Retry a failed reconcile after a short back-off, logging and counting it.
pub fn error_policy<K, E: ReconcileError, C>(
    controller: &'static str,
    metrics: Arc<Metrics>,
) -> impl Fn(Arc<K>, &E, Arc<C>) -> Action {
    move |_obj, err, _ctx| {
        tracing::warn!(controller, error = %err, "reconcile failed; retrying");
        metrics.reconcile(controller, false);
        Action::requeue(retry_after(err.is_conflict()))
    }
}

/// Drive a Controller's result stream to its end.
pub async fn drain<S: Stream>(results: S) {
    results.for_each(|_| futures::future::ready(())).await;
}

/// Look again shortly: the store has not caught up with our own writes yet.
pub fn wait_for_store() -> Action {
    Action::requeue(Duration::from_millis(100))
}
