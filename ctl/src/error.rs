//! What can go wrong, worded as kubectl words it, plus what to do about it.

use serde_json::Value;

/// A failed skiffctl command. `Display` is the message printed after `error: ` (or as is for
/// server errors, which kubectl prints as `Error from server (...)`).
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The apiserver could not be reached at all.
    #[error("{}", connection_message(server, detail))]
    Connection { server: String, detail: String },
    /// The apiserver answered with a failure `Status`.
    #[error("{}", status_message(status, context.as_deref()))]
    Api {
        code: u16,
        status: Value,
        /// e.g. `error when creating "web.yaml"`.
        context: Option<String>,
    },
    /// The command line or input is wrong; nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// Anything else (bad kubeconfig, I/O, ...).
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

pub type Result<T, E = CtlError> = std::result::Result<T, E>;

impl CtlError {
    pub fn usage(msg: impl Into<String>) -> CtlError {
        CtlError::Usage(msg.into())
    }

    /// The HTTP status code of an API error.
    pub fn code(&self) -> Option<u16> {
        match self {
            CtlError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// Adds kubectl's `error when creating "FILE"` context to a server error.
    pub fn with_context(self, what: String) -> CtlError {
        match self {
            CtlError::Api { code, status, .. } => CtlError::Api {
                code,
                status,
                context: Some(what),
            },
            other => other,
        }
    }

    /// The line printed for this error: server errors as `Error from server (Reason): ...`,
    /// the rest as `error: ...`.
    pub fn render(&self) -> String {
        match self {
            CtlError::Api { code: 422, .. } | CtlError::Connection { .. } => self.to_string(),
            CtlError::Api { .. } => format!("Error from server {self}"),
            _ => format!("error: {self}"),
        }
    }
}

/// `The connection to the server HOST was refused ...` plus the skiff hint.
pub fn connection_message(server: &str, detail: &str) -> String {
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let first = if detail.to_ascii_lowercase().contains("refused") {
        format!("The connection to the server {host} was refused - did you specify the right host or port?")
    } else {
        format!("Unable to connect to the server {server}: {detail}")
    };
    format!(
        "{first}\nIs the skiff cluster running? Start one with `make up`, or point --server or --kubeconfig at a running apiserver."
    )
}

/// kubectl's rendering of a failure Status. A 422 lists every field cause on its own line.
pub fn status_message(status: &Value, context: Option<&str>) -> String {
    let reason = status["reason"].as_str().unwrap_or("Unknown");
    let message = status["message"].as_str().unwrap_or("unknown error");
    let causes = status["details"]["causes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if status["code"] == 422 && !causes.is_empty() {
        let kind = status["details"]["kind"].as_str().unwrap_or("object");
        let name = status["details"]["name"].as_str().unwrap_or("");
        let mut out = format!("The {kind} \"{name}\" is invalid:");
        for c in &causes {
            let field = c["field"].as_str().unwrap_or("");
            let msg = c["message"].as_str().unwrap_or("");
            if field.is_empty() {
                out.push_str(&format!("\n* {msg}"));
            } else {
                out.push_str(&format!("\n* {field}: {msg}"));
            }
        }
        return out;
    }
    match context {
        Some(ctx) => format!("({reason}): {ctx}: {message}"),
        None => format!("({reason}): {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refused_connection_names_the_server_and_suggests_make_up() {
        let m = connection_message(
            "http://127.0.0.1:6443",
            "tcp connect error: Connection refused",
        );
        assert!(m.starts_with("The connection to the server 127.0.0.1:6443 was refused"));
        assert!(m.contains("make up"));
    }

    #[test]
    fn invalid_lists_each_cause() {
        let st = json!({"kind": "Status", "code": 422, "reason": "Invalid", "message": "x",
            "details": {"kind": "Deployment", "name": "web", "causes": [
                {"field": "spec.replicas", "message": "Invalid value: -1: must be >= 0"},
                {"field": "metadata.name", "message": "Required value"}]}});
        assert_eq!(
            status_message(&st, None),
            "The Deployment \"web\" is invalid:\n* spec.replicas: Invalid value: -1: must be >= 0\n* metadata.name: Required value"
        );
    }

    #[test]
    fn not_found_reads_like_kubectl() {
        let st = json!({"code": 404, "reason": "NotFound", "message": "deployments.apps \"x\" not found"});
        let e = CtlError::Api {
            code: 404,
            status: st,
            context: None,
        };
        assert_eq!(
            e.render(),
            "Error from server (NotFound): deployments.apps \"x\" not found"
        );
    }
}
