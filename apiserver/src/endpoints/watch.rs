//! WATCH: a subscription to the watch cache, streamed as newline-delimited JSON events, with
//! bookmarks, `sendInitialEvents`, and selection applied per event.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::negotiation::Format;
use super::HandlerRequest;
use crate::error::{ApiError, ApiResult};
use crate::printers::{self, Printer};
use crate::resource::ResourceInfo;
use crate::selection::Selection;
use crate::storage::{CacheEvent, EventType, StoreError};

/// How a cache event looks to a watcher with this selection: a MODIFIED event of an object
/// that enters or leaves the selection becomes ADDED or DELETED, as in kube-apiserver.
pub fn classify(ev: &CacheEvent, prefix: &str, selection: &Selection) -> Option<EventType> {
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

/// What a watch's events are rendered with: static, as the stream outlives the request.
#[derive(Clone, Copy)]
struct Rendering {
    format: Format,
    printer: &'static Printer,
    info: &'static ResourceInfo,
}

fn event_line(kind: EventType, ev: &CacheEvent, r: Rendering) -> Bytes {
    let obj = match r.format.table {
        Some(include) => Bytes::from(
            serde_json::to_vec(&printers::table_for_object(
                r.printer,
                r.info.kind,
                &ev.object,
                include,
            ))
            .unwrap_or_default(),
        ),
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

fn json_stream(body: Body) -> Response {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub async fn watch(req: &HandlerRequest<'_>) -> ApiResult<Response> {
    let t = &req.target;
    let (params, state) = (req.params, req.state);
    let strategy = t.kind.strategy.as_ref();
    let format = Format::of(req.headers, params);
    let field_selector = match (&t.name, t.watch_path) {
        (Some(name), true) => Some(format!("metadata.name={name}")),
        _ => params.get("fieldSelector").map(str::to_string),
    };
    let selection = Selection::parse(
        strategy,
        params.get("labelSelector"),
        field_selector.as_deref(),
    )?;
    let send_initial = params.flag("sendInitialEvents");
    let prefix = t.prefix();
    let sub = match req
        .resource()
        .storage
        .watch(&prefix, params.get("resourceVersion"), send_initial)
        .await
    {
        Ok(sub) => sub,
        // As kube-apiserver does: the watch starts, and its only event is the 410 error.
        Err(e @ StoreError::TooOldResourceVersion { .. }) => {
            let status = ApiError::from(e).to_status();
            let mut line =
                serde_json::to_vec(&json!({"type": "ERROR", "object": status})).unwrap_or_default();
            line.push(b'\n');
            return Ok(json_stream(Body::from(line)));
        }
        Err(e) => return Err(e.into()),
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
    let r = Rendering {
        format,
        printer: strategy.printer(),
        info: strategy.info(),
    };
    let stream = async_stream::stream! {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut last_rv = sub.revision;
        for ev in &sub.initial {
            if let Some(kind) = classify(ev, &prefix, &selection) {
                yield Ok::<Bytes, std::convert::Infallible>(event_line(kind, ev, r));
            }
        }
        if send_initial {
            yield Ok(bookmark_line(r.info, last_rv, true));
        }
        let mut live = sub.live;
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                _ = shutdown.changed() => break,
                _ = ticker.tick(), if bookmarks => yield Ok(bookmark_line(r.info, last_rv, false)),
                msg = live.recv() => match msg {
                    Ok(ev) => {
                        if ev.revision <= last_rv {
                            continue;
                        }
                        last_rv = ev.revision;
                        if let Some(kind) = classify(&ev, &prefix, &selection) {
                            yield Ok(event_line(kind, &ev, r));
                        }
                    }
                    // Too slow to keep up, or the cache restarted: end this watch; the client
                    // resumes from its last resourceVersion or re-lists on 410.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => break,
                },
            }
        }
    };
    Ok(json_stream(Body::from_stream(stream)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::core::pod::PodStrategy;

    #[test]
    fn selection_turns_modifications_into_adds_and_deletes() {
        let sel = Selection::parse(&PodStrategy, Some("app=web"), None).unwrap();
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
