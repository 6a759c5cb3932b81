//! Wiring: configuration, shared state, the HTTP router, bootstrap objects, and shutdown.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ipnet::Ipv4Net;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::admission::allocator::Allocators;
use crate::discovery;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::registry::{self, ResourceInfo, RESOURCES};
use crate::rest::{self, json_response};
use crate::storage::Store;
use crate::watch::WatchCache;

#[derive(Debug, Clone)]
pub struct Config {
    pub etcd_servers: Vec<String>,
    pub bind_address: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    pub service_cluster_ip_range: Ipv4Net,
    pub service_node_port_range: RangeInclusive<u16>,
    /// Events kept per resource for watches that resume from a resourceVersion.
    pub watch_cache_size: usize,
    pub bookmark_interval: Duration,
    /// Watches without timeoutSeconds last between this and twice this.
    pub min_request_timeout: Duration,
    /// How often etcd history older than one interval is compacted (None: never).
    pub compaction_interval: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            etcd_servers: vec!["http://127.0.0.1:2379".into()],
            bind_address: IpAddr::from([127, 0, 0, 1]),
            port: 6443,
            service_cluster_ip_range: "10.96.0.0/12".parse().expect("valid CIDR"),
            service_node_port_range: 30000..=32767,
            watch_cache_size: 10_000,
            bookmark_interval: Duration::from_secs(60),
            min_request_timeout: Duration::from_secs(1800),
            compaction_interval: Some(Duration::from_secs(300)),
        }
    }
}

pub struct AppState {
    pub config: Config,
    pub store: Store,
    caches: Vec<Arc<WatchCache>>,
    pub allocators: Allocators,
    pub metrics: Metrics,
    pub shutdown: watch::Receiver<bool>,
    pub address: SocketAddr,
}

impl AppState {
    pub fn cache(&self, info: &ResourceInfo) -> &Arc<WatchCache> {
        let index = RESOURCES
            .iter()
            .position(|r| std::ptr::eq(r, info))
            .expect("every served resource has a cache");
        &self.caches[index]
    }
}

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

    let mut background = Vec::new();
    let mut caches = Vec::new();
    for info in RESOURCES {
        let cache = WatchCache::new(info, config.watch_cache_size);
        background.push(tokio::spawn(cache.clone().run(store.clone())));
        caches.push(cache);
    }
    for cache in &caches {
        cache
            .wait_for(revision, Duration::from_secs(30))
            .await
            .map_err(|e| {
                anyhow::anyhow!("watch cache for {} did not sync: {e}", cache.info.plural)
            })?;
    }

    let listener = TcpListener::bind((config.bind_address, config.port))
        .await
        .with_context(|| format!("binding {}:{}", config.bind_address, config.port))?;
    let addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = Arc::new(AppState {
        allocators: Allocators {
            service_range: config.service_cluster_ip_range,
            node_ports: config.service_node_port_range.clone(),
        },
        config: config.clone(),
        store: store.clone(),
        caches,
        metrics: Metrics::default(),
        shutdown: shutdown_rx.clone(),
        address: addr,
    });
    bootstrap(&state)
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
async fn bootstrap(state: &AppState) -> anyhow::Result<()> {
    let namespaces = registry::namespaces();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        rest::create_internal(state, namespaces, None, obj)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let services = registry::find("", "v1", "services").expect("services are served");
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": state.allocators.first_ip().to_string(),
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": state.address.port()}]}
    });
    rest::create_internal(state, services, Some("default"), svc)
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
                    for info in RESOURCES {
                        state.cache(info).trim_history(rev);
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
        .route(
            "/version",
            get(|| async { json_response(StatusCode::OK, &discovery::version()) }),
        )
        .route("/metrics", get(metrics))
        .route("/api", get(core_versions))
        .route(
            "/apis",
            get(|| async { json_response(StatusCode::OK, &discovery::groups()) }),
        )
        .route("/api/{version}", get(core_resources))
        .route("/apis/{group}", get(api_group))
        .route("/apis/{group}/{version}", get(group_resources))
        .route("/openapi/v2", get(openapi_v2))
        .route(
            "/openapi/v3",
            get(|| async { json_response(StatusCode::OK, &discovery::openapi_v3_index()) }),
        )
        .route("/openapi/v3/{*path}", get(openapi_v3))
        .fallback(rest::dispatch)
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

async fn core_versions(State(state): State<Arc<AppState>>) -> Response {
    json_response(
        StatusCode::OK,
        &discovery::core_versions(&state.address.to_string()),
    )
}

fn found(doc: Option<Value>) -> Response {
    match doc {
        Some(d) => json_response(StatusCode::OK, &d),
        None => ApiError::not_found_path().into_response(),
    }
}

async fn core_resources(Path(version): Path<String>) -> Response {
    found(discovery::resources("", &version))
}

async fn api_group(Path(group): Path<String>) -> Response {
    found(discovery::group(&group))
}

async fn group_resources(Path((group, version)): Path<(String, String)>) -> Response {
    found(discovery::resources(&group, &version))
}

async fn openapi_v2(headers: axum::http::HeaderMap) -> Response {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("protobuf") {
        let content_type = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
        return (
            [(axum::http::header::CONTENT_TYPE, content_type)],
            discovery::openapi_v2_protobuf(),
        )
            .into_response();
    }
    json_response(StatusCode::OK, &discovery::openapi_v2_json())
}

async fn openapi_v3(Path(path): Path<String>) -> Response {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let doc = match segs.as_slice() {
        ["api", v] => discovery::openapi_v3_document("", v),
        ["apis", g, v] => discovery::openapi_v3_document(g, v),
        _ => None,
    };
    found(doc)
}
