//! The agent's HTTP API: `/healthz`, `/metrics`, container logs (the path the apiserver's
//! `pods/log` proxy calls, as the kubelet serves it) and image import.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::Shared;

/// Which log files belong to containers still running (a `follow` stream ends when its
/// container is no longer running and the file has been read to its end).
#[derive(Default)]
pub struct LogState {
    running: Mutex<HashSet<String>>,
}

impl LogState {
    pub fn set_running(&self, path: &str, running: bool) {
        let mut set = self.running.lock().expect("log state lock");
        if running {
            set.insert(path.to_string());
        } else {
            set.remove(path);
        }
    }

    pub fn is_running(&self, path: &Path) -> bool {
        let set = self.running.lock().expect("log state lock");
        set.contains(&path.display().to_string())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    pub tail_lines: Option<usize>,
    pub follow: Option<bool>,
    pub previous: Option<bool>,
    pub limit_bytes: Option<usize>,
    pub timestamps: Option<bool>,
    /// Only lines logged in the last this many seconds (`kubectl logs --since=10s`).
    pub since_seconds: Option<i64>,
    /// Only lines logged at or after this RFC 3339 time (`kubectl logs --since-time=...`).
    pub since_time: Option<String>,
}

impl LogQuery {
    /// The earliest log time asked for (`sinceSeconds` counts back from now, as the kubelet
    /// counts it when the request arrives), or why the request is invalid: the checks
    /// Kubernetes' PodLogOptions validation makes.
    pub fn since(&self, now: Timestamp) -> Result<Option<Timestamp>, String> {
        match (self.since_seconds, self.since_time.as_deref()) {
            (Some(_), Some(_)) => {
                Err("at most one of `sinceTime` or `sinceSeconds` may be specified".into())
            }
            (Some(s), None) if s < 1 => Err(format!(
                "sinceSeconds: Invalid value: {s}: must be greater than 0"
            )),
            (Some(s), None) => Ok(Some(
                now.saturating_sub(SignedDuration::from_secs(s))
                    .unwrap_or(Timestamp::MIN),
            )),
            (None, Some(t)) => t
                .parse::<Timestamp>()
                .map(Some)
                .map_err(|e| format!("sinceTime: Invalid value: {t:?}: not an RFC 3339 time: {e}")),
            (None, None) => Ok(None),
        }
    }
}

/// Drop the lines logged before `since` (the kubelet skips exactly those). A line whose
/// timestamp does not parse is kept: dropping output silently would be worse than showing it.
fn keep_since(lines: &mut Vec<super::cri_log::Line<'_>>, since: Option<Timestamp>) {
    let Some(since) = since else { return };
    lines.retain(|l| {
        l.timestamp
            .parse::<Timestamp>()
            .map_or(true, |t| t >= since)
    });
}

/// Cut `out` to what is left of a `limitBytes` budget and take it from the budget.
fn clip(out: &mut Vec<u8>, remaining: &mut Option<usize>) {
    if let Some(left) = remaining {
        out.truncate(*left);
        *left -= out.len();
    }
}

/// The users whose client certificates the agent API serves: the apiserver's
/// (`kube-apiserver-kubelet-client`) and cluster admins (`system:masters`).
fn may_use_the_api(identity: &skiff_pki::CertIdentity) -> bool {
    identity.user == skiff_pki::cluster::KUBELET_CLIENT_USER
        || identity
            .groups
            .iter()
            .any(|g| g == skiff_pki::cluster::MASTERS_GROUP)
}

/// Refuse clients whose verified certificate names someone else (the TLS handshake already
/// refused connections without a certificate from the cluster CA).
async fn authorize(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let identity = req
        .extensions()
        .get::<skiff_component::https::Connection>()
        .and_then(|c| c.certificate.clone());
    match identity {
        Some(Ok(id)) if may_use_the_api(&id) => next.run(req).await,
        Some(Ok(id)) => (
            StatusCode::FORBIDDEN,
            format!(
                "Forbidden (user={}, verb=get, resource=nodes, subresource=proxy)",
                id.user
            ),
        )
            .into_response(),
        _ => (StatusCode::UNAUTHORIZED, "Unauthorized").into_response(),
    }
}

/// TLS for the agent API: a serving certificate from a CA of the agent's own (as a kubelet's
/// self-signed one; the apiserver does not verify it) and client certificates from the
/// cluster CA required.
pub fn serving_tls(
    node: &str,
    host_ip: &str,
    client_ca: &str,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let authority = skiff_pki::Authority::generate(&format!("{node}-ca"))?;
    let mut ips = vec![std::net::IpAddr::from([127, 0, 0, 1])];
    ips.extend(host_ip.parse::<std::net::IpAddr>());
    let serving = authority.issue(&skiff_pki::CertRequest::server(
        node,
        vec![node.to_string(), "localhost".into()],
        ips,
    ))?;
    let config = skiff_pki::tls::server_config(
        &serving.cert_pem,
        &serving.key_pem,
        Some(client_ca),
        skiff_pki::tls::ClientAuth::Required,
    )?;
    Ok(Arc::new(config))
}

pub fn router(shared: Arc<Shared>, authenticated: bool) -> Router {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route("/images/load", post(load_image))
        .with_state(shared);
    if authenticated {
        router.layer(axum::middleware::from_fn(authorize))
    } else {
        router
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let running = shared.logs.running.lock().map(|s| s.len()).unwrap_or(0);
    (
        [("content-type", "text/plain; version=0.0.4")],
        format!(
            "# HELP skiff_agent_running_containers Containers the agent sees running.\n\
             # TYPE skiff_agent_running_containers gauge\n\
             skiff_agent_running_containers {running}\n"
        ),
    )
}

fn error(code: StatusCode, message: String) -> Response {
    (code, message).into_response()
}

/// The newest pod directory for namespace/name (a pod recreated under the same name gets a new
/// UID and so a new directory).
fn find_pod_dir(root: &Path, ns: &str, pod: &str) -> Option<PathBuf> {
    let prefix = format!("{ns}_{pod}_");
    let entries = std::fs::read_dir(root.join("pods")).ok()?;
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

/// The log file of run `attempt` of a container: CRI format (timestamped by the
/// [`super::cri_log`] logger) or the raw output the shim writes itself.
pub fn log_file_name(attempt: u32, cri: bool) -> String {
    if cri {
        format!("{attempt}{}", super::cri_log::SUFFIX)
    } else {
        format!("{attempt}.log")
    }
}

fn is_cri(path: &Path) -> bool {
    path.to_string_lossy().ends_with(super::cri_log::SUFFIX)
}

/// Log files of a container, oldest attempt first.
pub fn attempts(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let stem = name
                        .strip_suffix(super::cri_log::SUFFIX)
                        .or_else(|| name.strip_suffix(".log"))?;
                    let n = stem.parse().ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// The last `n` lines of `data`.
pub fn tail(data: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &data[data.len()..];
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &data[i + 1..];
            }
        }
    }
    data
}

async fn container_logs(
    State(shared): State<Arc<Shared>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let Some(dir) = find_pod_dir(&shared.config.root_dir, &ns, &pod) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("pod {ns}/{pod} has no logs on this node"),
        );
    };
    let files = attempts(&dir.join(&container));
    let file = if q.previous.unwrap_or(false) {
        files.len().checked_sub(2).map(|i| files[i].clone())
    } else {
        files.last().cloned()
    };
    let Some(file) = file else {
        let what = if q.previous.unwrap_or(false) {
            "previous terminated container"
        } else {
            "container"
        };
        return error(
            StatusCode::BAD_REQUEST,
            format!("{what} \"{container}\" in pod \"{pod}\" has no logs"),
        );
    };
    let since = match q.since(Timestamp::now()) {
        Ok(since) => since,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let cri = is_cri(&file);
    let timestamps = q.timestamps.unwrap_or(false);
    if since.is_some() && !cri {
        // As with timestamps: without per-line times, "since" could only be guessed.
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "container \"{container}\" in pod \"{pod}\" was started without the timestamping \
                 logger (raw log file): sinceSeconds and sinceTime are not available"
            ),
        );
    }
    if timestamps && !cri {
        // Raw logs carry no times; inventing them (e.g. from the file's mtime) would lie.
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "container \"{container}\" in pod \"{pod}\" was started without the timestamping \
                 logger (raw log file): timestamps are not available"
            ),
        );
    }
    let data = match tokio::fs::read(&file).await {
        Ok(d) => d,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading logs: {e}"),
            )
        }
    };
    let follow = q.follow.unwrap_or(false) && !q.previous.unwrap_or(false);
    // What is there now, and the offset a follower continues from.
    let (mut first, offset) = if cri {
        let (mut lines, consumed) = super::cri_log::parse(&data);
        let mut offset = consumed;
        if !follow || !shared.logs.is_running(&file) {
            lines.extend(super::cri_log::trailing(&data, consumed));
            offset = data.len();
        }
        // Before the tail: the lines since a time are a suffix of the file (the logger stamps
        // them in order), so both orders give the same lines.
        keep_since(&mut lines, since);
        if let Some(n) = q.tail_lines {
            lines.drain(..lines.len().saturating_sub(n));
        }
        (super::cri_log::render(&lines, timestamps), offset)
    } else {
        let start = match q.tail_lines {
            Some(n) => data.len() - tail(&data, n).len(),
            None => 0,
        };
        (data[start..].to_vec(), data.len())
    };
    // As the kubelet: at most limitBytes bytes from where the output starts, counted across
    // everything a follow stream sends; the stream ends when they are used up.
    let mut remaining = q.limit_bytes;
    clip(&mut first, &mut remaining);
    if !follow || remaining == Some(0) {
        return ([("content-type", "text/plain")], first).into_response();
    }
    // follow: stream what is there, then what gets appended, until the container stops.
    let state = Follow {
        first: Some(Bytes::from(first)),
        offset: offset as u64,
        shared,
        file,
        cri,
        timestamps,
        since,
        remaining,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        if let Some(b) = st.first.take() {
            return Some((Ok::<_, std::io::Error>(b), st));
        }
        loop {
            if st.remaining == Some(0) {
                return None;
            }
            let running = st.shared.logs.is_running(&st.file);
            let chunk = read_from(&st.file, st.offset).await.unwrap_or_default();
            let mut out = if st.cri {
                let (mut lines, mut consumed) = super::cri_log::parse(&chunk);
                if !running {
                    lines.extend(super::cri_log::trailing(&chunk, consumed));
                    consumed = chunk.len();
                }
                st.offset += consumed as u64;
                keep_since(&mut lines, st.since);
                super::cri_log::render(&lines, st.timestamps)
            } else {
                st.offset += chunk.len() as u64;
                chunk
            };
            clip(&mut out, &mut st.remaining);
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), st));
            }
            if !running {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    ([("content-type", "text/plain")], Body::from_stream(stream)).into_response()
}

/// Where a `follow` stream is.
struct Follow {
    /// What was in the file when the request came, not sent yet.
    first: Option<Bytes>,
    offset: u64,
    shared: Arc<Shared>,
    file: PathBuf,
    cri: bool,
    timestamps: bool,
    since: Option<Timestamp>,
    /// What is left of `limitBytes`.
    remaining: Option<usize>,
}

async fn read_from(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(path).await?;
    f.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).await?;
    Ok(buf)
}

/// POST an OCI layout tarball as the body; answers with the image names imported.
async fn load_image(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let tmp = shared
        .config
        .root_dir
        .join(format!("upload-{}.tar", Timestamp::now().as_nanosecond()));
    if let Err(e) = tokio::fs::write(&tmp, &body).await {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("storing upload: {e}"),
        );
    }
    let result = shared.containerd.import_layout_tar(&tmp, None).await;
    let _ = tokio::fs::remove_file(&tmp).await;
    match result {
        Ok(names) => axum::Json(serde_json::json!({ "images": names })).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc\n", 5), b"a\nb\nc\n");
        assert_eq!(tail(b"a\nb\nc", 1), b"c");
        assert_eq!(tail(b"a\nb\n", 0), b"");
    }

    #[test]
    fn since_seconds_and_since_time_as_podlogoptions_validates_them() {
        let now = "2026-01-01T00:01:00Z".parse::<Timestamp>().unwrap();
        let q = |s: Option<i64>, t: Option<&str>| LogQuery {
            since_seconds: s,
            since_time: t.map(str::to_string),
            ..Default::default()
        };
        let at = |t: &str| Some(t.parse::<Timestamp>().unwrap());
        assert_eq!(q(None, None).since(now), Ok(None));
        assert_eq!(q(Some(10), None).since(now), Ok(at("2026-01-01T00:00:50Z")));
        assert_eq!(
            q(None, Some("2025-12-31T23:00:00+01:00")).since(now),
            Ok(at("2025-12-31T22:00:00Z"))
        );
        assert!(q(Some(0), None)
            .since(now)
            .unwrap_err()
            .contains("greater than 0"));
        assert!(q(Some(1), Some("2026-01-01T00:00:00Z"))
            .since(now)
            .unwrap_err()
            .contains("at most one"));
        assert!(q(None, Some("yesterday"))
            .since(now)
            .unwrap_err()
            .contains("RFC 3339"));
    }

    #[test]
    fn since_keeps_lines_at_or_after_it_and_limit_bytes_is_one_budget() {
        let data = b"2026-01-01T00:00:00.5Z stdout F old\n\
                     2026-01-01T00:00:01Z stdout F edge\n\
                     2026-01-01T00:00:02.25Z stderr F new\n";
        let (mut lines, _) = crate::kubelet::cri_log::parse(data);
        let since = "2026-01-01T00:00:01Z".parse::<Timestamp>().unwrap();
        keep_since(&mut lines, Some(since));
        assert_eq!(
            crate::kubelet::cri_log::render(&lines, false),
            b"edge\nnew\n"
        );

        let mut remaining = Some(6);
        let mut a = b"abcd".to_vec();
        clip(&mut a, &mut remaining);
        let mut b = b"efgh".to_vec();
        clip(&mut b, &mut remaining);
        assert_eq!(
            (a.as_slice(), b.as_slice(), remaining),
            (&b"abcd"[..], &b"ef"[..], Some(0))
        );
        let mut unlimited = None;
        let mut c = b"xyz".to_vec();
        clip(&mut c, &mut unlimited);
        assert_eq!(c, b"xyz");
    }

    #[test]
    fn attempts_are_ordered_numerically() {
        let d = tempfile::tempdir().unwrap();
        for n in [10, 2, 1] {
            std::fs::write(d.path().join(format!("{n}.log")), "").unwrap();
        }
        std::fs::write(d.path().join(log_file_name(3, true)), "").unwrap();
        let names: Vec<String> = attempts(d.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["1.log", "2.log", "3.cri.log", "10.log"]);
    }
}
