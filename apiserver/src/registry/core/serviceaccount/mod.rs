//! ServiceAccount: an identity for processes in pods, and its `token` subresource (the
//! TokenRequest API that `kubectl create token` and the agent use).

pub mod printer;
pub mod token;

use k8s_openapi::api::core::v1::ServiceAccount;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::ApiResult;
use crate::printers::Printer;
use crate::registry::strategy::{KindStrategy, SubresourceDef};
use crate::registry::typed::typed_as_is;
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "ServiceAccount",
    plural: "serviceaccounts",
    singular: "serviceaccount",
    namespaced: true,
    short_names: &["sa"],
    categories: &[],
    tracks_generation: false,
};

/// How RBAC subjects and token claims name this kind.
pub const SUBJECT_KIND: &str = "ServiceAccount";

/// The ServiceAccount every namespace has and pods run as unless they name another.
pub const DEFAULT: &str = "default";

static SUBRESOURCES: &[SubresourceDef] = &[token::TOKEN];

pub struct ServiceAccountStrategy;

impl KindStrategy for ServiceAccountStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed_as_is::<ServiceAccount>(&INFO, obj)
    }

    fn printer(&self) -> &'static Printer {
        &printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<ServiceAccount>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::SERVICE_ACCOUNT
    }

    fn subresources(&self) -> &'static [SubresourceDef] {
        SUBRESOURCES
    }
}

/// Whether pods of this ServiceAccount get its token mounted unless they say otherwise.
pub fn automounts_token(sa: &Value) -> bool {
    sa["automountServiceAccountToken"].as_bool().unwrap_or(true)
}
