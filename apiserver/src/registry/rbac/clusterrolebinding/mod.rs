//! ClusterRoleBinding: grants a ClusterRole to subjects across the cluster.

use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
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
    kind: "ClusterRoleBinding",
    plural: "clusterrolebindings",
    singular: "clusterrolebinding",
    namespaced: false,
    short_names: &[],
    categories: &[],
    tracks_generation: false,
};

pub struct ClusterRoleBindingStrategy;

impl KindStrategy for ClusterRoleBindingStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed_as_is::<ClusterRoleBinding>(&INFO, obj)
    }

    // RBAC names are path segments (`system:kube-scheduler`), as in Kubernetes.
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        super::validate_binding(obj, false, causes);
    }

    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        super::validate_role_ref_unchanged(new, old, causes);
    }

    fn check_writer(&self, writer: &WriteContext<'_>, obj: &Value) -> ApiResult<()> {
        super::escalation::check_binding_write(writer, &INFO, obj)
    }

    fn printer(&self) -> &'static Printer {
        &super::rolebinding::printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<ClusterRoleBinding>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::METADATA_ONLY
    }
}
