//! Secret: `stringData` merged into `data`, type defaults to Opaque, selectable by type.

pub mod printer;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::{ApiResult, Cause};
use crate::printers::Printer;
use crate::registry::defaults::set_str;
use crate::registry::strategy::{KindStrategy, SelectableField};
use crate::registry::typed::typed;
use crate::registry::validation::{validate_data_keys, validate_immutable_data};
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Secret",
    plural: "secrets",
    singular: "secret",
    namespaced: true,
    short_names: &[],
    categories: &[],
    tracks_generation: false,
};

static FIELDS: &[SelectableField] = &[SelectableField::at("type", "/type")];

/// `stringData` is a write-only convenience: it is merged into `data` and dropped.
fn defaults(secret: &mut Secret) {
    set_str(&mut secret.type_, "Opaque");
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in string_data {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
}

pub struct SecretStrategy;

impl KindStrategy for SecretStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed(&INFO, obj, defaults)
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_data_keys(obj, causes);
    }

    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        validate_immutable_data(new, old, causes);
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Secret>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::METADATA_ONLY
    }
}
