//! Node: registered by its agent, with its status; selectable on `spec.unschedulable`.

pub mod printer;

use k8s_openapi::api::core::v1::Node;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::{ApiError, ApiResult};
use crate::printers::Printer;
use crate::registry::strategy::{
    KindStrategy, SelectableField, SubresourceDef, WriteContext, STATUS,
};
use crate::registry::typed::typed_as_is;
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Node",
    plural: "nodes",
    singular: "node",
    namespaced: false,
    short_names: &["no"],
    categories: &[],
    tracks_generation: false,
};

static FIELDS: &[SelectableField] = &[SelectableField::defaulting(
    "spec.unschedulable",
    "/spec/unschedulable",
    "false",
)];

static SUBRESOURCES: &[SubresourceDef] = &[STATUS];

pub struct NodeStrategy;

impl KindStrategy for NodeStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed_as_is::<Node>(&INFO, obj)
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    /// NodeRestriction: a node's identity writes only its own Node.
    fn check_writer(&self, writer: &WriteContext<'_>, obj: &Value) -> ApiResult<()> {
        let name = crate::object::name(obj);
        match writer.user.node_name() {
            Some(node) if node != name => Err(ApiError::forbidden(
                &INFO,
                name,
                &format!("node {node:?} is not allowed to modify node {name:?}"),
            )),
            _ => Ok(()),
        }
    }

    fn printer(&self) -> &'static Printer {
        &printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Node>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::NODE
    }

    fn subresources(&self) -> &'static [SubresourceDef] {
        SUBRESOURCES
    }

    /// An agent registers its node with the status it observed.
    fn keeps_status_on_create(&self) -> bool {
        true
    }
}

/// The agent's address and port, from the Node's status.
pub fn agent_endpoint(node: &Value) -> Option<(String, u64)> {
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)?;
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)?;
    let pick = |ty: &str| {
        addresses
            .iter()
            .find(|a| a["type"] == ty)
            .and_then(|a| a["address"].as_str())
            .map(str::to_string)
    };
    let address = pick("InternalIP").or_else(|| pick("Hostname"))?;
    Some((address, port))
}
