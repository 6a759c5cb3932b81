//! The per-kind strategy: everything that differs between kinds, in one trait, so that the
//! generic create/update/delete flow (`registry::generic`), the HTTP endpoints, discovery and
//! OpenAPI never name a kind. Modelled on Kubernetes' `pkg/registry/<group>/<kind>/strategy.go`.

use std::collections::HashSet;

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use futures::future::BoxFuture;
use serde_json::Value;
use skiff_common::SchemaNode;

use super::{Registry, Resource};
use crate::error::{ApiResult, Cause};
use crate::params::Params;
use crate::printers::Printer;
use crate::resource::ResourceInfo;
use crate::storage::SideKeys;

/// Which names a kind's objects may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// An RFC 1123 subdomain (most kinds).
    Subdomain,
    /// An RFC 1123 label (Namespace, Service: their names become DNS labels).
    Label,
    /// Any single path segment (Event, Lease: named after nodes and objects with dots).
    PathSegment,
}

/// A field that list and watch requests may select on, beyond metadata.name/namespace.
#[derive(Debug)]
pub struct SelectableField {
    pub name: &'static str,
    /// JSON pointer to the value.
    pub pointer: &'static str,
    /// How Kubernetes renders the field when it is absent (booleans and counters: their zero).
    pub absent: Option<&'static str>,
}

impl SelectableField {
    pub const fn at(name: &'static str, pointer: &'static str) -> Self {
        SelectableField {
            name,
            pointer,
            absent: None,
        }
    }

    pub const fn defaulting(
        name: &'static str,
        pointer: &'static str,
        absent: &'static str,
    ) -> Self {
        SelectableField {
            name,
            pointer,
            absent: Some(absent),
        }
    }
}

/// How deletes of a kind behave beyond the generic rules (finalizers, propagation policy).
#[derive(Debug, Default, Clone, Copy)]
pub struct DeletionRules {
    /// Names that may never be deleted.
    pub protected_names: &'static [&'static str],
    /// Every delete goes through a marked, finalizing phase first (Namespace).
    pub always_finalizes: bool,
    /// A completed delete answers with the last state of the object instead of a Status, as
    /// Kubernetes does for a few kinds.
    pub returns_object: bool,
}

/// What a write allocates and releases as side keys, and which of the new keys the client
/// asked for by value (a collision on those is the client's error, not a reason to pick again).
#[derive(Debug, Default)]
pub struct AllocationPlan {
    pub side: SideKeys,
    pub requested: HashSet<String>,
}

/// Cluster-unique values a kind allocates in the same etcd transaction as its objects
/// (a Service's ClusterIP and NodePorts).
pub trait Allocation: Send + Sync {
    /// Fill in and reserve what `obj` needs, given what it held before (`old`) and the keys
    /// found taken by earlier attempts.
    fn plan(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        taken: &HashSet<String>,
    ) -> Result<AllocationPlan, Vec<Cause>>;
    /// The side keys a stored object holds, released when it is deleted.
    fn held_keys(&self, obj: &Value) -> Vec<String>;
    /// The cause reported when a value the client asked for is taken.
    fn taken_cause(&self, key: &str, creating: bool) -> Cause;
    /// Forget random picks that turned out taken, so the next plan picks again.
    fn forget_taken(&self, obj: &mut Value, taken: &HashSet<String>);
}

/// A subresource served under `<plural>/<name>/<sub>`, with its discovery metadata.
pub struct SubresourceDef {
    pub name: &'static str,
    /// Kind, group and version of the subresource's body, as discovery reports them
    /// (empty: the parent's).
    pub kind: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub verbs: &'static [&'static str],
    pub handler: SubresourceHandler,
}

impl std::fmt::Debug for SubresourceDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Who serves a subresource.
pub enum SubresourceHandler {
    /// `status`: get, update and patch of the status half of the object.
    Status,
    /// `scale`: autoscaling/v1 Scale over spec.replicas.
    Scale,
    /// Served by the kind itself (binding, eviction, log, finalize).
    Custom(&'static dyn CustomSubresource),
}

pub const STATUS: SubresourceDef = SubresourceDef {
    name: "status",
    kind: "",
    group: "",
    version: "",
    verbs: &["get", "patch", "update"],
    handler: SubresourceHandler::Status,
};

pub const SCALE: SubresourceDef = SubresourceDef {
    name: "scale",
    kind: "Scale",
    group: "autoscaling",
    version: "v1",
    verbs: &["get", "patch", "update"],
    handler: SubresourceHandler::Scale,
};

/// One request to a custom subresource.
pub struct SubresourceRequest<'a> {
    pub registry: &'a Registry,
    pub resource: &'a Resource,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub params: &'a Params,
    pub body: &'a [u8],
    /// Who the request acts as.
    pub user: &'a crate::auth::user::UserInfo,
    /// TLS to agents (`None`: plain HTTP, the insecure test mode).
    pub agent_client: Option<&'a std::sync::Arc<rustls::ClientConfig>>,
    /// Signs tokens for `serviceaccounts/token`.
    pub service_account_tokens: &'a crate::auth::authn::service_account::ServiceAccountTokens,
}

impl SubresourceRequest<'_> {
    pub fn key(&self) -> String {
        self.resource.info().key(self.namespace, self.name)
    }
}

/// A create-only resource whose objects are computed from the request and never stored (the
/// access reviews, SelfSubjectReview): POST returns the object with its status filled in.
pub trait VirtualCreate: Send + Sync {
    fn create(&self, req: VirtualRequest<'_>) -> ApiResult<Value>;
}

/// What a [`VirtualCreate`] answers from.
pub struct VirtualRequest<'a> {
    pub user: &'a crate::auth::user::UserInfo,
    pub authorizer: &'a dyn crate::auth::authz::Authorizer,
    pub namespace: Option<&'a str>,
    /// The decoded, defaulted and validated object.
    pub object: Value,
}

/// Who is writing, for kinds whose writes depend on the writer's own rights (RBAC's
/// escalation prevention). Writes the server makes itself have none.
#[derive(Clone, Copy)]
pub struct WriteContext<'a> {
    pub registry: &'a Registry,
    pub user: &'a crate::auth::user::UserInfo,
    pub authorizer: &'a dyn crate::auth::authz::Authorizer,
}

impl std::fmt::Debug for WriteContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteContext")
            .field("user", &self.user.name)
            .finish()
    }
}

pub trait CustomSubresource: Send + Sync {
    fn handle<'a>(&'a self, req: SubresourceRequest<'a>) -> BoxFuture<'a, ApiResult<Response>>;
}

/// Everything kind-specific about one served resource.
pub trait KindStrategy: Send + Sync {
    fn info(&self) -> &'static ResourceInfo;

    /// Decode into the kind's type (which drops fields it does not have) and apply Kubernetes'
    /// defaults; `creating` adds those only a new object gets.
    fn decode_and_default(&self, obj: Value, creating: bool) -> ApiResult<Value>;

    /// Problems with `obj` beyond its metadata (checked generically).
    fn validate(&self, _obj: &Value, _causes: &mut Vec<Cause>) {}

    /// Problems with changing `old` into `new` (immutable fields), on top of [`Self::validate`].
    fn validate_update(&self, _new: &Value, _old: &Value, _causes: &mut Vec<Cause>) {}

    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        &[]
    }

    /// `kubectl get` columns.
    fn printer(&self) -> &'static Printer;

    /// The kind's OpenAPI schema (a `$ref` into the generator's definitions).
    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema;

    /// Patch metadata for strategic merge patch and server-side apply.
    fn patch_schema(&self) -> &'static SchemaNode;

    fn subresources(&self) -> &'static [SubresourceDef] {
        &[]
    }

    /// Clients send the initial status with the object even though a status subresource
    /// exists (a Node registers with its status; a Namespace starts Active).
    fn keeps_status_on_create(&self) -> bool {
        false
    }

    fn deletion(&self) -> DeletionRules {
        DeletionRules::default()
    }

    /// Seconds a delete waits before the object goes (the agent stops a running pod first).
    fn grace_period(&self, _obj: &Value, _requested: Option<i64>) -> i64 {
        0
    }

    /// Applied to an object when it is marked for deletion.
    fn on_marked_for_deletion(&self, _obj: &mut Value) {}

    /// Something besides `metadata.finalizers` still holds a deleted object (a Namespace's
    /// `spec.finalizers`).
    fn held_by_spec(&self, _obj: &Value) -> bool {
        false
    }

    /// Refuse a create or update the writer may not make even though RBAC lets them write
    /// the kind (a Role granting more than they hold).
    fn check_writer(&self, _writer: &WriteContext<'_>, _obj: &Value) -> ApiResult<()> {
        Ok(())
    }

    /// For create-only computed resources: how POST answers (nothing is stored).
    fn virtual_create(&self) -> Option<&dyn VirtualCreate> {
        None
    }

    fn allocation(&self) -> Option<&dyn Allocation> {
        None
    }
}

impl dyn KindStrategy + '_ {
    pub fn subresource(&self, name: &str) -> Option<&'static SubresourceDef> {
        self.subresources().iter().find(|s| s.name == name)
    }

    pub fn has_status_subresource(&self) -> bool {
        self.subresources()
            .iter()
            .any(|s| matches!(s.handler, SubresourceHandler::Status))
    }
}
