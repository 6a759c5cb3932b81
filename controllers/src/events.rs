//! Records core/v1 Events (the kind `kubectl describe` and `kubectl get events` read).
//!
//! kube-runtime's `Recorder` writes `events.k8s.io/v1` Events, which the skiff apiserver does
//! not serve, so the controllers write core/v1 Events themselves. Recording is best effort: a
//! failure is logged and never fails a reconcile.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Resource;

#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: String,
}

/// An event's type: Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl Recorder {
    pub fn new(client: kube::Client, component: &str) -> Recorder {
        Recorder {
            client,
            component: component.to_string(),
        }
    }

    /// Record an event about `obj` in the background.
    pub fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        message: String,
    ) {
        let event = build_event(&object_ref(obj), &self.component, type_, reason, message);
        let client = self.client.clone();
        tokio::spawn(async move {
            let ns = event
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let api: Api<Event> = Api::namespaced(client, &ns);
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(error = %e, "recording an event failed");
            }
        });
    }
}

pub fn object_ref<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    let meta = obj.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}

/// A core/v1 Event about `involved`, named as client-go's recorder names them.
pub fn build_event(
    involved: &ObjectReference,
    component: &str,
    type_: EventType,
    reason: &str,
    message: String,
) -> Event {
    let now = Timestamp::now();
    let nanos = now.as_nanosecond();
    let name = format!(
        "{}.{:x}",
        involved.name.as_deref().unwrap_or("unknown"),
        nanos
    );
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            // Events about cluster-scoped objects live in "default", as in Kubernetes.
            namespace: Some(
                involved
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            ),
            ..Default::default()
        },
        involved_object: involved.clone(),
        reason: Some(reason.to_string()),
        message: Some(message),
        type_: Some(
            match type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .into(),
        ),
        source: Some(EventSource {
            component: Some(component.to_string()),
            host: None,
        }),
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(component.to_string()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: None::<MicroTime>,
        count: Some(1),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_about_cluster_objects_go_to_default() {
        let r = ObjectReference {
            kind: Some("Node".into()),
            name: Some("n1".into()),
            ..Default::default()
        };
        let e = build_event(
            &r,
            "node-controller",
            EventType::Warning,
            "NodeNotReady",
            "gone".into(),
        );
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert!(e.metadata.name.unwrap().starts_with("n1."));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.count, Some(1));
    }
}
