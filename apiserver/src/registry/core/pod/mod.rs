//! Pod: defaults (`defaults.rs`) and validation (`validation.rs`) shared with every pod
//! template, graceful deletion of pods on nodes, and the subresources a pod has: binding (the
//! scheduler), eviction (drain), log (proxied to the node's agent) and status.

pub mod binding;
pub mod defaults;
pub mod eviction;
pub mod log;
pub mod printer;
pub mod validation;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::{ApiResult, Cause};
use crate::printers::Printer;
use crate::registry::strategy::{
    DeletionRules, KindStrategy, SelectableField, SubresourceDef, STATUS,
};
use crate::registry::typed::typed;
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    singular: "pod",
    namespaced: true,
    short_names: &["po"],
    categories: &["all"],
    tracks_generation: true,
};

static FIELDS: &[SelectableField] = &[
    SelectableField::at("spec.nodeName", "/spec/nodeName"),
    SelectableField::at("spec.schedulerName", "/spec/schedulerName"),
    SelectableField::at("spec.restartPolicy", "/spec/restartPolicy"),
    SelectableField::at("spec.serviceAccountName", "/spec/serviceAccountName"),
    SelectableField::defaulting("spec.hostNetwork", "/spec/hostNetwork", "false"),
    SelectableField::at("status.phase", "/status/phase"),
    SelectableField::at("status.podIP", "/status/podIP"),
    SelectableField::at("status.nominatedNodeName", "/status/nominatedNodeName"),
];

static SUBRESOURCES: &[SubresourceDef] = &[STATUS, binding::BINDING, log::LOG, eviction::EVICTION];

/// Restart policies a bare pod may have.
const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];

pub struct PodStrategy;

impl KindStrategy for PodStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, creating: bool) -> ApiResult<Value> {
        typed(&INFO, obj, |p: &mut Pod| defaults::pod(p, creating))
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validation::validate_pod_spec(&obj["spec"], "spec", RESTART_POLICIES, causes);
    }

    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        validation::validate_pod_update(new, old, causes);
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Pod>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::POD
    }

    fn subresources(&self) -> &'static [SubresourceDef] {
        SUBRESOURCES
    }

    fn deletion(&self) -> DeletionRules {
        DeletionRules {
            returns_object: true,
            ..DeletionRules::default()
        }
    }

    /// A pod on a node is stopped by its agent, which removes it once the containers are gone;
    /// a pod that never ran, or has finished, goes at once.
    fn grace_period(&self, obj: &Value, requested: Option<i64>) -> i64 {
        let on_node = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            obj.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded") | Some("Failed")
        );
        let default = obj
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        if on_node && !finished {
            requested.unwrap_or(default).max(0)
        } else {
            0
        }
    }
}
