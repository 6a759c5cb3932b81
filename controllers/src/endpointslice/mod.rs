//! The EndpointSlice controller: the slices of every Service with a selector, computed by
//! [`crate::endpoints::desired_slices`] from the shared pod store, written when they differ.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::runtime::Controller;
use kube::ResourceExt;

use crate::context::Context;
use crate::endpoints::{
    desired_slices, has_selector, services_in_namespace, MANAGED_BY, MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
};
use crate::reconcile::{self, ReconcileError};
use crate::registration::Registration;
use crate::util::{self, ignore_missing};

pub const NAME: &str = "endpointslice-controller";

pub const REGISTRATION: Registration = Registration {
    name: "endpointslice",
    reporter: NAME,
    start,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl ReconcileError for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(e) if reconcile::is_conflict(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

struct State {
    ctx: Arc<Context>,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
}

/// The slices this controller manages for the Service `name` (pure filter over the store).
fn managed_slices(all: &[EndpointSlice], namespace: &str, name: &str) -> Vec<EndpointSlice> {
    all.iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
        .filter(|s| {
            let labels = util::labels(&s.metadata);
            labels.get(SERVICE_NAME_LABEL).map(String::as_str) == Some(name)
                && labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        })
        .cloned()
        .collect()
}

async fn reconcile(svc: Arc<Service>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    if !has_selector(&svc) || util::is_deleting(&svc.metadata) {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let pods = util::in_namespace(&state.pods, &ns);
    let desired = desired_slices(&svc, &pods);
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = managed_slices(
        &util::in_namespace(&state.slices, &ns),
        &ns,
        &svc.name_any(),
    );
    for want in &desired {
        match existing
            .iter()
            .find(|e| e.metadata.name == want.metadata.name)
        {
            None => match api.create(&PostParams::default(), want).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            },
            Some(have) => {
                if have.endpoints != want.endpoints || have.ports != want.ports {
                    let mut next = have.clone();
                    next.endpoints = want.endpoints.clone();
                    next.ports = want.ports.clone();
                    // A stale copy fails on its resourceVersion (409) and is retried.
                    api.replace(&want.name_any(), &PostParams::default(), &next)
                        .await?;
                }
            }
        }
    }
    for stale in existing
        .iter()
        .filter(|e| !desired.iter().any(|d| d.metadata.name == e.metadata.name))
    {
        ignore_missing(
            api.delete(&stale.name_any(), &DeleteParams::default())
                .await
                .map(|_| ()),
        )?;
    }
    ctx.metrics.reconcile(NAME, true);
    Ok(Action::await_change())
}

fn start(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let slices = ctx.informers.get::<EndpointSlice>();
    let store = services.store();
    let metrics = ctx.metrics.clone();
    let state = Arc::new(State {
        ctx,
        pods: pods.store(),
        slices: slices.store(),
    });
    let controller = Controller::for_stream(services.stream(), services.store())
        .owns_stream(slices.stream())
        .watches_stream(pods.stream(), move |pod| {
            services_in_namespace(&pod, &store)
        });
    reconcile::drain(controller.run(reconcile, reconcile::error_policy(NAME, metrics), state))
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_services_own_slices_are_managed() {
        let slice = |name: &str, svc: &str, managed: &str| -> EndpointSlice {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "d", "labels": {
                    SERVICE_NAME_LABEL: svc, MANAGED_BY_LABEL: managed}},
                "addressType": "IPv4", "endpoints": []
            }))
            .unwrap()
        };
        let all = [
            slice("a", "web", MANAGED_BY),
            slice("b", "web", "someone-else"),
            slice("c", "db", MANAGED_BY),
        ];
        let mine = managed_slices(&all, "d", "web");
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].name_any(), "a");
    }
}
