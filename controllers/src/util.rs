//! Pure helpers shared by the controllers: pod state predicates, selectors, owner references,
//! IntOrString scaling; and the two tiny write helpers every controller uses.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector as MetaSelector, ObjectMeta, OwnerReference,
};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Resource;
use skiff_common::LabelSelector;

/// A workload's selector that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InvalidSelector {
    #[error("invalid selector: {0}")]
    Parse(#[from] skiff_common::SelectorError),
    #[error("invalid selector: {0}")]
    Json(#[from] serde_json::Error),
}

/// An IntOrString that is neither a number nor a percentage.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for IntOrString: {0:?}")]
pub struct InvalidIntOrString(pub String);

/// A 404 means someone else already finished the job.
pub fn ignore_missing<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Write `desired` through the status subresource unless it already is the stored status; an
/// object deleted meanwhile is not an error.
pub async fn write_status<K, S>(
    api: &kube::Api<K>,
    name: &str,
    current: Option<&S>,
    desired: &S,
) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + PartialEq,
{
    if current == Some(desired) {
        return Ok(());
    }
    let patch = serde_json::json!({ "status": desired });
    ignore_missing(
        api.patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await,
    )
}

/// The selector of a workload, as a skiff label selector.
pub fn selector(sel: Option<&MetaSelector>) -> Result<LabelSelector, InvalidSelector> {
    match sel {
        None => Ok(LabelSelector::matches_nothing()),
        Some(s) => Ok(LabelSelector::from_json(&serde_json::to_value(s)?)?),
    }
}

/// `matchLabels` only, rendered as a `labelSelector` query string (for narrowing lists).
pub fn labels_query(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn labels(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

/// An owner reference marking `owner` as the managing controller.
pub fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

pub fn is_deleting(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

/// Not finished and not being deleted: a pod that counts toward a workload's replicas.
pub fn pod_is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !is_deleting(&pod.metadata) && !matches!(phase, Some("Succeeded") | Some("Failed"))
}

pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// When the pod's Ready condition became True, if it is True.
pub fn pod_ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(cond.last_transition_time.as_ref().map(|t| t.0))
}

pub fn pod_is_ready(pod: &Pod) -> bool {
    pod_ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn pod_is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match pod_ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => since + SignedDuration::from_secs(min_ready_seconds as i64) <= now,
    }
}

/// How long until a ready pod becomes available, when it is not yet.
pub fn pod_available_in(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<Duration> {
    let since = pod_ready_since(pod)??;
    let at = since + SignedDuration::from_secs(min_ready_seconds as i64);
    (at > now).then(|| until(at, now))
}

/// The objects of one namespace in a reflector store, cloned out of it (the pure planners take
/// plain objects).
pub fn in_namespace<K>(store: &kube::runtime::reflector::Store<K>, namespace: &str) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store
        .state()
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
        .map(|o| (**o).clone())
        .collect()
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

/// The time from `now` until `at` (zero when `at` has passed).
pub fn until(at: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or_default()
}

/// `value` as an absolute count of `total`: percentages scale (rounding up or down), integers stay.
pub fn scaled_value(
    value: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    total: i32,
    round_up: bool,
    default: &str,
) -> Result<i32, InvalidIntOrString> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let v = value
        .cloned()
        .unwrap_or_else(|| IntOrString::String(default.to_string()));
    match v {
        IntOrString::Int(i) => Ok(i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| InvalidIntOrString(s.clone()))?;
            let scaled = pct * total as i64;
            Ok(if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            } as i32)
        }
    }
}

/// The owners that care about an object: its controller if that is of `owner_kind`, or, for an
/// orphan, every owner in its namespace whose selector (`selector_of`) matches its labels.
pub fn interested_owners<K>(
    meta: &ObjectMeta,
    owner_kind: &str,
    store: &kube::runtime::reflector::Store<K>,
    selector_of: impl Fn(&K) -> Option<&MetaSelector>,
) -> Vec<kube::runtime::reflector::ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    use kube::runtime::reflector::ObjectRef;
    use kube::ResourceExt;
    let ns = meta.namespace.clone().unwrap_or_default();
    if let Some(r) = controller_ref(meta) {
        return if r.kind == owner_kind {
            vec![ObjectRef::new(&r.name).within(&ns)]
        } else {
            vec![]
        };
    }
    let labels = labels(meta);
    store
        .state()
        .iter()
        .filter(|o| o.namespace().as_deref() == Some(ns.as_str()))
        .filter(|o| selector(selector_of(o)).is_ok_and(|s| s.matches(&labels)))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn scaled_values_round_like_kubernetes() {
        let pct = IntOrString::String("25%".into());
        assert_eq!(scaled_value(Some(&pct), 10, true, "25%").unwrap(), 3);
        assert_eq!(scaled_value(Some(&pct), 10, false, "25%").unwrap(), 2);
        assert_eq!(
            scaled_value(Some(&IntOrString::Int(4)), 10, true, "25%").unwrap(),
            4
        );
        assert_eq!(scaled_value(None, 3, true, "25%").unwrap(), 1);
        assert_eq!(scaled_value(None, 3, false, "25%").unwrap(), 0);
        assert!(scaled_value(Some(&IntOrString::String("x".into())), 3, false, "25%").is_err());
    }
}
