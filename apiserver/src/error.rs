//! API errors, rendered as `metav1.Status` objects the way kube-apiserver renders them, so that
//! kubectl and kube-rs recognise the reason (`NotFound`, `Conflict`, `Invalid`, ...).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::resource::ResourceInfo;
use crate::storage::StoreError;

/// One invalid field of a rejected object (`details.causes[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }

    pub fn invalid(field: impl Into<String>, value: impl std::fmt::Display, why: &str) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {}: {why}", quote_value(&value.to_string())),
        }
    }

    pub fn unsupported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let supported: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: \"{value}\": supported values: {}",
                supported.join(", ")
            ),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: impl std::fmt::Display) -> Self {
        Cause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {}", quote_value(&value.to_string())),
        }
    }

    pub fn forbidden(field: impl Into<String>, why: &str) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {why}"),
        }
    }

    pub fn immutable(field: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: "Invalid value: field is immutable".into(),
        }
    }

    /// Kubernetes renders the cause as `field: message` inside the Status message.
    fn render(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

fn quote_value(v: &str) -> String {
    if v.parse::<f64>().is_ok() {
        v.to_string()
    } else {
        format!("\"{v}\"")
    }
}

/// `metav1.StatusReason`: why a request failed, as clients test it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    AlreadyExists,
    Conflict,
    Gone,
    Expired,
    Invalid,
    MethodNotAllowed,
    NotAcceptable,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    Timeout,
    InternalError,
    ServiceUnavailable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Gone => "Gone",
            Reason::Expired => "Expired",
            Reason::Invalid => "Invalid",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::Timeout => "Timeout",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answered to an API client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: Reason,
    pub message: String,
    pub details: Option<Box<Value>>,
    /// Extra response headers (e.g. `Retry-After`).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: u16, reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_details(mut self, info: &ResourceInfo, name: &str) -> Self {
        let mut details = json!({ "name": name, "kind": info.plural });
        if !info.group.is_empty() {
            details["group"] = json!(info.group);
        }
        self.details = Some(Box::new(details));
        self
    }

    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        Self::new(
            404,
            Reason::NotFound,
            format!("{} \"{name}\" not found", info.qualified_plural()),
        )
        .with_details(info, name)
    }

    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        Self::new(
            409,
            Reason::AlreadyExists,
            format!("{} \"{name}\" already exists", info.qualified_plural()),
        )
        .with_details(info, name)
    }

    pub fn conflict(info: &ResourceInfo, name: &str, why: &str) -> Self {
        Self::new(
            409,
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                info.qualified_plural()
            ),
        )
        .with_details(info, name)
    }

    pub fn stale(info: &ResourceInfo, name: &str) -> Self {
        Self::conflict(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn invalid(info: &ResourceInfo, name: &str, causes: Vec<Cause>) -> Self {
        let rendered: Vec<String> = causes.iter().map(Cause::render).collect();
        let message = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let kind_group = if info.group.is_empty() {
            info.kind.to_string()
        } else {
            format!("{}.{}", info.kind, info.group)
        };
        let mut err = Self::new(
            422,
            Reason::Invalid,
            format!("{kind_group} \"{name}\" is invalid: {message}"),
        );
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        let mut details = json!({ "name": name, "kind": info.kind, "causes": causes });
        if !info.group.is_empty() {
            details["group"] = json!(info.group);
        }
        err.details = Some(Box::new(details));
        err
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, Reason::BadRequest, message)
    }

    pub fn forbidden(info: &ResourceInfo, name: &str, why: &str) -> Self {
        let what = if name.is_empty() {
            info.qualified_plural()
        } else {
            format!("{} \"{name}\"", info.qualified_plural())
        };
        Self::new(
            403,
            Reason::Forbidden,
            format!("{what} is forbidden: {why}"),
        )
        .with_details(info, name)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, Reason::MethodNotAllowed, message)
    }

    pub fn not_found_path() -> Self {
        Self::new(
            404,
            Reason::NotFound,
            "the server could not find the requested resource",
        )
    }

    /// 410: the requested resourceVersion is no longer available.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, Reason::Expired, message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            Reason::RequestEntityTooLarge,
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        // kubectl 1.32+ sends its generator commands' objects as protobuf; say how to get
        // the same result through JSON rather than leave the user with a bare 415.
        let hint = if content_type == "application/vnd.kubernetes.protobuf" {
            "; skiff does not decode Kubernetes protobuf bodies yet: send JSON instead (for kubectl create <kind> ..., add --dry-run=client -o yaml and pipe the output to kubectl create -f -)"
        } else {
            ""
        };
        Self::new(
            415,
            Reason::UnsupportedMediaType,
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type:?}){hint}"),
        )
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        let mut e = Self::new(504, Reason::Timeout, message);
        e.retry_after = Some(1);
        e
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            Reason::InternalError,
            format!("Internal error occurred: {message}"),
        )
    }

    pub fn unavailable(message: impl std::fmt::Display) -> Self {
        let mut e = Self::new(503, Reason::ServiceUnavailable, message.to_string());
        e.retry_after = Some(1);
        e
    }

    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = (**details).clone();
        }
        if let Some(secs) = self.retry_after {
            let details = status
                .as_object_mut()
                .expect("status is an object")
                .entry("details")
                .or_insert_with(|| json!({}));
            details["retryAfterSeconds"] = json!(secs);
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut resp = (
            code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Compacted(_) | StoreError::TooOldResourceVersion { .. } => {
                ApiError::expired(e.to_string())
            }
            StoreError::TooLargeResourceVersion { .. } => ApiError::timeout(e.to_string()),
            StoreError::InvalidResourceVersion(_) | StoreError::InvalidContinue(_) => {
                ApiError::bad_request(e.to_string())
            }
            StoreError::Etcd(_)
            | StoreError::Corrupt { .. }
            | StoreError::CacheStopped
            | StoreError::Encryption(_) => ApiError::internal(e),
        }
    }
}
