//! SelfSubjectAccessReview: may the requesting user do this? (`kubectl auth can-i`)

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
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
    kind: "SelfSubjectAccessReview",
    plural: "selfsubjectaccessreviews",
    singular: "selfsubjectaccessreview",
    namespaced: false,
    short_names: &[],
    categories: &[],
    tracks_generation: false,
};

pub struct SelfSubjectAccessReviewStrategy;

impl KindStrategy for SelfSubjectAccessReviewStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed_as_is::<SelfSubjectAccessReview>(&INFO, obj)
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        super::validate_attributes(&obj["spec"], causes);
    }

    fn virtual_create(&self) -> Option<&dyn VirtualCreate> {
        Some(self)
    }

    fn printer(&self) -> &'static Printer {
        &super::printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<SelfSubjectAccessReview>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::METADATA_ONLY
    }
}

impl VirtualCreate for SelfSubjectAccessReviewStrategy {
    fn create(&self, req: VirtualRequest<'_>) -> ApiResult<Value> {
        Ok(super::review(req.authorizer, req.user, req.object))
    }
}
