//! core/v1 Event: any path-segment name, selectable on its involved object and source.

pub mod printer;

use k8s_openapi::api::core::v1::Event;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::ApiResult;
use crate::printers::Printer;
use crate::registry::strategy::{KindStrategy, NameRule, SelectableField};
use crate::registry::typed::typed_as_is;
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Event",
    plural: "events",
    singular: "event",
    namespaced: true,
    short_names: &["ev"],
    categories: &[],
    tracks_generation: false,
};

static FIELDS: &[SelectableField] = &[
    SelectableField::at("involvedObject.kind", "/involvedObject/kind"),
    SelectableField::at("involvedObject.namespace", "/involvedObject/namespace"),
    SelectableField::at("involvedObject.name", "/involvedObject/name"),
    SelectableField::at("involvedObject.uid", "/involvedObject/uid"),
    SelectableField::at("involvedObject.apiVersion", "/involvedObject/apiVersion"),
    SelectableField::at(
        "involvedObject.resourceVersion",
        "/involvedObject/resourceVersion",
    ),
    SelectableField::at("involvedObject.fieldPath", "/involvedObject/fieldPath"),
    SelectableField::at("reason", "/reason"),
    SelectableField::at("reportingComponent", "/reportingComponent"),
    SelectableField::at("source", "/source/component"),
    SelectableField::at("type", "/type"),
];

pub struct EventStrategy;

impl KindStrategy for EventStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed_as_is::<Event>(&INFO, obj)
    }

    /// Events are named after the objects they are about, nodes with dots included.
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn printer(&self) -> &'static Printer {
        &printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Event>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::METADATA_ONLY
    }
}
