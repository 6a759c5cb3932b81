//! The ServiceAccount controller: every active namespace has a `default` ServiceAccount (pods
//! run as it unless they name another); deleted, it comes back. As kube-controller-manager's
//! serviceaccount controller.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::Controller;
use kube::ResourceExt;

use crate::context::Context;
use crate::reconcile;
use crate::registration::Registration;
use crate::util;

pub const NAME: &str = "serviceaccount-controller";
pub const DEFAULT: &str = "default";

pub const REGISTRATION: Registration = Registration {
    name: "serviceaccount",
    reporter: NAME,
    start,
};

type Error = reconcile::ApiCallError;

struct State {
    ctx: Arc<Context>,
    accounts: Store<ServiceAccount>,
}

async fn reconcile(ns: Arc<Namespace>, state: Arc<State>) -> Result<Action, Error> {
    if util::is_deleting(&ns.metadata) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    if state
        .accounts
        .get(&ObjectRef::new(DEFAULT).within(&name))
        .is_some()
    {
        return Ok(Action::await_change());
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            namespace: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(state.ctx.client.clone(), &name);
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => state.ctx.metrics.reconcile(NAME, true),
        // Created a moment ago and not in the store yet, or the namespace is going away.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

fn start(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let namespaces = ctx.informers.get::<Namespace>();
    let accounts = ctx.informers.get::<ServiceAccount>();
    let metrics = ctx.metrics.clone();
    let state = Arc::new(State {
        ctx,
        accounts: accounts.store(),
    });
    let controller = Controller::for_stream(namespaces.stream(), namespaces.store())
        .watches_stream(accounts.stream(), |sa: ServiceAccount| {
            (sa.name_any() == DEFAULT)
                .then(|| sa.namespace().map(|ns| ObjectRef::new(&ns)))
                .flatten()
        });
    reconcile::drain(controller.run(reconcile, reconcile::error_policy(NAME, metrics), state))
        .boxed()
}
