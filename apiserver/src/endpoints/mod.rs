//! The HTTP edge of the resource API: path parsing (`path.rs`), content negotiation
//! (`negotiation.rs`), and one module per verb or small group of verbs. Handlers turn requests
//! into calls of the registry's generic flow and its results (or errors) into responses.

pub mod create;
pub mod delete;
pub mod discovery;
pub mod get;
pub mod list;
pub mod negotiation;
pub mod path;
pub mod subresource;
pub mod update;
pub mod watch;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};

use crate::auth::user::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::registry::strategy::SubresourceHandler;
use crate::registry::Resource;
use crate::state::AppState;
use crate::wire::MAX_BODY;
use path::Target;

/// One resource request, parsed.
pub struct HandlerRequest<'a> {
    pub state: &'a AppState,
    pub target: Target<'a, Resource>,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub params: &'a Params,
    pub body: &'a Bytes,
    /// Who the request acts as (set by the auth filter).
    pub user: &'a UserInfo,
}

impl HandlerRequest<'_> {
    pub fn resource(&self) -> &Resource {
        self.target.kind
    }

    /// Who is writing, for kinds that check the writer's own rights.
    pub fn writer(&self) -> crate::registry::strategy::WriteContext<'_> {
        crate::registry::strategy::WriteContext {
            registry: &self.state.registry,
            user: self.user,
            authorizer: self.state.auth.authorizer.as_ref(),
        }
    }

    /// Who is writing, for managedFields: `fieldManager`, else the client's user-agent name.
    pub fn field_manager(&self) -> String {
        if let Some(m) = self.params.get("fieldManager") {
            return m.to_string();
        }
        self.headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()
    }

    fn is_watch(&self) -> bool {
        self.target.watch_path || self.params.flag("watch")
    }
}

/// The one entry point for resource paths.
pub async fn dispatch(State(state): State<Arc<AppState>>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(target) = path::parse_path(state.registry.resources(), parts.uri.path()) else {
        return ApiError::not_found_path().into_response();
    };
    let params = Params::parse(parts.uri.query());
    let started = std::time::Instant::now();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return ApiError::too_large(MAX_BODY).into_response(),
    };
    let plural = target.kind.info().plural;
    let anonymous = UserInfo::anonymous();
    let user = parts.extensions.get::<UserInfo>().unwrap_or(&anonymous);
    let req = HandlerRequest {
        user,
        state: &state,
        target,
        method: &parts.method,
        headers: &parts.headers,
        params: &params,
        body: &body,
    };
    let verb = verb_name(&req);
    let resp = route(&req).await.unwrap_or_else(|e| e.into_response());
    state
        .metrics
        .observe(verb, plural, resp.status().as_u16(), started.elapsed());
    resp
}

fn verb_name(req: &HandlerRequest) -> &'static str {
    match (req.method.as_str(), &req.target.name) {
        ("GET", None) if req.is_watch() => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", None) => "deletecollection",
        ("DELETE", Some(_)) => "delete",
        _ => "other",
    }
}

fn not_allowed() -> ApiError {
    ApiError::method_not_allowed("the server does not allow this method on the requested resource")
}

async fn route(req: &HandlerRequest<'_>) -> ApiResult<Response> {
    use update::Scope;
    let t = &req.target;
    let info = t.kind.info();
    if info.namespaced && t.namespace.is_none() && *req.method != Method::GET {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource: {} requires a namespace",
            info.plural
        )));
    }
    let named = t.name.is_some();
    if let Some(computed) = t.kind.strategy.virtual_create() {
        return match (named, req.method) {
            (false, &Method::POST) => create::create_virtual(req, computed),
            _ => Err(not_allowed()),
        };
    }
    match (t.sub.map(|s| &s.handler), named) {
        (None, false) => match *req.method {
            Method::GET if req.is_watch() => watch::watch(req).await,
            Method::GET => list::list(req).await,
            Method::POST => create::create(req).await,
            Method::DELETE => delete::delete_collection(req).await,
            _ => Err(not_allowed()),
        },
        (None, true) => match *req.method {
            Method::GET => get::get(req).await,
            Method::PUT => update::update(req, Scope::Main).await,
            Method::PATCH => update::patch(req, Scope::Main).await,
            Method::DELETE => delete::delete(req).await,
            _ => Err(not_allowed()),
        },
        (Some(SubresourceHandler::Status), true) => match *req.method {
            Method::GET => get::get(req).await,
            Method::PUT => update::update(req, Scope::Status).await,
            Method::PATCH => update::patch(req, Scope::Status).await,
            _ => Err(not_allowed()),
        },
        (Some(SubresourceHandler::Scale), true) => subresource::scale(req).await,
        (Some(SubresourceHandler::Custom(handler)), true) => {
            subresource::custom(req, *handler).await
        }
        (Some(_), false) => Err(not_allowed()),
    }
}
