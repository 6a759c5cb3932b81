//! ReplicaSet: a replicated pod template with an immutable selector; scale and status
//! subresources.

pub mod printer;

use k8s_openapi::api::apps::v1::ReplicaSet;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::{ApiResult, Cause};
use crate::printers::Printer;
use crate::registry::core::pod::{defaults::default_pod_spec, validation::validate_pod_spec};
use crate::registry::defaults::set;
use crate::registry::strategy::{KindStrategy, SelectableField, SubresourceDef, SCALE, STATUS};
use crate::registry::typed::typed;
use crate::registry::validation::{
    validate_labels, validate_non_negative, validate_selector_and_template,
};
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "ReplicaSet",
    plural: "replicasets",
    singular: "replicaset",
    namespaced: true,
    short_names: &["rs"],
    categories: &["all"],
    tracks_generation: true,
};

static FIELDS: &[SelectableField] = &[SelectableField::defaulting(
    "status.replicas",
    "/status/replicas",
    "0",
)];

static SUBRESOURCES: &[SubresourceDef] = &[STATUS, SCALE];

fn defaults(rs: &mut ReplicaSet) {
    let spec = rs.spec.get_or_insert_with(Default::default);
    set(&mut spec.replicas, 1);
    let template = spec.template.get_or_insert_with(Default::default);
    default_pod_spec(template.spec.get_or_insert_with(Default::default));
}

/// What Deployments and ReplicaSets check alike: counts, a selector that selects the
/// template, and a template whose pods always restart.
pub fn validate_replicated_template(spec: &Value, causes: &mut Vec<Cause>) {
    validate_non_negative(&spec["replicas"], "spec.replicas", causes);
    validate_non_negative(&spec["minReadySeconds"], "spec.minReadySeconds", causes);
    validate_selector_and_template(spec, true, causes);
    validate_labels(
        &spec["template"]["metadata"]["labels"],
        "spec.template.metadata.labels",
        causes,
    );
    validate_pod_spec(
        &spec["template"]["spec"],
        "spec.template.spec",
        &["Always"],
        causes,
    );
}

/// The selector of a replicated workload never changes.
pub fn validate_selector_unchanged(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    if new.pointer("/spec/selector") != old.pointer("/spec/selector") {
        causes.push(Cause::immutable("spec.selector"));
    }
}

pub struct ReplicaSetStrategy;

impl KindStrategy for ReplicaSetStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed(&INFO, obj, defaults)
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_replicated_template(&obj["spec"], causes);
    }

    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        validate_selector_unchanged(new, old, causes);
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<ReplicaSet>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::TEMPLATED_WORKLOAD
    }

    fn subresources(&self) -> &'static [SubresourceDef] {
        SUBRESOURCES
    }
}
