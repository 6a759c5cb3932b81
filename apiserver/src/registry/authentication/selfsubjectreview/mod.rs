//! SelfSubjectReview: who does the server say I am? (`kubectl auth whoami`)

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::ApiResult;
use crate::printers::Printer;
use crate::registry::strategy::{KindStrategy, VirtualCreate, VirtualRequest};
use crate::registry::typed::typed_as_is;
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: super::GROUP,
    version: "v1",
    kind: "SelfSubjectReview",
    plural: "selfsubjectreviews",
    singular: "selfsubjectreview",
    namespaced: false,
    short_names: &[],
    categories: &[],
    tracks_generation: false,
};

pub struct SelfSubjectReviewStrategy;

impl KindStrategy for SelfSubjectReviewStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed_as_is::<SelfSubjectReview>(&INFO, obj)
    }

    fn virtual_create(&self) -> Option<&dyn VirtualCreate> {
        Some(self)
    }

    fn printer(&self) -> &'static Printer {
        &crate::registry::authorization::printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<SelfSubjectReview>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::METADATA_ONLY
    }
}

impl VirtualCreate for SelfSubjectReviewStrategy {
    fn create(&self, req: VirtualRequest<'_>) -> ApiResult<Value> {
        let mut obj = req.object;
        let user = req.user;
        let mut info = serde_json::json!({ "username": user.name, "groups": user.groups });
        if !user.uid.is_empty() {
            info["uid"] = serde_json::json!(user.uid);
        }
        if !user.extra.is_empty() {
            info["extra"] = serde_json::json!(user.extra);
        }
        obj["status"] = serde_json::json!({ "userInfo": info });
        Ok(obj)
    }
}
