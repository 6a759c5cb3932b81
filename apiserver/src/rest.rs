//! The REST verbs over storage: get, list, watch, create, update, patch, delete,
//! deletecollection, and the status, scale, binding, eviction and finalize subresources.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::admission::{self, allocator, validation};
use crate::error::{ApiError, ApiResult};
use crate::managed_fields;
use crate::object;
use crate::patch::{self, PatchType};
use crate::registry::{self, ResourceInfo, Subresource};
use crate::selection::Selection;
use crate::server::AppState;
use crate::storage::{SideKeys, Versioned, WriteOutcome};
use crate::table;
use crate::watch::{CacheEvent, EventType};

/// Request bodies above this are refused with 413, as kube-apiserver does (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;
const WRITE_ATTEMPTS: usize = 16;

/// What a request path names.
#[derive(Debug, Clone)]
pub struct Target {
    pub info: &'static ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<Subresource>,
    pub watch_path: bool,
}

impl Target {
    pub fn key_for_log(&self) -> String {
        self.key()
    }

    fn key(&self) -> String {
        self.info.key(
            self.namespace.as_deref(),
            self.name.as_deref().unwrap_or(""),
        )
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    fn prefix(&self) -> String {
        self.info.namespace_prefix(self.namespace.as_deref())
    }
}

/// Parse `/api/v1/...` and `/apis/<group>/<version>/...` resource paths.
pub fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, mut rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let watch_path = rest.first() == Some(&"watch");
    if watch_path {
        rest = &rest[1..];
    }
    let namespaced_target = rest.len() >= 3
        && rest[0] == "namespaces"
        && registry::find(group, version, rest[2]).is_some_and(|r| r.namespaced);
    let (namespace, rest) = if namespaced_target {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let info = registry::find(group, version, rest.first()?)?;
    if info.namespaced && namespace.is_none() && rest.len() > 1 {
        return None;
    }
    let name = rest.get(1).map(|s| s.to_string());
    let sub = match rest.get(2) {
        Some(s) => Some(Subresource::parse(s).filter(|sub| info.has(*sub))?),
        None => None,
    };
    if rest.len() > 3 || name.as_deref() == Some("") {
        return None;
    }
    Some(Target {
        info,
        namespace,
        name,
        sub,
        watch_path,
    })
}

/// Query parameters, last value wins.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        let pairs: Vec<(String, String)> = query
            .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
            .unwrap_or_default();
        Params(pairs.into_iter().collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true") | Some("1"))
    }

    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {v:?}")))
            })
            .transpose()
    }

    fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

pub fn json_response(code: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "'"));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// The one entry point for resource paths.
pub async fn dispatch(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(target) = parse_path(parts.uri.path()) else {
        return ApiError::not_found_path().into_response();
    };
    let params = Params::parse(parts.uri.query());
    let verb = verb_name(&parts.method, &target, &params);
    let started = std::time::Instant::now();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return ApiError::too_large(MAX_BODY).into_response(),
    };
    let result = route(
        &state,
        &parts.method,
        &parts.headers,
        target.clone(),
        &params,
        body,
    )
    .await;
    let resp = result.unwrap_or_else(|e| e.into_response());
    state.metrics.observe(
        verb,
        target.info.plural,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

fn verb_name(method: &Method, t: &Target, params: &Params) -> &'static str {
    match (method.as_str(), &t.name) {
        ("GET", None) if t.watch_path || params.flag("watch") => "watch",
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

async fn route(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    t: Target,
    params: &Params,
    body: Bytes,
) -> ApiResult<Response> {
    use Subresource::*;
    if t.info.namespaced && t.namespace.is_none() && *method != Method::GET {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource: {} requires a namespace",
            t.info.plural
        )));
    }
    match (method.clone(), t.name.is_some(), t.sub) {
        (Method::GET, false, None) if t.watch_path || params.flag("watch") => {
            watch(state, &t, params, headers).await
        }
        (Method::GET, false, None) => list(state, &t, params, headers).await,
        (Method::GET, true, None) | (Method::GET, true, Some(Status)) => {
            get(state, &t, params, headers).await
        }
        (Method::GET, true, Some(Scale)) => get_scale(state, &t).await,
        (Method::GET, true, Some(Log)) => crate::logs::pod_log(state, &t, params).await,
        (Method::POST, false, None) => create(state, &t, params, headers, &body).await,
        (Method::POST, true, Some(Binding)) => bind(state, &t, headers, &body).await,
        (Method::POST, true, Some(Eviction)) => evict(state, &t, headers, &body).await,
        (Method::PUT, true, None) => update(state, &t, params, headers, &body, Mode::Main).await,
        (Method::PUT, true, Some(Status)) => {
            update(state, &t, params, headers, &body, Mode::Status).await
        }
        (Method::PUT, true, Some(Finalize)) => {
            update(state, &t, params, headers, &body, Mode::Finalize).await
        }
        (Method::PUT, true, Some(Scale)) => {
            let scale = decode_body(headers, &body)?;
            update_scale(state, &t, scale, &field_manager(params, headers)).await
        }
        (Method::PATCH, true, None) => patch(state, &t, params, headers, &body, Mode::Main).await,
        (Method::PATCH, true, Some(Status)) => {
            patch(state, &t, params, headers, &body, Mode::Status).await
        }
        (Method::PATCH, true, Some(Scale)) => patch_scale(state, &t, params, headers, &body).await,
        (Method::DELETE, true, None) => delete(state, &t, params, headers, &body).await,
        (Method::DELETE, false, None) => delete_collection(state, &t, params, headers, &body).await,
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Reads

/// The response format asked for: the object itself, or a Table for `kubectl get`.
#[derive(Debug, Clone, Copy)]
struct Format {
    table: Option<table::IncludeObject>,
}

impl Format {
    fn of(headers: &HeaderMap, params: &Params) -> Format {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Format {
            table: table::wants_table_accept(accept)
                .then(|| table::IncludeObject::parse(params.get("includeObject"))),
        }
    }

    fn object(self, info: &ResourceInfo, value: &Value) -> Value {
        match self.table {
            Some(include) => table::table_for_object(info.kind, value, include),
            None => value.clone(),
        }
    }
}

fn respond(headers: &HeaderMap, info: &ResourceInfo, code: StatusCode, value: &Value) -> Response {
    let format = Format::of(headers, &Params::default());
    if format.table.is_some() {
        return json_response(code, &format.object(info, value));
    }
    json_response(code, value)
}

async fn get(
    state: &AppState,
    t: &Target,
    params: &Params,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let current = state
        .store
        .get(&t.key())
        .await?
        .ok_or_else(|| ApiError::not_found(t.info, t.name()))?;
    Ok(json_response(
        StatusCode::OK,
        &Format::of(headers, params).object(t.info, &current.value),
    ))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

fn encode_continue(rv: i64, start: &str) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: start.to_string(),
    };
    base64::engine::general_purpose::URL_SAFE.encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_continue(token: &str, prefix: &str) -> ApiResult<ContinueToken> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let token: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if token.v != "meta.k8s.io/v1" || !token.start.starts_with(prefix) || token.rv <= 0 {
        return Err(bad());
    }
    Ok(token)
}

/// A list body serialized item by item from shared cached objects.
fn list_response(info: &ResourceInfo, items: &[Arc<Value>], rv: i64) -> Response {
    let mut out = Vec::with_capacity(256 + items.len() * 1024);
    let head = json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": {"resourceVersion": rv.to_string()}});
    let head = serde_json::to_vec(&head).unwrap_or_default();
    // `{"kind":..,"metadata":{..}}` minus its closing brace, then the items array.
    out.extend_from_slice(&head[..head.len() - 1]);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, &**item).expect("JSON values serialize");
    }
    out.extend_from_slice(b"]}");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

fn list_value(
    info: &ResourceInfo,
    items: Vec<Value>,
    rv: i64,
    cont: Option<String>,
    remaining: Option<i64>,
) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
        if let Some(r) = remaining.filter(|r| *r > 0) {
            meta["remainingItemCount"] = json!(r);
        }
    }
    json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": meta, "items": items})
}

async fn list(
    state: &AppState,
    t: &Target,
    params: &Params,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let selection = Selection::parse(
        t.info,
        params.get("labelSelector"),
        params.get("fieldSelector"),
    )?;
    let limit = params.int("limit")?.unwrap_or(0).max(0);
    let rv_param = params.get("resourceVersion");
    let prefix = t.prefix();
    let value = if let Some(token) = params.get("continue") {
        let token = decode_continue(token, &prefix)?;
        list_from_etcd(
            state,
            t.info,
            &prefix,
            &selection,
            Some(token.start),
            token.rv,
            limit,
        )
        .await?
    } else if limit > 0 && rv_param != Some("0") {
        let rv = match (rv_param, params.get("resourceVersionMatch")) {
            (Some(rv), Some("Exact")) => rv
                .parse()
                .map_err(|_| ApiError::bad_request("invalid resourceVersion"))?,
            _ => 0,
        };
        list_from_etcd(state, t.info, &prefix, &selection, None, rv, limit).await?
    } else {
        let cache = state.cache(t.info);
        match rv_param {
            None => {
                // A consistent read: the cache must have caught up with etcd's current revision.
                let rev = state.store.current_revision().await?;
                cache.wait_for(rev, Duration::from_secs(3)).await?;
            }
            Some("0") => {}
            Some(rv) => {
                let rv: i64 = rv
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion: {rv}")))?;
                cache.wait_for(rv, Duration::from_secs(3)).await?;
            }
        }
        let (items, rev) = cache.snapshot(&prefix);
        let items: Vec<Arc<Value>> = items
            .into_iter()
            .filter(|o| selection.is_everything() || selection.matches(o))
            .collect();
        let format = Format::of(headers, params);
        if format.table.is_none() {
            // The common case: write the cached objects straight out, without copying them.
            return Ok(list_response(t.info, &items, rev));
        }
        list_value(
            t.info,
            items.iter().map(|o| (**o).clone()).collect(),
            rev,
            None,
            None,
        )
    };
    if let Some(include) = Format::of(headers, params).table {
        return Ok(json_response(
            StatusCode::OK,
            &table::table_for_list(t.info.kind, &value, include),
        ));
    }
    Ok(json_response(StatusCode::OK, &value))
}

/// Paginated list straight from etcd at one revision, filling each page with matching items.
async fn list_from_etcd(
    state: &AppState,
    info: &ResourceInfo,
    prefix: &str,
    selection: &Selection,
    mut start: Option<String>,
    rv: i64,
    limit: i64,
) -> ApiResult<Value> {
    let mut items = Vec::new();
    let mut revision = rv;
    loop {
        let want = if limit > 0 {
            limit - items.len() as i64
        } else {
            0
        };
        let page = state
            .store
            .list(prefix, start.as_deref(), revision, want)
            .await?;
        revision = page.revision;
        let remaining = page.remaining;
        for (_, v) in page.items {
            if selection.is_everything() || selection.matches(&v.value) {
                items.push(v.value);
            }
        }
        match page.next_key {
            None => return Ok(list_value(info, items, revision, None, None)),
            Some(next) if limit > 0 && items.len() as i64 >= limit => {
                return Ok(list_value(
                    info,
                    items,
                    revision,
                    Some(encode_continue(revision, &next)),
                    Some(remaining),
                ));
            }
            Some(next) => start = Some(next),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Watch

/// How a cache event looks to a watcher with this selection: a MODIFIED event of an object
/// that enters or leaves the selection becomes ADDED or DELETED, as in kube-apiserver.
fn classify(ev: &CacheEvent, prefix: &str, selection: &Selection) -> Option<EventType> {
    if !ev.key.starts_with(prefix) {
        return None;
    }
    if selection.is_everything() {
        return Some(ev.kind);
    }
    let now = selection.matches(&ev.object);
    let before = ev.prev.as_ref().is_some_and(|p| selection.matches(p));
    match ev.kind {
        EventType::Added => now.then_some(EventType::Added),
        EventType::Deleted => before.then_some(EventType::Deleted),
        EventType::Modified => match (before, now) {
            (true, true) => Some(EventType::Modified),
            (false, true) => Some(EventType::Added),
            (true, false) => Some(EventType::Deleted),
            (false, false) => None,
        },
    }
}

fn event_line(kind: EventType, ev: &CacheEvent, format: Format, info: &ResourceInfo) -> Bytes {
    let obj = match format.table {
        Some(_) => {
            Bytes::from(serde_json::to_vec(&format.object(info, &ev.object)).unwrap_or_default())
        }
        None => ev.encoded_object(),
    };
    let mut line = Vec::with_capacity(obj.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.wire_name().as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(&obj);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

fn bookmark_line(info: &ResourceInfo, rv: i64, initial_events_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let ev = json!({"type": "BOOKMARK", "object": {"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta}});
    let mut line = serde_json::to_vec(&ev).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

async fn watch(
    state: &AppState,
    t: &Target,
    params: &Params,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let format = Format::of(headers, params);
    let mut selection = Selection::parse(
        t.info,
        params.get("labelSelector"),
        params.get("fieldSelector"),
    )?;
    if let (Some(name), true) = (&t.name, t.watch_path) {
        selection = Selection::parse(
            t.info,
            params.get("labelSelector"),
            Some(&format!("metadata.name={name}")),
        )?;
    }
    let cache = state.cache(t.info);
    let send_initial = params.flag("sendInitialEvents");
    let from = match params.get("resourceVersion") {
        None | Some("0") => None,
        Some(rv) => {
            let rv: i64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion: {rv}")))?;
            cache.wait_for(rv, Duration::from_secs(3)).await?;
            Some(rv)
        }
    };
    if send_initial && from.is_none() && params.get("resourceVersion").is_none() {
        let rev = state.store.current_revision().await?;
        cache.wait_for(rev, Duration::from_secs(3)).await?;
    }
    let prefix = t.prefix();
    let sub = match cache.subscribe(&prefix, if send_initial { None } else { from }) {
        Ok(sub) => sub,
        // As kube-apiserver does: the watch starts, and its only event is the 410 error.
        Err(e) if e.code == 410 => {
            let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()}))
                .unwrap_or_default();
            line.push(b'\n');
            let mut resp = Response::new(Body::from(line));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Ok(resp);
        }
        Err(e) => return Err(e),
    };
    let bookmarks = params.flag("allowWatchBookmarks");
    let timeout = params
        .int("timeoutSeconds")?
        .map(|s| Duration::from_secs(s.max(0) as u64))
        .unwrap_or_else(|| {
            state
                .config
                .min_request_timeout
                .mul_f64(1.0 + rand::random::<f64>())
        });
    let bookmark_every = state.config.bookmark_interval;
    let mut shutdown = state.shutdown.clone();
    let info = t.info;
    let stream = async_stream::stream! {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut last_rv = sub.revision;
        for ev in &sub.initial {
            if let Some(kind) = classify(ev, &prefix, &selection) {
                yield Ok::<Bytes, std::convert::Infallible>(event_line(kind, ev, format, info));
            }
        }
        if send_initial {
            yield Ok(bookmark_line(info, last_rv, true));
        }
        let mut live = sub.live;
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                _ = shutdown.changed() => break,
                _ = ticker.tick(), if bookmarks => yield Ok(bookmark_line(info, last_rv, false)),
                msg = live.recv() => match msg {
                    Ok(ev) => {
                        if ev.revision <= last_rv {
                            continue;
                        }
                        last_rv = ev.revision;
                        if let Some(kind) = classify(&ev, &prefix, &selection) {
                            yield Ok(event_line(kind, &ev, format, info));
                        }
                    }
                    // Too slow to keep up, or the cache restarted: end this watch; the client
                    // resumes from its last resourceVersion or re-lists on 410.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => break,
                },
            }
        }
    };
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// Writes

fn decode_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type.split(';').next().unwrap_or("").trim();
    let value: Value = match media {
        "application/json" | "" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized or malformed JSON: {e}"
            ))
        })?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml_ng::from_slice(body)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the object provided is unrecognized or malformed YAML: {e}"
                ))
            })?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(value)
}

fn check_type_meta(info: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    let api_version = info.api_version();
    if let Some(kind) = obj.get("kind").and_then(Value::as_str) {
        if kind != info.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                info.kind
            )));
        }
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        if av != api_version {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({api_version})"
            )));
        }
    }
    obj["kind"] = json!(info.kind);
    obj["apiVersion"] = json!(api_version);
    Ok(())
}

/// `fieldValidation`: Strict rejects fields the kind does not have, Warn (the default) reports
/// them in `Warning` headers, Ignore drops them silently.
fn field_validation(
    params: &Params,
    sent: &Value,
    decoded: &Value,
    duplicates: &[String],
) -> ApiResult<Vec<String>> {
    let directive = params.get("fieldValidation").unwrap_or("Warn");
    if directive == "Ignore" {
        return Ok(Vec::new());
    }
    let unknown: Vec<String> = duplicates
        .iter()
        .map(|p| format!("json: duplicate field \"{p}\""))
        .chain(
            admission::unknown_fields(sent, decoded)
                .into_iter()
                .filter(|p| p != "metadata.resourceVersion" && !p.starts_with("status"))
                .map(|p| format!("unknown field \"{p}\"")),
        )
        .collect();
    match directive {
        "Strict" if !unknown.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            unknown.join(", ")
        ))),
        "Strict" | "Warn" => Ok(unknown),
        other => Err(ApiError::bad_request(format!(
            "fieldValidation must be one of Ignore, Warn or Strict, got {other:?}"
        ))),
    }
}

async fn ensure_namespace_writable(
    state: &AppState,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
) -> ApiResult<()> {
    let key = registry::namespaces().key(None, ns);
    let cached = state.cache(registry::namespaces()).snapshot(&key).0;
    let found = match cached.into_iter().find(|o| object::name(o) == ns) {
        Some(o) => Some((*o).clone()),
        None => state.store.get(&key).await?.map(|v| v.value),
    };
    match found {
        None => Err(ApiError::not_found(registry::namespaces(), ns)),
        Some(nsobj)
            if object::is_deleting(&nsobj)
                || nsobj.pointer("/status/phase") == Some(&json!("Terminating")) =>
        {
            Err(ApiError::forbidden(
                info,
                name,
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            ))
        }
        Some(_) => Ok(()),
    }
}

/// Create `obj` (already admitted) under `key`, allocating service IPs and ports as needed.
async fn store_new(
    state: &AppState,
    info: &ResourceInfo,
    key: &str,
    mut obj: Value,
) -> ApiResult<Value> {
    let mut taken = HashSet::new();
    for _ in 0..WRITE_ATTEMPTS {
        let plan = if info.kind == "Service" {
            state
                .allocators
                .plan(&mut obj, None, &taken)
                .map_err(|c| ApiError::invalid(info, object::name(&obj), c))?
        } else {
            Default::default()
        };
        match state.store.create(key, &obj, &plan.side).await? {
            WriteOutcome::Written(rev) => {
                crate::storage::set_resource_version(&mut obj, rev);
                return Ok(obj);
            }
            WriteOutcome::Conflict => {
                return Err(ApiError::already_exists(info, object::name(&obj)))
            }
            WriteOutcome::SideKeyTaken(k) if plan.requested.contains(&k) => {
                let what = k.rsplit('/').next().unwrap_or("");
                let field = if k.starts_with(allocator::SERVICE_IP_PREFIX) {
                    "spec.clusterIPs"
                } else {
                    "spec.ports[].nodePort"
                };
                return Err(ApiError::invalid(
                    info,
                    object::name(&obj),
                    vec![crate::error::Cause::invalid(
                        field,
                        what,
                        "provided IP or port is already allocated",
                    )],
                ));
            }
            WriteOutcome::SideKeyTaken(k) => {
                taken.insert(k);
                // Forget the random pick so the planner chooses again.
                if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("clusterIP");
                    spec.remove("clusterIPs");
                    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                        for p in ports {
                            let port_key = p["nodePort"]
                                .as_u64()
                                .map(|n| allocator::port_key(n as u16));
                            if port_key.is_some_and(|pk| taken.contains(&pk)) {
                                if let Some(m) = p.as_object_mut() {
                                    m.remove("nodePort");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Err(ApiError::internal(
        "could not allocate a unique IP or port; try again",
    ))
}

/// Fill the metadata the server owns on a new object.
fn init_metadata(info: &ResourceInfo, obj: &mut Value, namespace: Option<&str>) -> ApiResult<()> {
    let meta = object::meta_mut(obj);
    if let Some(ns) = namespace {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(given) if !given.is_empty() && given != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => {
                meta.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name {
        if let Some(base) = meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            let name = format!("{base}{}", object::random_suffix());
            meta.insert("name".into(), json!(name));
        }
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(object::now()));
    for k in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(k);
    }
    if info.tracks_generation {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    if info.has_status_subresource() && !matches!(info.kind, "Node" | "Namespace") {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
    Ok(())
}

async fn create(
    state: &AppState,
    t: &Target,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let obj = decode_body(headers, body)?;
    let manager = field_manager(params, headers);
    let duplicates = admission::duplicate_fields(body);
    create_value(state, t, params, headers, obj, Some(&manager), &duplicates).await
}

async fn create_value(
    state: &AppState,
    t: &Target,
    params: &Params,
    headers: &HeaderMap,
    mut obj: Value,
    manager: Option<&str>,
    duplicates: &[String],
) -> ApiResult<Response> {
    check_type_meta(t.info, &mut obj)?;
    init_metadata(t.info, &mut obj, t.namespace.as_deref())?;
    let name = object::name(&obj).to_string();
    let sent = obj.clone();
    let mut obj = admission::decode_and_default(t.info, obj, true)?;
    if let Some(m) = manager {
        let av = t.info.api_version();
        managed_fields::track_update(None, &mut obj, m, &av, schema_of(t.info), &object::now());
    }
    let warnings = field_validation(params, &sent, &obj, duplicates)?;
    let causes = validation::validate(t.info, &obj);
    if !causes.is_empty() {
        return Err(ApiError::invalid(t.info, &name, causes));
    }
    if let Some(ns) = &t.namespace {
        ensure_namespace_writable(state, t.info, ns, &name).await?;
    }
    let created = if params.dry_run() {
        obj
    } else {
        let key = t.info.key(t.namespace.as_deref(), &name);
        store_new(state, t.info, &key, obj).await?
    };
    Ok(with_warnings(
        respond(headers, t.info, StatusCode::CREATED, &created),
        &warnings,
    ))
}

/// Who is writing, for managedFields: `fieldManager`, else the client's user-agent name.
fn field_manager(params: &Params, headers: &HeaderMap) -> String {
    if let Some(m) = params.get("fieldManager") {
        return m.to_string();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn schema_of(info: &ResourceInfo) -> Option<&'static skiff_common::SchemaNode> {
    skiff_common::schema_for(&info.api_version(), info.kind)
}

/// Create an object on the server's own behalf (bootstrap namespaces and services).
/// Returns `Ok(None)` when it already exists.
pub async fn create_internal(
    state: &AppState,
    info: &ResourceInfo,
    namespace: Option<&str>,
    mut obj: Value,
) -> ApiResult<Option<Value>> {
    check_type_meta(info, &mut obj)?;
    init_metadata(info, &mut obj, namespace)?;
    let obj = admission::decode_and_default(info, obj, true)?;
    let causes = validation::validate(info, &obj);
    if !causes.is_empty() {
        return Err(ApiError::invalid(info, object::name(&obj), causes));
    }
    let key = info.key(namespace, object::name(&obj));
    match store_new(state, info, &key, obj).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.reason == "AlreadyExists" => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Main,
    Status,
    /// `namespaces/<name>/finalize`: only `spec.finalizers` changes.
    Finalize,
}

/// Turn the desired object of an update into what is stored: server-owned metadata and the
/// other half of the status/spec split come from `current`; then defaults and validation.
fn admit_update(
    info: &ResourceInfo,
    current: &Value,
    desired: Value,
    mode: Mode,
) -> ApiResult<Value> {
    let name = object::name(current).to_string();
    let desired_name = object::name(&desired);
    if !desired_name.is_empty() && desired_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({desired_name}) does not match the name on the URL ({name})"
        )));
    }
    let mut new = match mode {
        Mode::Main => desired,
        Mode::Status => {
            let mut n = current.clone();
            n["status"] = desired.get("status").cloned().unwrap_or(Value::Null);
            n
        }
        Mode::Finalize => {
            let mut n = current.clone();
            n["spec"]["finalizers"] = desired
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            n
        }
    };
    if let Some(m) = new.as_object_mut() {
        m.insert("kind".into(), json!(info.kind));
        m.insert("apiVersion".into(), json!(info.api_version()));
    }
    {
        let current_meta = current["metadata"].as_object().cloned().unwrap_or_default();
        let meta = object::meta_mut(&mut new);
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match current_meta.get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        meta.remove("selfLink");
    }
    if mode == Mode::Main && info.has_status_subresource() {
        match current.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    let mut new = admission::decode_and_default(info, new, false)?;
    if info.tracks_generation {
        let old_gen = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let bump = i64::from(new.get("spec") != current.get("spec"));
        object::meta_mut(&mut new).insert("generation".into(), json!(old_gen + bump));
    }
    let mut causes = validation::validate_update(info, &new, current);
    if object::is_deleting(current) {
        let before: HashSet<String> = object::finalizers(current).into_iter().collect();
        if object::finalizers(&new).iter().any(|f| !before.contains(f)) {
            causes.push(crate::error::Cause::forbidden(
                "metadata.finalizers",
                "no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(info, &name, causes));
    }
    Ok(new)
}

/// Nothing holds the object any more once it is being deleted and its finalizers are gone.
fn ready_to_remove(info: &ResourceInfo, obj: &Value) -> bool {
    if !object::is_deleting(obj) || !object::finalizers(obj).is_empty() {
        return false;
    }
    if info.kind == "Namespace" {
        return obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
    }
    true
}

/// Read, change, admit and compare-and-swap, retrying on races unless the client pinned a
/// resourceVersion. Returns the stored object and whether anything was written.
async fn guaranteed_update<F>(
    state: &AppState,
    t: &Target,
    mode: Mode,
    dry_run: bool,
    manager: Option<&str>,
    mut mutate: F,
) -> ApiResult<(Value, bool)>
where
    F: FnMut(&Value) -> ApiResult<(Value, Option<i64>)>,
{
    let (info, key, name) = (t.info, t.key(), t.name());
    let key = key.as_str();
    let mut taken = HashSet::new();
    for _ in 0..WRITE_ATTEMPTS {
        let current: Versioned = state
            .store
            .get(key)
            .await?
            .ok_or_else(|| ApiError::not_found(info, name))?;
        let (desired, precondition) = mutate(&current.value)?;
        if let Some(rv) = precondition {
            if rv != current.revision {
                return Err(ApiError::stale(info, name));
            }
        }
        let mut new = admit_update(info, &current.value, desired, mode)?;
        if let (Some(m), Mode::Main) = (manager, mode) {
            let av = info.api_version();
            managed_fields::track_update(
                Some(&current.value),
                &mut new,
                m,
                &av,
                schema_of(info),
                &object::now(),
            );
        }
        if new == current.value {
            return Ok((current.value, false));
        }
        if dry_run {
            return Ok((new, false));
        }
        if ready_to_remove(info, &new) {
            let side = SideKeys {
                delete: allocator::held_keys(&current.value),
                ..Default::default()
            };
            match state.store.delete(key, current.revision, &side).await? {
                WriteOutcome::Written(rev) => {
                    crate::storage::set_resource_version(&mut new, rev);
                    return Ok((new, true));
                }
                _ if precondition.is_some() => return Err(ApiError::stale(info, name)),
                _ => continue,
            }
        }
        let plan = if info.kind == "Service" {
            state
                .allocators
                .plan(&mut new, Some(&current.value), &taken)
                .map_err(|c| ApiError::invalid(info, name, c))?
        } else {
            Default::default()
        };
        match state
            .store
            .update(key, current.revision, &new, &plan.side)
            .await?
        {
            WriteOutcome::Written(rev) => {
                crate::storage::set_resource_version(&mut new, rev);
                return Ok((new, true));
            }
            WriteOutcome::Conflict if precondition.is_some() => {
                return Err(ApiError::stale(info, name))
            }
            WriteOutcome::Conflict => continue,
            WriteOutcome::SideKeyTaken(k) if plan.requested.contains(&k) => {
                return Err(ApiError::invalid(
                    info,
                    name,
                    vec![crate::error::Cause::invalid(
                        "spec.ports[].nodePort",
                        k.rsplit('/').next().unwrap_or(""),
                        "provided port is already allocated",
                    )],
                ))
            }
            WriteOutcome::SideKeyTaken(k) => {
                taken.insert(k);
            }
        }
    }
    Err(ApiError::new(
        409,
        "Conflict",
        format!("Operation cannot be fulfilled on {} \"{name}\": too many concurrent updates; try again", info.qualified_plural()),
    ))
}

fn body_precondition(obj: &Value) -> ApiResult<Option<i64>> {
    object::resource_version(obj)
        .map(|rv| {
            rv.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))
        })
        .transpose()
}

async fn update(
    state: &AppState,
    t: &Target,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
    mode: Mode,
) -> ApiResult<Response> {
    let mut obj = decode_body(headers, body)?;
    check_type_meta(t.info, &mut obj)?;
    if let (Some(ns), Some(given)) = (&t.namespace, object::namespace(&obj)) {
        if !given.is_empty() && given != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let precondition = body_precondition(&obj)?;
    // Unknown and duplicate fields are judged before anything is written.
    let warnings = if mode == Mode::Main {
        let decoded = admission::decode_and_default(t.info, obj.clone(), false)?;
        field_validation(params, &obj, &decoded, &admission::duplicate_fields(body))?
    } else {
        Vec::new()
    };
    let manager = field_manager(params, headers);
    let (stored, _) = guaranteed_update(state, t, mode, params.dry_run(), Some(&manager), |_| {
        Ok((obj.clone(), precondition))
    })
    .await?;
    Ok(with_warnings(
        respond(headers, t.info, StatusCode::OK, &stored),
        &warnings,
    ))
}

async fn patch(
    state: &AppState,
    t: &Target,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
    mode: Mode,
) -> ApiResult<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ty = PatchType::from_content_type(content_type)?;
    let patch_body = patch::parse_body(ty, body)?;
    if ty == PatchType::Apply {
        return server_side_apply(state, t, params, headers, patch_body, mode).await;
    }
    let info = t.info;
    let manager = field_manager(params, headers);
    let (stored, _) = guaranteed_update(
        state,
        t,
        mode,
        params.dry_run(),
        Some(&manager),
        |current| {
            let patched = patch::apply(info, ty, current, &patch_body)?;
            // A resourceVersion in the patch is a precondition, unless the patch left it as it was.
            let pinned = match ty {
                PatchType::Json => None,
                _ => patch_body
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            let precondition = pinned
                .map(|rv| {
                    rv.parse::<i64>().map_err(|_| {
                        ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                    })
                })
                .transpose()?;
            Ok((patched, precondition))
        },
    )
    .await?;
    Ok(respond(headers, info, StatusCode::OK, &stored))
}

/// Server-side apply: merge the applied configuration, remove what this manager applied before
/// and no longer does, and refuse (409) to change fields another manager owns unless forced.
async fn server_side_apply(
    state: &AppState,
    t: &Target,
    params: &Params,
    headers: &HeaderMap,
    mut applied: Value,
    mode: Mode,
) -> ApiResult<Response> {
    let Some(manager) = params.get("fieldManager").map(str::to_string) else {
        return Err(ApiError::invalid(
            t.info,
            t.name(),
            vec![crate::error::Cause {
                reason: "FieldValueRequired",
                field: "fieldManager".into(),
                message: "Required value: is required for apply patch".into(),
            }],
        ));
    };
    if !applied.is_object() {
        return Err(ApiError::bad_request("apply patch must be an object"));
    }
    check_type_meta(t.info, &mut applied)?;
    let given = object::name(&applied);
    if !given.is_empty() && given != t.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({})",
            t.name()
        )));
    }
    let force = params.flag("force");
    let info = t.info;
    let av = info.api_version();
    let schema = schema_of(info);
    if mode == Mode::Main && state.store.get(&t.key()).await?.is_none() {
        object::meta_mut(&mut applied).insert("name".into(), json!(t.name()));
        let created =
            managed_fields::apply(None, &applied, &manager, &av, schema, force, &object::now())
                .map_err(|c| conflict_error(info, t.name(), &c))?;
        return create_value(state, t, params, headers, created, None, &[]).await;
    }
    let precondition = body_precondition(&applied)?;
    let (stored, _) = guaranteed_update(state, t, mode, params.dry_run(), None, |current| {
        let merged = managed_fields::apply(
            Some(current),
            &applied,
            &manager,
            &av,
            schema,
            force,
            &object::now(),
        )
        .map_err(|c| conflict_error(info, t.name(), &c))?;
        Ok((merged, precondition))
    })
    .await?;
    Ok(respond(headers, info, StatusCode::OK, &stored))
}

/// 409 Conflict naming each field and its owner, as kube-apiserver reports apply conflicts.
fn conflict_error(
    info: &ResourceInfo,
    name: &str,
    conflicts: &[managed_fields::Conflict],
) -> ApiError {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with \"{}\" using {}: {}",
                c.manager,
                c.api_version,
                managed_fields::render_path(&c.path)
            )
        })
        .collect();
    let message = if lines.len() == 1 {
        format!("Apply failed with 1 conflict: {}", lines[0])
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            lines.len(),
            lines.join("\n")
        )
    };
    let mut err = ApiError::new(409, "Conflict", message);
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version), "field": managed_fields::render_path(&c.path)}))
        .collect();
    let mut details = json!({"name": name, "kind": info.plural, "causes": causes});
    if !info.group.is_empty() {
        details["group"] = json!(info.group);
    }
    err.details = Some(Box::new(details));
    err
}

// ---------------------------------------------------------------------------------------------
// Delete

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteOptions {
    grace_period_seconds: Option<i64>,
    propagation_policy: Option<String>,
    orphan_dependents: Option<bool>,
    preconditions: Option<Preconditions>,
    #[serde(default)]
    dry_run: Vec<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    uid: Option<String>,
    resource_version: Option<String>,
}

fn delete_options(params: &Params, headers: &HeaderMap, body: &[u8]) -> ApiResult<DeleteOptions> {
    let mut opts: DeleteOptions = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        serde_json::from_value(decode_body(headers, body)?)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    if let Some(g) = params.int("gracePeriodSeconds")? {
        opts.grace_period_seconds = Some(g);
    }
    if let Some(p) = params.get("propagationPolicy") {
        opts.propagation_policy = Some(p.to_string());
    }
    if let Some(o) = params.get("orphanDependents") {
        opts.orphan_dependents = Some(o == "true");
    }
    if params.dry_run() {
        opts.dry_run = vec!["All".into()];
    }
    if let Some(p) = &opts.propagation_policy {
        if !["Orphan", "Background", "Foreground"].contains(&p.as_str()) {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""),
            ));
        }
    }
    Ok(opts)
}

fn success_status(info: &ResourceInfo, obj: &Value) -> Value {
    let mut details =
        json!({"name": object::name(obj), "kind": info.plural, "uid": object::uid(obj)});
    if !info.group.is_empty() {
        details["group"] = json!(info.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// What a delete does to an object: remove it now, or mark it and let someone finish the job.
#[derive(Debug, PartialEq)]
enum DeletePlan {
    Remove,
    /// Set deletionTimestamp (with this grace) and these finalizers, and leave it stored.
    Mark {
        grace: i64,
        add_finalizers: Vec<&'static str>,
    },
}

/// Decide how a delete proceeds, as kube-apiserver's generic store and pod strategy do.
fn plan_delete(info: &ResourceInfo, obj: &Value, opts: &DeleteOptions) -> DeletePlan {
    let policy = match (&opts.propagation_policy, opts.orphan_dependents) {
        (Some(p), _) => p.as_str(),
        (None, Some(true)) => "Orphan",
        _ => "Background",
    };
    let mut add = Vec::new();
    match policy {
        "Orphan" => add.push("orphan"),
        "Foreground" => add.push("foregroundDeletion"),
        _ => {}
    }
    // A pod on a node is stopped by its agent, which removes it once the containers are gone.
    let mut grace = 0;
    if info.kind == "Pod" {
        let on_node = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            obj.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded") | Some("Failed")
        );
        let default = obj
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        let requested = opts.grace_period_seconds.unwrap_or(default).max(0);
        if on_node && !finished {
            grace = requested;
        }
    }
    if info.kind == "Namespace" {
        return DeletePlan::Mark {
            grace: 0,
            add_finalizers: Vec::new(),
        };
    }
    let held = !object::finalizers(obj).is_empty();
    if grace == 0 && add.is_empty() && !held {
        DeletePlan::Remove
    } else {
        DeletePlan::Mark {
            grace,
            add_finalizers: add,
        }
    }
}

async fn delete(
    state: &AppState,
    t: &Target,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let opts = delete_options(params, headers, body)?;
    let (code, value) = delete_one(state, t.info, &t.key(), t.name(), &opts).await?;
    Ok(json_response(code, &value))
}

async fn delete_one(
    state: &AppState,
    info: &ResourceInfo,
    key: &str,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<(StatusCode, Value)> {
    if info.kind == "Namespace" && ["default", "kube-system", "kube-public"].contains(&name) {
        return Err(ApiError::forbidden(
            info,
            name,
            "this namespace may not be deleted",
        ));
    }
    let dry_run = !opts.dry_run.is_empty();
    for _ in 0..WRITE_ATTEMPTS {
        let current = state
            .store
            .get(key)
            .await?
            .ok_or_else(|| ApiError::not_found(info, name))?;
        if let Some(pre) = &opts.preconditions {
            if pre
                .uid
                .as_deref()
                .is_some_and(|u| u != object::uid(&current.value))
            {
                return Err(ApiError::conflict(
                    info,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                        pre.uid.as_deref().unwrap_or(""),
                        object::uid(&current.value)
                    ),
                ));
            }
            if let Some(rv) = &pre.resource_version {
                if *rv != current.revision.to_string() {
                    return Err(ApiError::conflict(info, name, &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        current.revision
                    )));
                }
            }
        }
        match plan_delete(info, &current.value, opts) {
            DeletePlan::Remove => {
                if dry_run {
                    return Ok((StatusCode::OK, current.value));
                }
                let side = SideKeys {
                    delete: allocator::held_keys(&current.value),
                    ..Default::default()
                };
                match state.store.delete(key, current.revision, &side).await? {
                    WriteOutcome::Written(rev) => {
                        let mut last = current.value;
                        crate::storage::set_resource_version(&mut last, rev);
                        let body = if matches!(info.kind, "Pod" | "Service" | "Namespace") {
                            last
                        } else {
                            success_status(info, &last)
                        };
                        return Ok((StatusCode::OK, body));
                    }
                    _ => continue,
                }
            }
            DeletePlan::Mark {
                grace,
                add_finalizers,
            } => {
                let mut marked = current.value.clone();
                let already = object::is_deleting(&marked);
                let existing_grace = marked
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64);
                {
                    let meta = object::meta_mut(&mut marked);
                    // A later delete may shorten the grace period, never lengthen it.
                    if !already || existing_grace.is_some_and(|g| grace < g) {
                        let when = chrono::Utc::now() + chrono::Duration::seconds(grace);
                        meta.insert("deletionTimestamp".into(), json!(object::timestamp(when)));
                        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
                    }
                    if !already {
                        let list = meta.entry("finalizers").or_insert_with(|| json!([]));
                        if let Some(arr) = list.as_array_mut() {
                            for f in &add_finalizers {
                                if !arr.iter().any(|x| x == f) {
                                    arr.push(json!(f));
                                }
                            }
                            if arr.is_empty() {
                                meta.remove("finalizers");
                            }
                        }
                    }
                }
                if info.kind == "Namespace" {
                    marked["status"]["phase"] = json!("Terminating");
                }
                if marked == current.value || dry_run {
                    return Ok((StatusCode::ACCEPTED, marked));
                }
                match state
                    .store
                    .update(key, current.revision, &marked, &SideKeys::default())
                    .await?
                {
                    WriteOutcome::Written(rev) => {
                        crate::storage::set_resource_version(&mut marked, rev);
                        return Ok((StatusCode::ACCEPTED, marked));
                    }
                    _ => continue,
                }
            }
        }
    }
    Err(ApiError::stale(info, name))
}

async fn delete_collection(
    state: &AppState,
    t: &Target,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let opts = delete_options(params, headers, body)?;
    let selection = Selection::parse(
        t.info,
        params.get("labelSelector"),
        params.get("fieldSelector"),
    )?;
    let page = state.store.list(&t.prefix(), None, 0, 0).await?;
    let mut deleted = Vec::new();
    for (key, v) in page.items {
        if !selection.matches(&v.value) {
            continue;
        }
        match delete_one(state, t.info, &key, object::name(&v.value), &opts).await {
            Ok((_, obj)) if obj.get("kind") == Some(&json!("Status")) => deleted.push(v.value),
            Ok((_, obj)) => deleted.push(obj),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &list_value(t.info, deleted, page.revision, None, None),
    ))
}

// ---------------------------------------------------------------------------------------------
// Subresources

async fn bind(
    state: &AppState,
    t: &Target,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let binding = decode_body(headers, body)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            t.info,
            t.name(),
            vec![crate::error::Cause::required("target.name")],
        ));
    }
    let pods = t.info;
    let name = t.name().to_string();
    let key = t.key();
    let expected_uid = binding
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    for _ in 0..WRITE_ATTEMPTS {
        let current = state
            .store
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::not_found(pods, &name))?;
        let mut pod = current.value.clone();
        if expected_uid
            .as_deref()
            .is_some_and(|u| u != object::uid(&pod))
        {
            return Err(ApiError::conflict(
                pods,
                &name,
                "the pod's UID does not match the binding",
            ));
        }
        if object::is_deleting(&pod) {
            return Err(ApiError::conflict(
                pods,
                &name,
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        if let Some(existing) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::conflict(
                pods,
                &name,
                &format!("pod {name} is already assigned to node \"{existing}\""),
            ));
        }
        pod["spec"]["nodeName"] = json!(node);
        set_condition(&mut pod, "PodScheduled", "True", None, None);
        match state
            .store
            .update(&key, current.revision, &pod, &SideKeys::default())
            .await?
        {
            WriteOutcome::Written(_) => {
                return Ok(json_response(
                    StatusCode::CREATED,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                ));
            }
            _ => continue,
        }
    }
    Err(ApiError::stale(pods, &name))
}

/// Set a status condition, keeping lastTransitionTime when the status does not change.
pub fn set_condition(
    obj: &mut Value,
    ty: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) {
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    let conditions = obj["status"]
        .as_object_mut()
        .expect("status is an object")
        .entry("conditions")
        .or_insert_with(|| json!([]));
    let Some(list) = conditions.as_array_mut() else {
        return;
    };
    let mut cond = json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": object::now()});
    if let Some(r) = reason {
        cond["reason"] = json!(r);
    }
    if let Some(m) = message {
        cond["message"] = json!(m);
    }
    match list.iter_mut().find(|c| c["type"] == ty) {
        Some(existing) => {
            if existing["status"] == status {
                cond["lastTransitionTime"] = existing["lastTransitionTime"].clone();
            }
            *existing = cond;
        }
        None => list.push(cond),
    }
}

async fn evict(
    state: &AppState,
    t: &Target,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let eviction = if body.is_empty() {
        json!({})
    } else {
        decode_body(headers, body)?
    };
    let opts: DeleteOptions = eviction
        .get("deleteOptions")
        .map(|o| serde_json::from_value(o.clone()))
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("invalid deleteOptions: {e}")))?
        .unwrap_or_default();
    delete_one(state, t.info, &t.key(), t.name(), &opts).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

fn scale_of(info: &ResourceInfo, obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector")
        .and_then(|s| skiff_common::LabelSelector::from_json(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": object::name(obj),
            "namespace": object::namespace(obj),
            "uid": object::uid(obj),
            "resourceVersion": object::resource_version(obj),
            "creationTimestamp": obj.pointer("/metadata/creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(info.kind != "Job"))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

async fn get_scale(state: &AppState, t: &Target) -> ApiResult<Response> {
    let current = state
        .store
        .get(&t.key())
        .await?
        .ok_or_else(|| ApiError::not_found(t.info, t.name()))?;
    Ok(json_response(
        StatusCode::OK,
        &scale_of(t.info, &current.value),
    ))
}

async fn update_scale(
    state: &AppState,
    t: &Target,
    scale: Value,
    manager: &str,
) -> ApiResult<Response> {
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or_else(|| {
            ApiError::invalid(
                t.info,
                t.name(),
                vec![crate::error::Cause::required("spec.replicas")],
            )
        })?;
    if replicas < 0 {
        return Err(ApiError::new(422, "Invalid", format!(
            "Scale.autoscaling \"{}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0", t.name()
        )));
    }
    let precondition = body_precondition(&scale)?;
    let (stored, _) = guaranteed_update(state, t, Mode::Main, false, Some(manager), |current| {
        let mut next = current.clone();
        next["spec"]["replicas"] = json!(replicas);
        Ok((next, precondition))
    })
    .await?;
    Ok(json_response(StatusCode::OK, &scale_of(t.info, &stored)))
}

async fn patch_scale(
    state: &AppState,
    t: &Target,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ty = PatchType::from_content_type(content_type)?;
    let patch_body = patch::parse_body(ty, body)?;
    let current = state
        .store
        .get(&t.key())
        .await?
        .ok_or_else(|| ApiError::not_found(t.info, t.name()))?;
    let mut scale = scale_of(t.info, &current.value);
    let scale_info = t.info;
    scale = patch::apply(
        scale_info,
        if ty == PatchType::Json {
            ty
        } else {
            PatchType::Merge
        },
        &scale,
        &patch_body,
    )?;
    if let Some(m) = scale["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    update_scale(state, t, scale, &field_manager(params, headers)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_resources_namespaces_and_subresources() {
        let t = parse_path("/api/v1/namespaces/default/pods/web-1/status").unwrap();
        assert_eq!(t.info.plural, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web-1"));
        assert_eq!(t.sub, Some(Subresource::Status));

        let t = parse_path("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!(t.info.plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("kube-system"));

        let t = parse_path("/api/v1/namespaces/dev/finalize").unwrap();
        assert_eq!(t.info.plural, "namespaces");
        assert_eq!(t.sub, Some(Subresource::Finalize));

        let t = parse_path("/apis/apps/v1/deployments").unwrap();
        assert!(t.namespace.is_none() && t.name.is_none());

        let t = parse_path("/api/v1/watch/namespaces/default/pods").unwrap();
        assert!(t.watch_path);

        assert!(parse_path("/api/v1/namespaces/default/configmaps/x/scale").is_none());
        assert!(parse_path("/apis/apps/v1/widgets").is_none());
        assert!(parse_path("/api/v1/pods/name-without-namespace").is_none());
    }

    #[test]
    fn pods_on_nodes_are_deleted_gracefully() {
        let pods = registry::find("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30}, "status": {"phase": "Running"}});
        assert_eq!(
            plan_delete(pods, &pod, &DeleteOptions::default()),
            DeletePlan::Mark {
                grace: 30,
                add_finalizers: vec![]
            }
        );
        let now = DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        assert_eq!(plan_delete(pods, &pod, &now), DeletePlan::Remove);
        let unscheduled = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(
            plan_delete(pods, &unscheduled, &DeleteOptions::default()),
            DeletePlan::Remove
        );
    }

    #[test]
    fn propagation_policies_add_their_finalizers() {
        let deps = registry::find("apps", "v1", "deployments").unwrap();
        let d = json!({"metadata": {"name": "d"}});
        let fg = DeleteOptions {
            propagation_policy: Some("Foreground".into()),
            ..Default::default()
        };
        assert_eq!(
            plan_delete(deps, &d, &fg),
            DeletePlan::Mark {
                grace: 0,
                add_finalizers: vec!["foregroundDeletion"]
            }
        );
        let orphan = DeleteOptions {
            orphan_dependents: Some(true),
            ..Default::default()
        };
        assert_eq!(
            plan_delete(deps, &d, &orphan),
            DeletePlan::Mark {
                grace: 0,
                add_finalizers: vec!["orphan"]
            }
        );
        assert_eq!(
            plan_delete(deps, &d, &DeleteOptions::default()),
            DeletePlan::Remove
        );
    }

    #[test]
    fn continue_tokens_round_trip_and_stay_in_their_prefix() {
        let token = encode_continue(42, "/registry/pods/default/b\u{0}");
        let decoded = decode_continue(&token, "/registry/pods/default/").unwrap();
        assert_eq!(decoded.rv, 42);
        assert!(decode_continue(&token, "/registry/secrets/").is_err());
    }

    #[test]
    fn selection_turns_modifications_into_adds_and_deletes() {
        let pods = registry::find("", "v1", "pods").unwrap();
        let sel = Selection::parse(pods, Some("app=web"), None).unwrap();
        let before = Arc::new(json!({"metadata": {"labels": {"app": "web"}}}));
        let after = Arc::new(json!({"metadata": {"labels": {"app": "db"}}}));
        let ev = CacheEvent::new(
            EventType::Modified,
            "/registry/pods/d/p".into(),
            after.clone(),
            Some(before.clone()),
            5,
        );
        assert_eq!(
            classify(&ev, "/registry/pods/", &sel),
            Some(EventType::Deleted)
        );
        let ev = CacheEvent::new(
            EventType::Modified,
            "/registry/pods/d/p".into(),
            before,
            Some(after),
            6,
        );
        assert_eq!(
            classify(&ev, "/registry/pods/", &sel),
            Some(EventType::Added)
        );
    }
}
