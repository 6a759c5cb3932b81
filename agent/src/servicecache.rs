//! One cache of Services and EndpointSlices for the agent, shared by the service proxy
//! ([`crate::proxy`]) and the cluster DNS server ([`crate::dns`]) so that both answer from the
//! same view and the apiserver is watched once.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use tracing::warn;

/// The label an EndpointSlice names its Service with.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Reflector stores of all Services and EndpointSlices, and a counter of changes to them.
#[derive(Clone)]
pub struct ServiceCache {
    pub services: Store<Service>,
    pub slices: Store<EndpointSlice>,
    pub changes: tokio::sync::watch::Receiver<u64>,
    ready: tokio::sync::watch::Receiver<bool>,
}

impl ServiceCache {
    /// The cache and the future that keeps it filled (run it for as long as the cache is used).
    pub fn new(
        client: kube::Client,
    ) -> (ServiceCache, impl std::future::Future<Output = ()> + Send) {
        let (services, svc_writer) = reflector::store();
        let (slices, slice_writer) = reflector::store();
        let (tx, changes) = tokio::sync::watch::channel(0u64);
        let svc_stream = reflector::reflector(
            svc_writer,
            watcher(
                kube::Api::<Service>::all(client.clone()),
                Default::default(),
            ),
        )
        .default_backoff()
        .map(|r| r.map(|_| ()))
        .boxed();
        let slice_stream = reflector::reflector(
            slice_writer,
            watcher(kube::Api::<EndpointSlice>::all(client), Default::default()),
        )
        .default_backoff()
        .map(|r| r.map(|_| ()))
        .boxed();
        // kube's Store::wait_until_ready wakes only its latest waiter, so one task waits on
        // the stores and every reader of [`ServiceCache::ready`] waits on this flag instead.
        let (ready_tx, ready) = tokio::sync::watch::channel(false);
        let (svc_store, slice_store) = (services.clone(), slices.clone());
        let mark_ready = async move {
            let _ = svc_store.wait_until_ready().await;
            let _ = slice_store.wait_until_ready().await;
            let _ = ready_tx.send(true);
        };
        let drive_streams = async move {
            let mut both = futures::stream::select(svc_stream, slice_stream);
            while let Some(ev) = both.next().await {
                match ev {
                    Ok(()) => tx.send_modify(|n| *n += 1),
                    Err(e) => warn!(error = %e, "service/endpointslice watch error"),
                }
            }
        };
        let drive = async move {
            futures::join!(drive_streams, mark_ready);
        };
        (
            ServiceCache {
                services,
                slices,
                changes,
                ready,
            },
            drive,
        )
    }

    /// Wait until both stores hold a full list (any number of tasks may wait).
    pub async fn ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r).await;
    }
}
