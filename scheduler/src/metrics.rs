//! Prometheus metrics of the scheduler, and the small HTTP server for /healthz and /metrics.

use std::fmt;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

struct Inner {
    registry: Registry,
    attempts: Family<Labels, Counter>,
    algorithm_seconds: Histogram,
    e2e_seconds: Histogram,
    pending: Family<Labels, Gauge>,
    leader: Gauge,
}

/// Cheap to clone; clones share the metrics.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("skiff_scheduler");
        let attempts = Family::<Labels, Counter>::default();
        registry.register(
            "schedule_attempts",
            "Scheduling attempts by result",
            attempts.clone(),
        );
        let algorithm_seconds = Histogram::new(exponential_buckets(0.00001, 2.0, 20));
        registry.register(
            "scheduling_algorithm_duration_seconds",
            "Time spent filtering and scoring one pod",
            algorithm_seconds.clone(),
        );
        let e2e_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        registry.register(
            "pod_creation_to_binding_seconds",
            "Time from pod creation to a successful binding",
            e2e_seconds.clone(),
        );
        let pending = Family::<Labels, Gauge>::default();
        registry.register(
            "pending_pods",
            "Pods in the scheduling queue by queue",
            pending.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica schedules", leader.clone());
        Metrics(Arc::new(Inner {
            registry,
            attempts,
            algorithm_seconds,
            e2e_seconds,
            pending,
            leader,
        }))
    }
}

impl Metrics {
    pub fn attempt(&self, result: &str) {
        self.0
            .attempts
            .get_or_create(&vec![("result".into(), result.into())])
            .inc();
    }

    pub fn algorithm_duration(&self, secs: f64) {
        self.0.algorithm_seconds.observe(secs);
    }

    pub fn creation_to_binding(&self, secs: f64) {
        self.0.e2e_seconds.observe(secs);
    }

    pub fn pending(&self, active: usize, backoff: usize, unschedulable: usize) {
        for (q, n) in [
            ("active", active),
            ("backoff", backoff),
            ("unschedulable", unschedulable),
        ] {
            self.0
                .pending
                .get_or_create(&vec![("queue".into(), q.into())])
                .set(n as i64);
        }
    }

    pub fn set_leader(&self, leading: bool) {
        self.0.leader.set(i64::from(leading));
    }

    /// Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.0.registry)
            .expect("writing to a String");
        out
    }
}

/// Serve `/healthz` and `/metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::{http::header, routing::get, Router};
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        m.encode(),
                    )
                }
            }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_encode_in_text_format() {
        let m = Metrics::default();
        m.attempt("scheduled");
        m.set_leader(true);
        m.pending(1, 2, 3);
        let text = m.encode();
        assert!(
            text.contains("skiff_scheduler_schedule_attempts_total{result=\"scheduled\"} 1"),
            "{text}"
        );
        assert!(text.contains("skiff_scheduler_leader 1"));
        assert!(text.contains("skiff_scheduler_pending_pods{queue=\"unschedulable\"} 3"));
    }
}
