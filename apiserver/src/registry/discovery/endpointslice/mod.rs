//! EndpointSlice: the endpoints of a Service in slices, read by the proxy and DNS.

pub mod printer;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::ApiResult;
use crate::printers::Printer;
use crate::registry::defaults::set_str;
use crate::registry::strategy::KindStrategy;
use crate::registry::typed::typed;
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "discovery.k8s.io",
    version: "v1",
    kind: "EndpointSlice",
    plural: "endpointslices",
    singular: "endpointslice",
    namespaced: true,
    short_names: &[],
    categories: &[],
    tracks_generation: false,
};

fn defaults(slice: &mut EndpointSlice) {
    for port in slice.ports.iter_mut().flatten() {
        set_str(&mut port.protocol, "TCP");
    }
}

pub struct EndpointSliceStrategy;

impl KindStrategy for EndpointSliceStrategy {
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
        generator.subschema_for::<EndpointSlice>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::METADATA_ONLY
    }
}
