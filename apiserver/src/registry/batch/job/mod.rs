//! Job: run-to-completion pods; the selector defaults to the Job's own UID, and selector and
//! template are immutable.

pub mod printer;

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::{ApiResult, Cause};
use crate::printers::Printer;
use crate::registry::core::pod::{defaults::default_pod_spec, validation::validate_pod_spec};
use crate::registry::defaults::{set, set_str};
use crate::registry::strategy::{KindStrategy, SelectableField, SubresourceDef, STATUS};
use crate::registry::typed::typed;
use crate::registry::validation::{validate_non_negative, validate_selector_and_template};
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "batch",
    version: "v1",
    kind: "Job",
    plural: "jobs",
    singular: "job",
    namespaced: true,
    short_names: &[],
    categories: &["all"],
    tracks_generation: true,
};

static FIELDS: &[SelectableField] = &[SelectableField::defaulting(
    "status.successful",
    "/status/successful",
    "0",
)];

static SUBRESOURCES: &[SubresourceDef] = &[STATUS];

/// Jobs get a selector on their own UID unless `manualSelector` is set, as Kubernetes does.
fn defaults(job: &mut Job) {
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let spec = job.spec.get_or_insert_with(Default::default);
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    set(&mut spec.parallelism, 1);
    set(&mut spec.backoff_limit, 6);
    set_str(&mut spec.completion_mode, "NonIndexed");
    set(&mut spec.suspend, false);
    set_str(&mut spec.pod_replacement_policy, "TerminatingOrFailed");
    if spec.manual_selector != Some(true) && spec.selector.is_none() && !uid.is_empty() {
        spec.selector = Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "batch.kubernetes.io/controller-uid".to_string(),
                uid.clone(),
            )])),
            match_expressions: None,
        });
        let labels = spec
            .template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new);
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("job-name", &name),
        ] {
            labels.entry(k.to_string()).or_insert_with(|| v.clone());
        }
    }
    default_pod_spec(spec.template.spec.get_or_insert_with(Default::default));
}

pub struct JobStrategy;

impl KindStrategy for JobStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed(&INFO, obj, defaults)
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        let spec = &obj["spec"];
        validate_non_negative(&spec["parallelism"], "spec.parallelism", causes);
        validate_non_negative(&spec["completions"], "spec.completions", causes);
        validate_non_negative(&spec["backoffLimit"], "spec.backoffLimit", causes);
        validate_selector_and_template(spec, false, causes);
        validate_pod_spec(
            &spec["template"]["spec"],
            "spec.template.spec",
            &["OnFailure", "Never"],
            causes,
        );
    }

    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        for (pointer, field) in [
            ("/spec/selector", "spec.selector"),
            ("/spec/template", "spec.template"),
        ] {
            if new.pointer(pointer) != old.pointer(pointer) {
                causes.push(Cause::immutable(field));
            }
        }
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Job>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::TEMPLATED_WORKLOAD
    }

    fn subresources(&self) -> &'static [SubresourceDef] {
        SUBRESOURCES
    }
}
