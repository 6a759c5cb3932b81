//! Lease: leader election and node heartbeats; any path-segment name (node names have dots).

pub mod printer;

use k8s_openapi::api::coordination::v1::Lease;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::{ApiError, ApiResult};
use crate::printers::Printer;
use crate::registry::strategy::{KindStrategy, NameRule, WriteContext};
use crate::registry::typed::typed_as_is;
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "coordination.k8s.io",
    version: "v1",
    kind: "Lease",
    plural: "leases",
    singular: "lease",
    namespaced: true,
    short_names: &[],
    categories: &[],
    tracks_generation: false,
};

/// Where nodes keep their heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

pub struct LeaseStrategy;

impl KindStrategy for LeaseStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed_as_is::<Lease>(&INFO, obj)
    }

    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    /// NodeRestriction: a node's identity writes only its own Lease in `kube-node-lease`.
    fn check_writer(&self, writer: &WriteContext<'_>, obj: &Value) -> ApiResult<()> {
        let name = crate::object::name(obj);
        match writer.user.node_name() {
            Some(node)
                if node != name || crate::object::namespace(obj) != Some(NODE_LEASE_NAMESPACE) =>
            {
                Err(ApiError::forbidden(
                    &INFO,
                    name,
                    &format!(
                        "node {node:?} can only access its own lease in the {NODE_LEASE_NAMESPACE:?} namespace"
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    fn printer(&self) -> &'static Printer {
        &printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Lease>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::METADATA_ONLY
    }
}
