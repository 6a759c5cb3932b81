//! Endpoints and EndpointSlices for every Service with a selector: the selected pods' IPs,
//! ready ones as addresses and the rest as not-ready addresses, each port resolved per pod
//! (named target ports through the pod's container ports).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::Controller;
use kube::ResourceExt;

use crate::context::Context;
use crate::reconcile::{self, ReconcileError};
use crate::registration::Registration;
use crate::util;

pub const NAME: &str = "endpoints-controller";

pub const REGISTRATION: Registration = Registration {
    name: "endpoints",
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
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// A service port resolved for one pod: (name, port, protocol).
type Resolved = (Option<String>, i32, String);

/// The service's ports as this pod serves them; `None` when a port cannot be resolved.
fn resolve_ports(svc: &Service, pod: &Pod) -> Vec<Resolved> {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut out = Vec::new();
    for p in spec.ports.unwrap_or_default() {
        let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        let port = match &p.target_port {
            None => Some(p.port),
            Some(IntOrString::Int(i)) => Some(*i),
            Some(IntOrString::String(name)) => match name.parse::<i32>() {
                Ok(i) => Some(i),
                Err(_) => pod
                    .spec
                    .iter()
                    .flat_map(|s| &s.containers)
                    .flat_map(|c| c.ports.iter().flatten())
                    .find_map(|cp| {
                        (cp.name.as_deref() == Some(name.as_str())
                            && cp.protocol.as_deref().unwrap_or("TCP") == protocol)
                            .then_some(cp.container_port)
                    }),
            },
        };
        if let Some(port) = port {
            out.push((p.name.clone(), port, protocol));
        }
    }
    out
}

/// The pods a service selects that can be endpoints, with whether they are ready and terminating.
fn selected<'a>(svc: &Service, pods: &'a [Pod]) -> Vec<(&'a Pod, bool, bool)> {
    let Some(selector) = svc.spec.as_ref().and_then(|s| s.selector.clone()) else {
        return vec![];
    };
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true);
    let mut out: Vec<(&Pod, bool, bool)> = pods
        .iter()
        .filter(|p| {
            let l = util::labels(&p.metadata);
            selector.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .is_some_and(|ip| !ip.is_empty())
        })
        .filter(|p| !matches!(util::pod_phase(p), "Succeeded" | "Failed"))
        .map(|p| {
            let terminating = util::is_deleting(&p.metadata);
            (p, publish_not_ready || util::pod_is_ready(p), terminating)
        })
        .collect();
    out.sort_by_key(|(p, _, _)| p.name_any());
    out
}

fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

fn pod_ip(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

/// The subsets of a Service's Endpoints (pods grouped by the ports they resolve to).
pub fn desired_subsets(svc: &Service, pods: &[Pod]) -> Vec<EndpointSubset> {
    let has_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| !p.is_empty());
    let mut groups: BTreeMap<Vec<Resolved>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true);
    for (pod, ready, terminating) in selected(svc, pods) {
        if terminating && !publish_not_ready {
            continue;
        }
        let ports = resolve_ports(svc, pod);
        if has_ports && ports.is_empty() {
            continue;
        }
        let addr = EndpointAddress {
            ip: pod_ip(pod),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_ref(pod)),
            hostname: None,
        };
        let g = groups.entry(ports).or_default();
        if ready {
            g.0.push(addr);
        } else {
            g.1.push(addr);
        }
    }
    groups
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then(|| {
                ports
                    .into_iter()
                    .map(|(name, port, protocol)| EndpointPort {
                        name,
                        port,
                        protocol: Some(protocol),
                        app_protocol: None,
                    })
                    .collect()
            }),
        })
        .collect()
}

fn short_hash(s: &str) -> String {
    let mut h: u32 = 2166136261;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(16777619);
    }
    crate::deployment::template::safe_encode(&h.to_string())
        .chars()
        .take(5)
        .collect()
}

/// The EndpointSlices a Service should have: one per distinct resolved port set, named after
/// the service and a hash of the ports so that reconciles find them again.
pub fn desired_slices(svc: &Service, pods: &[Pod]) -> Vec<EndpointSlice> {
    let svc_name = svc.name_any();
    let mut groups: BTreeMap<Vec<Resolved>, Vec<Endpoint>> = BTreeMap::new();
    for (pod, ready, terminating) in selected(svc, pods) {
        let ports = resolve_ports(svc, pod);
        let has_ports = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .is_some_and(|p| !p.is_empty());
        if has_ports && ports.is_empty() {
            continue;
        }
        groups.entry(ports).or_default().push(Endpoint {
            addresses: vec![pod_ip(pod)],
            conditions: Some(EndpointConditions {
                ready: Some(ready && !terminating),
                serving: Some(ready),
                terminating: Some(terminating),
            }),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_ref(pod)),
            ..Default::default()
        });
    }
    groups
        .into_iter()
        .map(|(ports, endpoints)| {
            let key = format!("{ports:?}");
            let prefix: String = svc_name.chars().take(56).collect();
            EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(format!("{prefix}-{}", short_hash(&key))),
                    namespace: svc.namespace(),
                    labels: Some(BTreeMap::from([
                        (SERVICE_NAME_LABEL.to_string(), svc_name.clone()),
                        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
                    ])),
                    owner_references: Some(vec![util::owner_ref(svc)]),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints,
                ports: Some(
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| SlicePort {
                            name,
                            port: Some(port),
                            protocol: Some(protocol),
                            app_protocol: None,
                        })
                        .collect(),
                ),
            }
        })
        .collect()
}

pub(crate) fn has_selector(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty())
}

/// Every selector Service in the pod's namespace (a pod's labels may have just stopped
/// matching, and the watch shows only the new labels, so all of them are checked).
pub(crate) fn services_in_namespace(pod: &Pod, store: &Store<Service>) -> Vec<ObjectRef<Service>> {
    let ns = pod.namespace();
    store
        .state()
        .iter()
        .filter(|s| s.namespace() == ns && has_selector(s))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

struct State {
    ctx: Arc<Context>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
}

async fn reconcile(svc: Arc<Service>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    if !has_selector(&svc) || util::is_deleting(&svc.metadata) {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let pods = util::in_namespace(&state.pods, &ns);
    let subsets = desired_subsets(&svc, &pods);
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let labels = svc.metadata.labels.clone();
    let existing = state
        .endpoints
        .get(&ObjectRef::new(&svc.name_any()).within(&ns));
    match existing {
        None => {
            let ep = Endpoints {
                metadata: ObjectMeta {
                    name: Some(svc.name_any()),
                    namespace: Some(ns.clone()),
                    labels,
                    owner_references: Some(vec![util::owner_ref(svc.as_ref())]),
                    ..Default::default()
                },
                subsets: (!subsets.is_empty()).then_some(subsets),
            };
            match api.create(&PostParams::default(), &ep).await {
                Ok(_) => {}
                // Not in our store yet: look again once it is.
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    return Ok(Action::requeue(std::time::Duration::from_millis(100)))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Some(ep) => {
            let want = (!subsets.is_empty()).then_some(subsets);
            if ep.subsets != want || ep.metadata.labels != labels {
                let mut ep = (*ep).clone();
                ep.subsets = want;
                ep.metadata.labels = labels;
                // A stale copy fails on its resourceVersion (409) and is retried.
                api.replace(&svc.name_any(), &PostParams::default(), &ep)
                    .await?;
            }
        }
    }
    ctx.metrics.reconcile(NAME, true);
    Ok(Action::await_change())
}

fn start(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let endpoints = ctx.informers.get::<Endpoints>();
    let store = services.store();
    let metrics = ctx.metrics.clone();
    let state = Arc::new(State {
        ctx,
        pods: pods.store(),
        endpoints: endpoints.store(),
    });
    let controller = Controller::for_stream(services.stream(), services.store())
        .owns_stream(endpoints.stream())
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

    fn svc(target: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "s"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": target}]}
        }))
        .unwrap()
    }

    fn pod(name: &str, ip: Option<&str>, ready: bool, port_name: &str, port: i32) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i", "ports": [{"name": port_name, "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    #[test]
    fn ready_and_not_ready_pods_are_split() {
        let pods = vec![
            pod("a", Some("10.0.0.1"), true, "http", 8080),
            pod("b", Some("10.0.0.2"), false, "http", 8080),
            pod("c", None, true, "http", 8080),
        ];
        let subsets = desired_subsets(&svc(json!(8080)), &pods);
        assert_eq!(subsets.len(), 1);
        let s = &subsets[0];
        assert_eq!(
            s.addresses
                .as_ref()
                .unwrap()
                .iter()
                .map(|a| a.ip.as_str())
                .collect::<Vec<_>>(),
            ["10.0.0.1"]
        );
        assert_eq!(s.not_ready_addresses.as_ref().unwrap()[0].ip, "10.0.0.2");
        assert_eq!(
            s.addresses.as_ref().unwrap()[0].node_name.as_deref(),
            Some("n1")
        );
        assert_eq!(
            s.addresses.as_ref().unwrap()[0]
                .target_ref
                .as_ref()
                .unwrap()
                .name
                .as_deref(),
            Some("a")
        );
        assert_eq!(s.ports.as_ref().unwrap()[0].port, 8080);
    }

    #[test]
    fn named_target_ports_resolve_per_pod() {
        let pods = vec![
            pod("a", Some("10.0.0.1"), true, "web", 8080),
            pod("b", Some("10.0.0.2"), true, "web", 9090),
            pod("c", Some("10.0.0.3"), true, "other", 1),
        ];
        let subsets = desired_subsets(&svc(json!("web")), &pods);
        let ports: Vec<i32> = subsets
            .iter()
            .map(|s| s.ports.as_ref().unwrap()[0].port)
            .collect();
        assert_eq!(ports, [8080, 9090]);
        let slices = desired_slices(&svc(json!("web")), &pods);
        assert_eq!(slices.len(), 2);
        assert_ne!(slices[0].metadata.name, slices[1].metadata.name);
        assert_eq!(slices[0].endpoints[0].addresses, ["10.0.0.1"]);
    }

    #[test]
    fn slices_mark_terminating_pods() {
        let mut p = pod("a", Some("10.0.0.1"), true, "http", 80);
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        let slices = desired_slices(&svc(json!(80)), std::slice::from_ref(&p));
        let c = slices[0].endpoints[0].conditions.clone().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(false), Some(true), Some(true))
        );
        assert!(desired_subsets(&svc(json!(80)), &[p]).is_empty());
    }
}
