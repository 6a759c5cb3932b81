//! Content negotiation: the object itself, or a `meta.k8s.io/v1` Table for `kubectl get`.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use crate::params::Params;
use crate::printers::{self, IncludeObject};
use crate::registry::strategy::KindStrategy;
use crate::wire::json_response;

/// The response format asked for.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    pub table: Option<IncludeObject>,
}

impl Format {
    pub fn of(headers: &HeaderMap, params: &Params) -> Format {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Format {
            table: printers::wants_table_accept(accept)
                .then(|| IncludeObject::parse(params.get("includeObject"))),
        }
    }

    pub fn object(self, strategy: &dyn KindStrategy, value: &Value) -> Value {
        match self.table {
            Some(include) => {
                printers::table_for_object(strategy.printer(), strategy.info().kind, value, include)
            }
            None => value.clone(),
        }
    }

    pub fn list(self, strategy: &dyn KindStrategy, list: &Value) -> Value {
        match self.table {
            Some(include) => {
                printers::table_for_list(strategy.printer(), strategy.info().kind, list, include)
            }
            None => list.clone(),
        }
    }
}

/// Answer with `value` in the format the client asked for.
pub fn respond(
    headers: &HeaderMap,
    strategy: &dyn KindStrategy,
    code: StatusCode,
    value: &Value,
) -> Response {
    json_response(
        code,
        &Format::of(headers, &Params::default()).object(strategy, value),
    )
}
