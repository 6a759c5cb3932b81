//! Wiring: etcd, the registry and its watch caches, bootstrap objects, the HTTP router, and
//! shutdown. No request handling lives here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::endpoints::{self, discovery as discovery_http};
use crate::metrics::Metrics;
use crate::registry::core::{namespace, service};
use crate::registry::generic::create::create_internal;
use crate::registry::{builtin, Registry};
use crate::state::AppState;
use crate::storage::Store;

/// A running apiserver.
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    stopped: Option<oneshot::Receiver<()>>,
    task: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting requests, end open watches, and wait for in-flight requests.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(stopped) = self.stopped.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), stopped).await;
        }
        self.task.abort();
        for b in &self.background {
            b.abort();
        }
    }

    /// Wait until the server stops on its own (it only does on a fatal error).
    pub async fn wait(&mut self) {
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.await;
        }
    }
}

pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    let store = Store::connect(&config.etcd_servers)
        .await
        .with_context(|| format!("connecting to etcd at {}", config.etcd_servers.join(",")))?;
    let revision = store
        .current_revision()
        .await
        .with_context(|| format!("reading from etcd at {}", config.etcd_servers.join(",")))?;

    let registry_config = config.registry();
    let registry = Registry::new(
        builtin::kinds(&registry_config),
        builtin::admission(),
        &store,
        config.watch_cache_size,
    );
    let mut background = Vec::new();
    for cache in registry.caches() {
        background.push(tokio::spawn(cache.clone().run(store.clone())));
    }
    for cache in registry.caches() {
        cache
            .wait_for(revision, Duration::from_secs(30))
            .await
            .map_err(|e| anyhow::anyhow!("watch cache for {} did not sync: {e}", cache.resource))?;
    }

    let listener = TcpListener::bind((config.bind_address, config.port))
        .await
        .with_context(|| format!("binding {}:{}", config.bind_address, config.port))?;
    let addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = Arc::new(AppState {
        config: config.clone(),
        registry,
        store: store.clone(),
        metrics: Metrics::default(),
        shutdown: shutdown_rx.clone(),
        address: addr,
    });
    bootstrap(&state, &registry_config)
        .await
        .context("creating the default namespaces")?;
    if let Some(every) = config.compaction_interval {
        background.push(tokio::spawn(compact_periodically(state.clone(), every)));
    }

    let app = router(state);
    let (stopped_tx, stopped_rx) = oneshot::channel();
    let mut shutdown_signal = shutdown_rx;
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = shutdown_signal.wait_for(|stop| *stop).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
        let _ = stopped_tx.send(());
    });
    tracing::info!(%addr, "skiff-apiserver serving");
    Ok(RunningServer {
        addr,
        shutdown: shutdown_tx,
        stopped: Some(stopped_rx),
        task,
        background,
    })
}

/// The namespaces every cluster has, and the `kubernetes` service pointing at the API.
async fn bootstrap(state: &AppState, config: &builtin::RegistryConfig) -> anyhow::Result<()> {
    let registry = &state.registry;
    for ns in namespace::BOOTSTRAP {
        create_internal(
            registry.of(&namespace::INFO),
            None,
            namespace::new_object(ns),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let allocators = service::allocator::Allocators {
        service_range: config.service_cluster_ip_range,
        node_ports: config.service_node_port_range.clone(),
    };
    let svc = service::kubernetes_service(&allocators.first_ip().to_string(), state.address.port());
    create_internal(registry.of(&service::INFO), Some("default"), svc)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Compact etcd to the revision seen one interval ago, so watchers have at least one interval
/// of history, and drop that history from the caches too.
async fn compact_periodically(state: Arc<AppState>, every: Duration) {
    let mut previous: Option<i64> = None;
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let current = match state.store.current_revision().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "reading etcd revision for compaction");
                continue;
            }
        };
        if let Some(rev) = previous {
            match state.store.compact(rev).await {
                Ok(()) => {
                    for cache in state.registry.caches() {
                        cache.trim_history(rev);
                    }
                    tracing::debug!(revision = rev, "compacted etcd");
                }
                Err(e) => tracing::debug!(error = %e, "etcd compaction skipped"),
            }
        }
        previous = Some(current);
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(ready))
        .route("/version", get(discovery_http::version))
        .route("/metrics", get(metrics))
        .route("/api", get(discovery_http::core_versions))
        .route("/apis", get(discovery_http::groups))
        .route("/api/{version}", get(discovery_http::core_resources))
        .route("/apis/{group}", get(discovery_http::api_group))
        .route(
            "/apis/{group}/{version}",
            get(discovery_http::group_resources),
        )
        .route("/openapi/v2", get(discovery_http::openapi_v2))
        .route("/openapi/v3", get(discovery_http::openapi_v3_index))
        .route("/openapi/v3/{*path}", get(discovery_http::openapi_v3))
        .fallback(endpoints::dispatch)
        .with_state(state)
}

async fn health() -> &'static str {
    "ok"
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match state.store.current_revision().await {
        Ok(_) => "ok".into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("[-]etcd failed: {e}\nreadyz check failed"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
