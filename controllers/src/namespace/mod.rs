//! The namespace controller: a namespace being deleted has everything in it deleted; once
//! nothing is left, its `kubernetes` finalizer is removed through the `finalize` subresource
//! and the apiserver removes the namespace.
//!
//! The one controller that still LISTs: only while a namespace is terminating, because
//! "nothing is left" must be a fresh answer from the apiserver (a store may lag behind), as
//! Kubernetes' namespace deleter does.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::controller::Action;
use kube::runtime::Controller;
use kube::ResourceExt;

use crate::context::Context;
use crate::reconcile::{self, ReconcileError};
use crate::registration::Registration;
use crate::util::{self, ignore_missing};

pub const NAME: &str = "namespace-controller";

pub const REGISTRATION: Registration = Registration {
    name: "namespace",
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
pub const FINALIZER: &str = "kubernetes";

/// Every namespaced kind the apiserver serves, emptied in this order (workloads first, so
/// their controllers do not recreate what was just deleted).
pub const NAMESPACED: &[(&str, &str, &str, &str)] = &[
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "ReplicaSet", "replicasets"),
    ("batch", "v1", "Job", "jobs"),
    ("", "v1", "Pod", "pods"),
    ("", "v1", "Service", "services"),
    ("", "v1", "Endpoints", "endpoints"),
    ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "Secret", "secrets"),
    ("", "v1", "ServiceAccount", "serviceaccounts"),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
    ),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    ("coordination.k8s.io", "v1", "Lease", "leases"),
    ("", "v1", "Event", "events"),
];

/// What to do with a namespace, given how many objects remain in it.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Not being deleted (or already finalized): nothing.
    Nothing,
    /// Delete what is left and look again.
    DeleteContents,
    /// Empty: remove the finalizer.
    Finalize,
}

pub fn step(ns: &Namespace, remaining: usize) -> Step {
    let has_finalizer = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    if !util::is_deleting(&ns.metadata) || !has_finalizer {
        Step::Nothing
    } else if remaining > 0 {
        Step::DeleteContents
    } else {
        Step::Finalize
    }
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action> {
    if step(&ns, 1) == Step::Nothing {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let mut remaining = 0;
    for (g, v, k, p) in NAMESPACED {
        let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), p);
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &name, &ar);
        let items = api.list(&ListParams::default()).await?.items;
        remaining += items.len();
        for obj in items
            .iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
        {
            match api
                .delete(&obj.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    match step(&ns, remaining) {
        Step::Finalize => {
            let api: Api<Namespace> = Api::all(ctx.client.clone());
            let mut finalized = (*ns).clone();
            if let Some(spec) = finalized.spec.as_mut() {
                spec.finalizers = Some(
                    spec.finalizers
                        .take()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|f| f != FINALIZER)
                        .collect(),
                );
            }
            ignore_missing(
                api.replace_subresource("finalize", &name, &PostParams::default(), &finalized)
                    .await,
            )?;
            ctx.metrics.reconcile(NAME, true);
            Ok(Action::await_change())
        }
        // Terminating pods and finalizers take their time: look again soon.
        _ => Ok(Action::requeue(Duration::from_millis(500))),
    }
}

fn start(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let namespaces = ctx.informers.get::<Namespace>();
    let metrics = ctx.metrics.clone();
    let controller = Controller::for_stream(namespaces.stream(), namespaces.store());
    reconcile::drain(controller.run(reconcile, reconcile::error_policy(NAME, metrics), ctx)).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ns(deleting: bool, finalizers: &[&str]) -> Namespace {
        let mut n: Namespace = serde_json::from_value(
            json!({"metadata": {"name": "x"}, "spec": {"finalizers": finalizers}}),
        )
        .unwrap();
        if deleting {
            n.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ));
        }
        n
    }

    #[test]
    fn namespaces_are_emptied_then_finalized() {
        assert_eq!(step(&ns(false, &["kubernetes"]), 3), Step::Nothing);
        assert_eq!(step(&ns(true, &["kubernetes"]), 3), Step::DeleteContents);
        assert_eq!(step(&ns(true, &["kubernetes"]), 0), Step::Finalize);
        assert_eq!(step(&ns(true, &[]), 0), Step::Nothing);
    }
}
