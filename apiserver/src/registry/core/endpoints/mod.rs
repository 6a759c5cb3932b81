//! Endpoints: the legacy per-Service address list, written by the endpoints controller.

pub mod printer;

use k8s_openapi::api::core::v1::Endpoints;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::ApiResult;
use crate::printers::Printer;
use crate::registry::defaults::set_str;
use crate::registry::strategy::KindStrategy;
use crate::registry::typed::typed;
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Endpoints",
    plural: "endpoints",
    singular: "endpoints",
    namespaced: true,
    short_names: &["ep"],
    categories: &[],
    tracks_generation: false,
};

fn defaults(ep: &mut Endpoints) {
    for subset in ep.subsets.iter_mut().flatten() {
        for port in subset.ports.iter_mut().flatten() {
            set_str(&mut port.protocol, "TCP");
        }
    }
}

pub struct EndpointsStrategy;

impl KindStrategy for EndpointsStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed(&INFO, obj, defaults)
    }

    fn printer(&self) -> &'static Printer {
        &printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Endpoints>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::METADATA_ONLY
    }
}
