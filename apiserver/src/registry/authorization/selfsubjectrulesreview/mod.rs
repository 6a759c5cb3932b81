//! SelfSubjectRulesReview: what may the requesting user do in a namespace? (`kubectl auth can-i --list`)

use k8s_openapi::api::authorization::v1::SelfSubjectRulesReview;
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
    kind: "SelfSubjectRulesReview",
    plural: "selfsubjectrulesreviews",
    singular: "selfsubjectrulesreview",
    namespaced: false,
    short_names: &[],
    categories: &[],
    tracks_generation: false,
};

pub struct SelfSubjectRulesReviewStrategy;

impl KindStrategy for SelfSubjectRulesReviewStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed_as_is::<SelfSubjectRulesReview>(&INFO, obj)
    }

    fn virtual_create(&self) -> Option<&dyn VirtualCreate> {
        Some(self)
    }

    fn printer(&self) -> &'static Printer {
        &super::printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<SelfSubjectRulesReview>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::METADATA_ONLY
    }
}

impl VirtualCreate for SelfSubjectRulesReviewStrategy {
    fn create(&self, req: VirtualRequest<'_>) -> ApiResult<Value> {
        let mut obj = req.object;
        let namespace = obj["spec"]["namespace"].as_str().unwrap_or("").to_string();
        let rules = req.authorizer.rules_for(req.user, &namespace);
        let (resource, non_resource): (Vec<_>, Vec<_>) = rules
            .into_iter()
            .partition(|r| r.non_resource_urls.is_empty());
        obj["status"] = serde_json::json!({
            "resourceRules": resource.iter().map(|r| serde_json::json!({
                "verbs": r.verbs,
                "apiGroups": r.api_groups,
                "resources": r.resources,
                "resourceNames": r.resource_names,
            })).collect::<Vec<_>>(),
            "nonResourceRules": non_resource.iter().map(|r| serde_json::json!({
                "verbs": r.verbs,
                "nonResourceURLs": r.non_resource_urls,
            })).collect::<Vec<_>>(),
            "incomplete": false,
        });
        Ok(obj)
    }
}
