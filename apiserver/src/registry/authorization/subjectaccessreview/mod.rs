//! SubjectAccessReview: may the given user do this? (asked by components, e.g. an agent authorizing the apiserver).

use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::{ApiResult, Cause};
use crate::printers::Printer;
use crate::registry::strategy::{KindStrategy, VirtualCreate, VirtualRequest};
use crate::registry::typed::typed_as_is;
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: super::GROUP,
    version: "v1",
    kind: "SubjectAccessReview",
    plural: "subjectaccessreviews",
    singular: "subjectaccessreview",
    namespaced: false,
    short_names: &[],
    categories: &[],
    tracks_generation: false,
};

pub struct SubjectAccessReviewStrategy;

impl KindStrategy for SubjectAccessReviewStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed_as_is::<SubjectAccessReview>(&INFO, obj)
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        super::validate_attributes(&obj["spec"], causes);
        let spec = &obj["spec"];
        let user = spec.get("user").and_then(Value::as_str).unwrap_or("");
        let groups = spec
            .get("groups")
            .and_then(Value::as_array)
            .is_some_and(|g| !g.is_empty());
        if user.is_empty() && !groups {
            causes.push(Cause::invalid(
                "spec.user",
                "",
                "at least one of user or group must be specified",
            ));
        }
    }

    fn virtual_create(&self) -> Option<&dyn VirtualCreate> {
        Some(self)
    }

    fn printer(&self) -> &'static Printer {
        &super::printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<SubjectAccessReview>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::METADATA_ONLY
    }
}

impl VirtualCreate for SubjectAccessReviewStrategy {
    fn create(&self, req: VirtualRequest<'_>) -> ApiResult<Value> {
        let spec = &req.object["spec"];
        let strings = |field: &str| -> Vec<String> {
            spec.get(field)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut subject = crate::auth::user::UserInfo::new(
            spec.get("user").and_then(Value::as_str).unwrap_or(""),
            strings("groups"),
        );
        subject.uid = spec
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Ok(super::review(req.authorizer, &subject, req.object))
    }
}
