//! What every request handler shares: configuration, the registry (kinds and their storage),
//! etcd, metrics and the shutdown signal.

use std::net::SocketAddr;

use tokio::sync::watch;

use crate::auth::Auth;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::storage::Store;

pub struct AppState {
    pub config: Config,
    pub registry: Registry,
    pub store: Store,
    pub metrics: Metrics,
    pub shutdown: watch::Receiver<bool>,
    pub address: SocketAddr,
    pub auth: Auth,
}
