//! The one core/v1 Event recorder (what `kubectl describe` and `kubectl get events` read).
//!
//! Like client-go's recorder, a repeat of the same event (same object, type, reason and
//! message, reported by the same component) within [`AGGREGATION_WINDOW`] does not create a
//! new Event: the existing one is PATCHed with a higher `count`, a new `lastTimestamp` and its
//! `series`. Recording is best effort: failures are logged and never fail the caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Resource;

/// Repeats within this window are counted on one Event.
pub const AGGREGATION_WINDOW: SignedDuration = SignedDuration::from_mins(10);
/// Remembered events beyond this many are pruned (oldest first), as client-go's LRU does.
const CACHE_LIMIT: usize = 4096;

/// Who reports: `reportingController`/`source.component`, `reportingInstance`/`source.host`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reporter {
    pub controller: String,
    pub instance: Option<String>,
}

impl Reporter {
    pub fn new(controller: impl Into<String>) -> Reporter {
        Reporter {
            controller: controller.into(),
            instance: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Normal,
    Warning,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Normal => "Normal",
            EventKind::Warning => "Warning",
        }
    }
}

/// What makes two events "the same" for aggregation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventKey {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
    pub field_path: Option<String>,
    pub type_: EventKind,
    pub reason: String,
    pub message: String,
}

impl EventKey {
    pub fn new(regarding: &ObjectReference, type_: EventKind, reason: &str, message: &str) -> Self {
        EventKey {
            api_version: regarding.api_version.clone(),
            kind: regarding.kind.clone(),
            namespace: regarding.namespace.clone(),
            name: regarding.name.clone(),
            uid: regarding.uid.clone(),
            field_path: regarding.field_path.clone(),
            type_,
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }
}

/// An Event this recorder wrote and may count repeats on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub namespace: String,
    pub name: String,
    pub count: i32,
    pub last: Timestamp,
}

/// What to do with an event, given the last time the same one was recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Aggregation {
    Create,
    /// PATCH the existing Event to this count.
    Count {
        namespace: String,
        name: String,
        count: i32,
    },
}

/// The pure aggregation rule.
pub fn aggregate(previous: Option<&Seen>, now: Timestamp) -> Aggregation {
    match previous {
        Some(seen) if now.duration_since(seen.last) <= AGGREGATION_WINDOW => Aggregation::Count {
            namespace: seen.namespace.clone(),
            name: seen.name.clone(),
            count: seen.count + 1,
        },
        _ => Aggregation::Create,
    }
}

/// A reference to `obj` for [`Recorder::publish`].
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

/// A new core/v1 Event, named `<object>.<hex nanoseconds>` as client-go names them. Events
/// about cluster-scoped objects live in "default", as in Kubernetes.
pub fn new_event(
    regarding: &ObjectReference,
    reporter: &Reporter,
    type_: EventKind,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Event {
    let name = format!(
        "{}.{:x}",
        regarding.name.as_deref().unwrap_or("unknown"),
        now.as_nanosecond()
    );
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(event_namespace(regarding)),
            ..Default::default()
        },
        involved_object: regarding.clone(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some(type_.as_str().into()),
        source: Some(EventSource {
            component: Some(reporter.controller.clone()),
            host: reporter.instance.clone(),
        }),
        reporting_component: Some(reporter.controller.clone()),
        reporting_instance: Some(
            reporter
                .instance
                .clone()
                .unwrap_or_else(|| reporter.controller.clone()),
        ),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Default::default()
    }
}

fn event_namespace(regarding: &ObjectReference) -> String {
    regarding
        .namespace
        .clone()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// The merge patch that counts one more repeat.
pub fn count_patch(count: i32, now: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "count": count,
        "lastTimestamp": Time(now),
        "series": {"count": count, "lastObservedTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(now)},
    })
}

/// Records core/v1 Events for one reporter. Cheap to clone; clones share the aggregation cache.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    reporter: Reporter,
    seen: Arc<Mutex<HashMap<EventKey, Seen>>>,
}

impl Recorder {
    pub fn new(client: kube::Client, reporter: Reporter) -> Recorder {
        Recorder {
            client,
            reporter,
            seen: Arc::default(),
        }
    }

    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// Record an event about `regarding`; a repeat is counted on the existing Event.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventKind,
        reason: &str,
        message: &str,
    ) {
        let key = EventKey::new(regarding, type_, reason, message);
        let now = Timestamp::now();
        let decision = {
            let seen = self.seen.lock().expect("event cache lock");
            aggregate(seen.get(&key), now)
        };
        let written = match decision {
            Aggregation::Count {
                namespace,
                name,
                count,
            } => {
                let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
                match api
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(count_patch(count, now)),
                    )
                    .await
                {
                    Ok(_) => Ok((namespace, name, count)),
                    // The Event expired or was deleted: start a new one.
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        self.create(regarding, type_, reason, message, now).await
                    }
                    Err(e) => Err(e),
                }
            }
            Aggregation::Create => self.create(regarding, type_, reason, message, now).await,
        };
        match written {
            Ok((namespace, name, count)) => {
                let mut seen = self.seen.lock().expect("event cache lock");
                if seen.len() >= CACHE_LIMIT {
                    prune(&mut seen);
                }
                seen.insert(
                    key,
                    Seen {
                        namespace,
                        name,
                        count,
                        last: now,
                    },
                );
            }
            Err(e) => tracing::debug!(error = %e, reason, "recording an event failed"),
        }
    }

    /// Record an event about `obj` (see [`Recorder::publish`]).
    pub async fn publish_for<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventKind,
        reason: &str,
        message: &str,
    ) {
        self.publish(&object_ref(obj), type_, reason, message).await
    }

    async fn create(
        &self,
        regarding: &ObjectReference,
        type_: EventKind,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) -> Result<(String, String, i32), kube::Error> {
        let event = new_event(regarding, &self.reporter, type_, reason, message, now);
        let namespace = event_namespace(regarding);
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let created = api.create(&PostParams::default(), &event).await?;
        Ok((namespace, created.metadata.name.unwrap_or_default(), 1))
    }
}

/// Drop at least the older half of the cache.
fn prune(seen: &mut HashMap<EventKey, Seen>) {
    let mut times: Vec<Timestamp> = seen.values().map(|s| s.last).collect();
    times.sort();
    let cutoff = times[times.len() / 2];
    seen.retain(|_, s| s.last > cutoff);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_ref() -> ObjectReference {
        ObjectReference {
            kind: Some("Node".into()),
            name: Some("n1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn events_about_cluster_objects_go_to_default() {
        let e = new_event(
            &node_ref(),
            &Reporter::new("node-controller"),
            EventKind::Warning,
            "NodeNotReady",
            "gone",
            Timestamp::now(),
        );
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert!(e.metadata.name.unwrap().starts_with("n1."));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.count, Some(1));
        assert_eq!(e.reporting_instance.as_deref(), Some("node-controller"));
    }

    #[test]
    fn repeats_within_the_window_are_counted() {
        let now = Timestamp::now();
        let seen = Seen {
            namespace: "default".into(),
            name: "n1.1".into(),
            count: 2,
            last: now - SignedDuration::from_mins(9),
        };
        assert_eq!(
            aggregate(Some(&seen), now),
            Aggregation::Count {
                namespace: "default".into(),
                name: "n1.1".into(),
                count: 3
            }
        );
        let old = Seen {
            last: now - SignedDuration::from_mins(11),
            ..seen
        };
        assert_eq!(aggregate(Some(&old), now), Aggregation::Create);
        assert_eq!(aggregate(None, now), Aggregation::Create);
    }

    #[test]
    fn a_different_message_is_a_different_event() {
        let r = node_ref();
        let a = EventKey::new(&r, EventKind::Warning, "NodeNotReady", "a");
        let b = EventKey::new(&r, EventKind::Warning, "NodeNotReady", "b");
        assert_ne!(a, b);
        assert_eq!(
            a,
            EventKey::new(&r, EventKind::Warning, "NodeNotReady", "a")
        );
    }

    #[test]
    fn pruning_drops_at_least_the_older_half() {
        let now = Timestamp::now();
        let mut seen = HashMap::new();
        for i in 0..4 {
            seen.insert(
                EventKey::new(&node_ref(), EventKind::Normal, "R", &i.to_string()),
                Seen {
                    namespace: "default".into(),
                    name: format!("n1.{i}"),
                    count: 1,
                    last: now + SignedDuration::from_secs(i),
                },
            );
        }
        prune(&mut seen);
        assert_eq!(seen.len(), 1);
    }
}
