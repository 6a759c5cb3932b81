//! Wiring: etcd, the registry and its watch caches, bootstrap objects, the HTTP router, and
//! shutdown. No request handling lives here.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
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

use crate::auth::authn::bootstrap_token::BootstrapTokenAuthenticator;
use crate::auth::authn::jwt::{self, TokenKeys};
use crate::auth::authn::service_account::{
    BoundKind, ServiceAccountAuthenticator, ServiceAccountTokens,
};
use crate::auth::authn::token_file::TokenFile;
use crate::auth::authn::Authenticator;
use crate::auth::authz::node::NodeAuthorizer;
use crate::auth::authz::rbac::{self as rbac_authz, RbacAuthorizer};
use crate::auth::authz::{self, bootstrap as policy, AlwaysAllow, MastersGroup};
use crate::auth::{self, Auth};
use crate::config::{Config, SecureServing, Security};
use crate::endpoints::{self, discovery as discovery_http};
use crate::metrics::Metrics;
use crate::registry::core::{namespace, pod, secret, service, serviceaccount};
use crate::registry::generic::create::create_internal;
use crate::registry::rbac;
use crate::registry::{builtin, Registry};
use crate::state::AppState;
use crate::storage::encryption::{self, Encryption};
use crate::storage::Store;

/// A running apiserver.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// `https`, or `http` in the insecure test mode.
    pub scheme: &'static str,
    /// The cert dir (CA, admin and component kubeconfigs) when serving TLS.
    pub cert_dir: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    stopped: Option<oneshot::Receiver<()>>,
    task: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
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
    let kinds = builtin::kinds(&registry_config);
    let store = match &config.encryption_provider_config {
        Some(path) => {
            encryption::ensure_config(path)?;
            let prefix_of = |name: &str| {
                let (plural, group) = name.split_once('.').unwrap_or((name, ""));
                kinds
                    .iter()
                    .map(|k| k.info())
                    .find(|i| i.plural == plural && i.group == group)
                    .map(|i| i.storage_prefix())
            };
            let encryption = Encryption::load(path, prefix_of)?;
            tracing::info!(config = %path.display(), "encrypting at rest");
            store.with_encryption(encryption)
        }
        None => store,
    };
    let registry = Registry::new(kinds, builtin::admission(), &store, config.watch_cache_size);
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
    let (auth, tls) = match &config.security {
        Security::Secure(secure) => {
            let (auth, tls) = secure_serving(secure, &config, addr, &registry)?;
            (auth, Some(tls))
        }
        Security::InsecurePlainHttpForTesting => {
            tracing::warn!(
                "serving plain HTTP without authentication: every request acts as system:masters (test-only mode)"
            );
            (
                Auth {
                    authenticator: None,
                    authorizer: Box::new(AlwaysAllow),
                    // Tokens are still issued (pods mount them) but nothing checks them.
                    service_account_tokens: Arc::new(ServiceAccountTokens::new(
                        TokenKeys::ephemeral(jwt::DEFAULT_ISSUER)?,
                    )),
                    agent_client: None,
                },
                None,
            )
        }
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = Arc::new(AppState {
        config: config.clone(),
        registry,
        store: store.clone(),
        metrics: Metrics::default(),
        shutdown: shutdown_rx.clone(),
        address: addr,
        auth,
    });
    bootstrap(&state, &registry_config)
        .await
        .context("creating the default namespaces")?;
    caches_caught_up(&state)
        .await
        .context("waiting for the watch caches")?;
    if let Some(every) = config.compaction_interval {
        background.push(tokio::spawn(compact_periodically(state.clone(), every)));
    }

    let app = router(state);
    let (stopped_tx, stopped_rx) = oneshot::channel();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let task = tokio::spawn(async move {
        skiff_component::https::serve(listener, tls, app, shutdown_rx).await;
        let _ = stopped_tx.send(());
    });
    tracing::info!(%addr, scheme, "skiff-apiserver serving");
    Ok(RunningServer {
        addr,
        scheme,
        cert_dir: match &config.security {
            Security::Secure(s) => Some(s.cert_dir.clone()),
            Security::InsecurePlainHttpForTesting => None,
        },
        shutdown: shutdown_tx,
        stopped: Some(stopped_rx),
        task,
        background,
    })
}

/// The cert dir (created on first start), the TLS configuration and the authenticators and
/// authorizers of a secure apiserver.
fn secure_serving(
    secure: &SecureServing,
    config: &Config,
    addr: SocketAddr,
    registry: &Registry,
) -> anyhow::Result<(Auth, Arc<rustls::ServerConfig>)> {
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    for san in &secure.tls_sans {
        match san.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(san.clone()),
        }
    }
    if !addr.ip().is_unspecified() {
        ips.push(addr.ip());
    }
    let service_ip = config.registry().allocators().first_ip();
    let names =
        skiff_pki::ServingNames::for_apiserver(IpAddr::V4(service_ip), "cluster.local", &dns, &ips);
    let local = if addr.ip().is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    let server_url = format!("https://{}", SocketAddr::new(local, addr.port()));
    let pki = skiff_pki::ClusterPki::ensure(&secure.cert_dir, &names, &server_url)
        .with_context(|| format!("preparing the cert dir {}", secure.cert_dir.display()))?;
    let serving = pki.serving()?;
    let kubelet_client = pki.kubelet_client()?;
    let tls = skiff_pki::tls::server_config(
        &serving.cert_pem,
        &serving.key_pem,
        Some(pki.ca_pem()),
        skiff_pki::tls::ClientAuth::Optional,
    )?;
    let token_file = match &secure.token_auth_file {
        Some(path) => Some(TokenFile::load(path)?),
        None => None,
    };
    let mut service_account_tokens = ServiceAccountTokens::new(TokenKeys::from_pem(
        &pki.service_account_key()?,
        jwt::DEFAULT_ISSUER,
    )?);
    if let Some(floor) = secure.min_token_expiration_for_testing {
        service_account_tokens =
            service_account_tokens.with_min_expiration_for_testing(floor.as_secs() as i64);
    }
    let service_account_tokens = Arc::new(service_account_tokens);
    let bound = |info| BoundKind {
        info,
        cache: registry.of(info).storage.cache.clone(),
    };
    let service_account_authenticator = ServiceAccountAuthenticator {
        tokens: service_account_tokens.clone(),
        service_accounts: bound(&serviceaccount::INFO),
        pods: bound(&pod::INFO),
        secrets: bound(&secret::INFO),
        store: registry.of(&serviceaccount::INFO).storage.store.clone(),
    };
    let auth = Auth {
        authenticator: Some(Authenticator {
            token_file,
            token_authenticators: vec![
                Box::new(service_account_authenticator),
                Box::new(BootstrapTokenAuthenticator {
                    secrets: registry.of(&secret::INFO).storage.cache.clone(),
                    secret_info: &secret::INFO,
                }),
            ],
        }),
        authorizer: Box::new(authz::Union(vec![
            Box::new(MastersGroup),
            Box::new(NodeAuthorizer {
                pods: registry.of(&pod::INFO).storage.cache.clone(),
                pod_info: &pod::INFO,
            }),
            Box::new(RbacAuthorizer::new(rbac_caches(registry))),
        ])),
        service_account_tokens,
        agent_client: Some(Arc::new(skiff_pki::tls::client_config_unverified_server(
            (&kubelet_client.cert_pem, &kubelet_client.key_pem),
        )?)),
    };
    Ok((auth, Arc::new(tls)))
}

fn rbac_caches(registry: &Registry) -> rbac_authz::Caches {
    let cache = |info| registry.of(info).storage.cache.clone();
    rbac_authz::Caches {
        roles: cache(&rbac::role::INFO),
        cluster_roles: cache(&rbac::clusterrole::INFO),
        bindings: cache(&rbac::rolebinding::INFO),
        cluster_bindings: cache(&rbac::clusterrolebinding::INFO),
    }
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
    let service_ip = config.allocators().first_ip();
    let svc = service::kubernetes_service(&service_ip.to_string(), state.address.port());
    create_internal(registry.of(&service::INFO), Some("default"), svc)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The default RBAC policy: created when missing, never overwritten (a cluster's own
    // changes to it are kept).
    for role in policy::cluster_roles() {
        create_internal(registry.of(&rbac::clusterrole::INFO), None, role)
            .await
            .map_err(|e| anyhow::anyhow!("bootstrap ClusterRole: {e}"))?;
    }
    for binding in policy::cluster_role_bindings() {
        create_internal(registry.of(&rbac::clusterrolebinding::INFO), None, binding)
            .await
            .map_err(|e| anyhow::anyhow!("bootstrap ClusterRoleBinding: {e}"))?;
    }
    Ok(())
}

/// Wait until every watch cache has seen what etcd holds now, bootstrap objects included, so
/// the first requests are authorized with the default policy and read what is stored (as
/// kube-apiserver is not ready before its informers have synced).
async fn caches_caught_up(state: &AppState) -> anyhow::Result<()> {
    let revision = state.store.current_revision().await?;
    for cache in state.registry.caches() {
        cache.wait_for(revision, Duration::from_secs(30)).await?;
    }
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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::filter,
        ))
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
