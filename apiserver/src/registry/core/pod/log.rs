//! `pods/log`: the node's agent serves container logs; the apiserver finds the pod's node and
//! streams the agent's answer through, so `kubectl logs` (with `-f`, `--tail`, `--previous`)
//! works as it does with a kubelet.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use futures::future::BoxFuture;

use crate::error::{ApiError, ApiResult, Reason};
use crate::registry::core::node::{self, agent_endpoint};
use crate::registry::strategy::{
    CustomSubresource, SubresourceDef, SubresourceHandler, SubresourceRequest,
};

pub const LOG: SubresourceDef = SubresourceDef {
    name: "log",
    kind: "Pod",
    group: "",
    version: "",
    verbs: &["get"],
    handler: SubresourceHandler::Custom(&Log),
};

struct Log;

impl CustomSubresource for Log {
    fn handle<'a>(&'a self, req: SubresourceRequest<'a>) -> BoxFuture<'a, ApiResult<Response>> {
        Box::pin(pod_log(req))
    }
}

/// Query parameters of PodLogOptions that the agent understands.
const FORWARDED: &[&str] = &[
    "follow",
    "tailLines",
    "previous",
    "timestamps",
    "limitBytes",
    "sinceSeconds",
    "sinceTime",
];

/// The container to read: the one named, or the pod's only container.
pub fn choose_container(pod: &Value, requested: Option<&str>) -> Result<String, String> {
    let names: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            pod.pointer("/spec/initContainers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .filter_map(|c| c["name"].as_str())
        .collect();
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match requested {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(format!("container {c} is not valid for pod {pod_name}")),
        None => {
            let main: Vec<&str> = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str())
                .collect();
            match main.as_slice() {
                [only] => Ok(only.to_string()),
                _ => Err(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    main.join(" ")
                )),
            }
        }
    }
}

async fn pod_log(req: SubresourceRequest<'_>) -> ApiResult<Response> {
    if req.method != axum::http::Method::GET {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let (name, params) = (req.name, req.params);
    let pod = req
        .resource
        .storage
        .get(&req.key())
        .await?
        .ok_or_else(|| ApiError::not_found(req.resource.info(), name))?
        .value;
    let container =
        choose_container(&pod, params.get("container")).map_err(ApiError::bad_request)?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let node = req
        .registry
        .of(&node::INFO)
        .storage
        .get(&node::INFO.key(None, node_name))
        .await?
        .ok_or_else(|| ApiError::not_found(&node::INFO, node_name))?
        .value;
    let (address, port) = agent_endpoint(&node).ok_or_else(|| {
        ApiError::unavailable(format!(
            "node {node_name} does not advertise an agent endpoint"
        ))
    })?;
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address
    };
    let query: Vec<(String, String)> = FORWARDED
        .iter()
        .filter_map(|k| params.get(k).map(|v| (k.to_string(), v.to_string())))
        .collect();
    let query = serde_urlencoded::to_string(&query).unwrap_or_default();
    let namespace = req.namespace.unwrap_or("default");
    let scheme = if req.agent_client.is_some() {
        "https"
    } else {
        "http"
    };
    let uri =
        format!("{scheme}://{host}:{port}/containerLogs/{namespace}/{name}/{container}?{query}");
    let request = http::Request::get(&uri)
        .body(Empty::<axum::body::Bytes>::new())
        .map_err(ApiError::internal)?;
    let sent = match req.agent_client {
        Some(tls) => {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((**tls).clone())
                .https_only()
                .enable_http1()
                .build();
            Client::builder(TokioExecutor::new())
                .build(connector)
                .request(request)
                .await
        }
        None => {
            Client::builder(TokioExecutor::new())
                .build_http()
                .request(request)
                .await
        }
    };
    let upstream = sent.map_err(|e| ApiError::unavailable(format!("Get \"{uri}\": {e}")))?;
    let status = upstream.status();
    if !status.is_success() {
        let body = upstream
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let code = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let message = String::from_utf8_lossy(&body).trim().to_string();
        return Err(match code {
            StatusCode::NOT_FOUND => ApiError::new(404, Reason::NotFound, message),
            StatusCode::BAD_REQUEST => ApiError::bad_request(message),
            _ => ApiError::internal(message),
        });
    }
    let mut resp = Response::new(Body::new(upstream.into_body()));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_only_container_is_the_default() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(choose_container(&pod, None).unwrap(), "a");
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let err = choose_container(&two, None).unwrap_err();
        assert_eq!(
            err,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert!(choose_container(&two, Some("c")).is_err());
    }

    #[test]
    fn the_agent_is_found_through_the_node_status() {
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        assert_eq!(agent_endpoint(&node), Some(("10.0.0.5".into(), 10250)));
        assert_eq!(agent_endpoint(&json!({"status": {}})), None);
    }
}
