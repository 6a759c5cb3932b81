//! The root CA publisher: every active namespace has a `kube-root-ca.crt` ConfigMap holding
//! the cluster CA (`ca.crt`), which the ServiceAccount token volume projects into pods so
//! in-cluster clients can verify the apiserver. Deleted or edited, it is put back. As
//! kube-controller-manager's root-ca-cert-publisher.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::Controller;
use kube::ResourceExt;

use crate::context::Context;
use crate::reconcile;
use crate::registration::Registration;
use crate::util;

pub const NAME: &str = "root-ca-cert-publisher";
pub const CONFIG_MAP: &str = "kube-root-ca.crt";
pub const KEY: &str = "ca.crt";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

pub const REGISTRATION: Registration = Registration {
    name: "root-ca-cert-publisher",
    reporter: NAME,
    start,
};

type Error = reconcile::ApiCallError;

struct State {
    ctx: Arc<Context>,
    config_maps: Store<ConfigMap>,
    bundle: String,
}

/// The ConfigMap `namespace` should have (pure).
pub fn desired(namespace: &str, bundle: &str, existing: Option<&ConfigMap>) -> ConfigMap {
    let mut annotations = existing
        .and_then(|cm| cm.metadata.annotations.clone())
        .unwrap_or_default();
    annotations.insert("kubernetes.io/description".into(), DESCRIPTION.into());
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIG_MAP.into()),
            namespace: Some(namespace.into()),
            annotations: Some(annotations),
            labels: existing.and_then(|cm| cm.metadata.labels.clone()),
            resource_version: existing.and_then(|cm| cm.metadata.resource_version.clone()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(KEY.to_string(), bundle.to_string())])),
        ..Default::default()
    }
}

fn up_to_date(cm: &ConfigMap, bundle: &str) -> bool {
    cm.data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .map(String::as_str)
        == Some(bundle)
        && cm.binary_data.is_none()
}

async fn reconcile(ns: Arc<Namespace>, state: Arc<State>) -> Result<Action, Error> {
    if util::is_deleting(&ns.metadata) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let existing = state
        .config_maps
        .get(&ObjectRef::new(CONFIG_MAP).within(&name));
    if existing
        .as_deref()
        .is_some_and(|cm| up_to_date(cm, &state.bundle))
    {
        return Ok(Action::await_change());
    }
    let cm = desired(&name, &state.bundle, existing.as_deref());
    let api: Api<ConfigMap> = Api::namespaced(state.ctx.client.clone(), &name);
    let written = match existing {
        None => api.create(&PostParams::default(), &cm).await.map(drop),
        Some(_) => api
            .replace(CONFIG_MAP, &PostParams::default(), &cm)
            .await
            .map(drop),
    };
    match written {
        Ok(()) => state.ctx.metrics.reconcile(NAME, true),
        // Already there (the store trails) or the namespace is terminating.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

fn start(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let namespaces = ctx.informers.get::<Namespace>();
    let config_maps = ctx.informers.get::<ConfigMap>();
    let metrics = ctx.metrics.clone();
    let bundle = ctx.config.root_ca.clone().unwrap_or_else(|| {
        tracing::warn!("no root CA configured (--root-ca-file or a kubeconfig CA): publishing an empty {CONFIG_MAP}");
        String::new()
    });
    let state = Arc::new(State {
        ctx,
        config_maps: config_maps.store(),
        bundle,
    });
    let controller = Controller::for_stream(namespaces.stream(), namespaces.store())
        .watches_stream(config_maps.stream(), |cm: ConfigMap| {
            (cm.name_any() == CONFIG_MAP)
                .then(|| cm.namespace().map(|ns| ObjectRef::new(&ns)))
                .flatten()
        });
    reconcile::drain(controller.run(reconcile, reconcile::error_policy(NAME, metrics), state))
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_bundle_is_put_back_keeping_other_annotations() {
        let mut edited = desired("dev", "old", None);
        edited
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("team".into(), "a".into());
        assert!(!up_to_date(&edited, "CA"));
        let fixed = desired("dev", "CA", Some(&edited));
        assert!(up_to_date(&fixed, "CA"));
        assert_eq!(fixed.metadata.annotations.unwrap()["team"], "a");
    }
}
