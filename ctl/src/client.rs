//! The connection to the apiserver: configuration from kubeconfig like kubectl's, and raw JSON
//! requests whose failures become [`CtlError`]s with kubectl's wording.

use std::path::PathBuf;

use bytes::Bytes;
use futures::Stream;
use http::{header, Method, Request};
use http_body_util::BodyExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

use crate::discovery::Discovery;
use crate::error::{CtlError, Result};

/// The media type kubectl asks for when it prints a table.
pub const TABLE_ACCEPT: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// Connection flags shared by every command.
#[derive(Clone, Debug, Default)]
pub struct ConnectionFlags {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub server: Option<String>,
    pub namespace: Option<String>,
}

/// A configured client plus the namespace commands act in.
pub struct Ctx {
    pub client: kube::Client,
    pub server: String,
    pub namespace: String,
    /// `-n` was given (apply refuses objects from another namespace then).
    pub namespace_explicit: bool,
    discovery: tokio::sync::OnceCell<Discovery>,
}

impl Ctx {
    /// Builds the client as kubectl does: `--kubeconfig`, else `$KUBECONFIG`, else
    /// `~/.kube/config`; `--context` picks the context, `--server` overrides its cluster URL.
    pub async fn connect(flags: &ConnectionFlags) -> Result<Ctx> {
        let kubeconfig = match &flags.kubeconfig {
            Some(path) => Some(Kubeconfig::read_from(path).map_err(|e| {
                CtlError::usage(format!("cannot read kubeconfig {}: {e}", path.display()))
            })?),
            None => Kubeconfig::read().ok(),
        };
        let options = KubeConfigOptions {
            context: flags.context.clone(),
            ..Default::default()
        };
        let mut config = match (kubeconfig, &flags.server) {
            (Some(kc), _) => kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| CtlError::usage(format!("invalid kubeconfig: {e}")))?,
            (None, Some(server)) => kube::Config::new(parse_server(server)?),
            (None, None) => {
                return Err(CtlError::usage(
                    "no kubeconfig found (tried $KUBECONFIG and ~/.kube/config) and no --server given; \
                     start a cluster with `make up`, which writes one",
                ))
            }
        };
        if let Some(server) = &flags.server {
            config.cluster_url = parse_server(server)?;
        }
        let namespace = flags
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let server = config.cluster_url.to_string();
        let server = server.trim_end_matches('/').to_string();
        let client = kube::Client::try_from(config)
            .map_err(|e| CtlError::usage(format!("cannot build a client for {server}: {e}")))?;
        Ok(Ctx {
            client,
            server,
            namespace,
            namespace_explicit: flags.namespace.is_some(),
            discovery: tokio::sync::OnceCell::new(),
        })
    }

    /// The API's resources, fetched once per command.
    pub async fn discovery(&self) -> Result<&Discovery> {
        self.discovery
            .get_or_try_init(|| self.fetch_discovery())
            .await
    }

    async fn fetch_discovery(&self) -> Result<Discovery> {
        let core = self.get("/api").await?;
        let groups = self.get("/apis").await?;
        let paths = Discovery::list_paths(&core, &groups);
        let lists = futures::future::join_all(paths.iter().map(|(_, _, p)| self.get(p))).await;
        let lists: Vec<Value> = lists.into_iter().collect::<Result<_>>()?;
        Ok(Discovery::from_lists(
            paths
                .iter()
                .zip(&lists)
                .map(|((g, v, _), list)| (g.as_str(), v.as_str(), list)),
        ))
    }

    /// Sends a request; a failure Status becomes [`CtlError::Api`], an unreachable server
    /// [`CtlError::Connection`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        accept: &str,
    ) -> Result<http::Response<kube::client::Body>> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, accept);
        let bytes = match body {
            Some((bytes, content_type)) => {
                req = req.header(header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Vec::new(),
        };
        let req = req
            .body(bytes)
            .map_err(|e| CtlError::usage(format!("bad request path {path}: {e}")))?;
        let resp = self
            .client
            .send(req.map(kube::client::Body::from))
            .await
            .map_err(|e| CtlError::Connection {
                server: self.server.clone(),
                detail: error_chain(&e),
            })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let code = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let status = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(|v| v["kind"] == "Status")
            .unwrap_or_else(|| {
                serde_json::json!({
                    "kind": "Status", "code": code, "reason": reason_for(code),
                    "message": String::from_utf8_lossy(&bytes).trim().to_string(),
                })
            });
        Err(CtlError::Api {
            code,
            status,
            context: None,
        })
    }

    /// A request whose answer is JSON.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(&Value, &str)>,
        accept: &str,
    ) -> Result<Value> {
        let body = body.map(|(v, ct)| (serde_json::to_vec(v).unwrap_or_default(), ct));
        let resp = self.send(method, path, body, accept).await?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CtlError::Connection {
                server: self.server.clone(),
                detail: error_chain(&e),
            })?
            .to_bytes();
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            CtlError::Other(anyhow::anyhow!(
                "the server's answer to {path} is not JSON: {e}"
            ))
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.request(Method::GET, path, None, "application/json")
            .await
    }

    pub async fn patch(&self, path: &str, patch: &Value, content_type: &str) -> Result<Value> {
        self.request(
            Method::PATCH,
            path,
            Some((patch, content_type)),
            "application/json",
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.request(
            Method::POST,
            path,
            Some((body, "application/json")),
            "application/json",
        )
        .await
    }

    /// A streamed response (watch, logs) as chunks of bytes.
    pub async fn stream(
        &self,
        path: &str,
        accept: &str,
    ) -> Result<impl Stream<Item = Result<Bytes>> + use<>> {
        let resp = self.send(Method::GET, path, None, accept).await?;
        let server = self.server.clone();
        let body = resp.into_body();
        Ok(futures::stream::unfold(
            (body, server),
            |(mut body, server)| async move {
                loop {
                    match body.frame().await {
                        None => return None,
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                return Some((Ok(data), (body, server)));
                            }
                        }
                        Some(Err(e)) => {
                            let err = CtlError::Connection {
                                server: server.clone(),
                                detail: error_chain(&e),
                            };
                            return Some((Err(err), (body, server)));
                        }
                    }
                }
            },
        ))
    }
}

fn parse_server(server: &str) -> Result<http::Uri> {
    let with_scheme = if server.contains("://") {
        server.to_string()
    } else {
        format!("https://{server}")
    };
    with_scheme
        .parse()
        .map_err(|e| CtlError::usage(format!("invalid --server {server:?}: {e}")))
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "Unknown",
    }
}

/// An error and its sources, joined, so "Connection refused" deep inside is visible.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Query string from pairs, skipping empty values.
pub fn query(pairs: &[(&str, String)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", serde_urlencoded::to_string(kept).unwrap_or_default())
    }
}

/// Splits a byte stream into lines (newline-delimited watch events and log lines).
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    pub fn new() -> Self {
        LineBuffer {
            pending: Vec::new(),
        }
    }

    /// Adds a chunk and returns the complete lines it finished (without the newline).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        lines
    }

    /// Whatever remains after the stream ended.
    pub fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            None
        } else {
            let rest = std::mem::take(&mut self.pending);
            Some(String::from_utf8_lossy(&rest).into_owned())
        }
    }
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks() {
        let mut b = LineBuffer::new();
        assert!(b.push(b"{\"a\"").is_empty());
        assert_eq!(
            b.push(b":1}\n{\"b\":2}\nxx"),
            vec!["{\"a\":1}", "{\"b\":2}"]
        );
        assert_eq!(b.finish().as_deref(), Some("xx"));
    }

    #[test]
    fn query_skips_empty_values() {
        assert_eq!(
            query(&[("a", "".into()), ("labelSelector", "app=web".into())]),
            "?labelSelector=app%3Dweb"
        );
        assert_eq!(query(&[]), "");
    }
}
