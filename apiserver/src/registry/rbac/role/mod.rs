//! Role: rules for resources in one namespace.

pub mod printer;

use k8s_openapi::api::rbac::v1::Role;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::{ApiResult, Cause};
use crate::printers::Printer;
use crate::registry::strategy::{KindStrategy, NameRule, WriteContext};
use crate::registry::typed::typed_as_is;
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: super::GROUP,
    version: "v1",
    kind: "Role",
    plural: "roles",
    singular: "role",
    namespaced: true,
    short_names: &[],
    categories: &[],
    tracks_generation: false,
};

pub struct RoleStrategy;

impl KindStrategy for RoleStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed_as_is::<Role>(&INFO, obj)
    }

    // RBAC names are path segments (`system:kube-scheduler`), as in Kubernetes.
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        super::validate_rules(obj, true, causes);
    }

    fn check_writer(&self, writer: &WriteContext<'_>, obj: &Value) -> ApiResult<()> {
        super::escalation::check_role_write(writer, &INFO, obj)
    }

    fn printer(&self) -> &'static Printer {
        &printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Role>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::METADATA_ONLY
    }
}
