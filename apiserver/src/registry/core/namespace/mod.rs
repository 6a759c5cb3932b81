//! Namespace: DNS-label names, born Active with the `kubernetes` finalizer; deleting one marks
//! it Terminating until the namespace controller has emptied it and cleared `spec.finalizers`
//! through the `finalize` subresource. The system namespaces cannot be deleted.

pub mod finalize;
pub mod printer;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, NamespaceStatus};
use serde_json::{json, Value};
use skiff_common::strategic_merge::schema;

use crate::error::ApiResult;
use crate::printers::Printer;
use crate::registry::defaults::{set, set_str};
use crate::registry::strategy::{
    DeletionRules, KindStrategy, NameRule, SelectableField, SubresourceDef, STATUS,
};
use crate::registry::typed::typed;
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    singular: "namespace",
    namespaced: false,
    short_names: &["ns"],
    categories: &[],
    tracks_generation: false,
};

/// The namespaces that can never be deleted.
pub const SYSTEM: &[&str] = &["default", "kube-system", "kube-public"];

/// The namespaces the server creates at start-up.
pub const BOOTSTRAP: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

static FIELDS: &[SelectableField] = &[SelectableField::at("status.phase", "/status/phase")];

static SUBRESOURCES: &[SubresourceDef] = &[STATUS, finalize::FINALIZE];

fn defaults(ns: &mut Namespace) {
    let name = ns.metadata.name.clone().unwrap_or_default();
    ns.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert("kubernetes.io/metadata.name".into(), name);
    let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
    set(&mut spec.finalizers, vec!["kubernetes".to_string()]);
    let status = ns.status.get_or_insert_with(NamespaceStatus::default);
    set_str(&mut status.phase, "Active");
}

/// A new namespace object, for the server's bootstrap.
pub fn new_object(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": INFO.kind, "metadata": {"name": name}})
}

/// Whether creating content in this namespace must be refused: it is being deleted.
pub fn is_terminating(ns: &Value) -> bool {
    crate::object::is_deleting(ns) || ns.pointer("/status/phase") == Some(&json!("Terminating"))
}

pub struct NamespaceStrategy;

impl KindStrategy for NamespaceStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed(&INFO, obj, defaults)
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Namespace>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::NAMESPACE
    }

    fn subresources(&self) -> &'static [SubresourceDef] {
        SUBRESOURCES
    }

    fn keeps_status_on_create(&self) -> bool {
        true
    }

    fn deletion(&self) -> DeletionRules {
        DeletionRules {
            protected_names: SYSTEM,
            always_finalizes: true,
            returns_object: true,
        }
    }

    fn on_marked_for_deletion(&self, obj: &mut Value) {
        obj["status"]["phase"] = json!("Terminating");
    }

    fn held_by_spec(&self, obj: &Value) -> bool {
        obj.pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
    }
}
