//! ClusterRole: rules for the whole cluster, or gathered from other ClusterRoles by label (aggregationRule).

use k8s_openapi::api::rbac::v1::ClusterRole;
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
    kind: "ClusterRole",
    plural: "clusterroles",
    singular: "clusterrole",
    namespaced: false,
    short_names: &[],
    categories: &[],
    tracks_generation: false,
};

pub struct ClusterRoleStrategy;

impl KindStrategy for ClusterRoleStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed_as_is::<ClusterRole>(&INFO, obj)
    }

    // RBAC names are path segments (`system:kube-scheduler`), as in Kubernetes.
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        super::validate_rules(obj, false, causes);
    }

    fn check_writer(&self, writer: &WriteContext<'_>, obj: &Value) -> ApiResult<()> {
        super::escalation::check_role_write(writer, &INFO, obj)
    }

    fn printer(&self) -> &'static Printer {
        &super::role::printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<ClusterRole>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::METADATA_ONLY
    }
}
