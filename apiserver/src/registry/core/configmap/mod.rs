//! ConfigMap: data keys validated; `immutable` freezes the data.

pub mod printer;

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::{ApiResult, Cause};
use crate::printers::Printer;
use crate::registry::strategy::KindStrategy;
use crate::registry::typed::typed_as_is;
use crate::registry::validation::{validate_data_keys, validate_immutable_data};
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "ConfigMap",
    plural: "configmaps",
    singular: "configmap",
    namespaced: true,
    short_names: &["cm"],
    categories: &[],
    tracks_generation: false,
};

pub struct ConfigMapStrategy;

impl KindStrategy for ConfigMapStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed_as_is::<ConfigMap>(&INFO, obj)
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_data_keys(obj, causes);
    }

    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        validate_immutable_data(new, old, causes);
    }

    fn printer(&self) -> &'static Printer {
        &printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<ConfigMap>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::METADATA_ONLY
    }
}
