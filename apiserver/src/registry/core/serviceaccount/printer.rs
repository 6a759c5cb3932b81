//! `kubectl get` columns for ServiceAccount, as kube-apiserver's printers render them.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::{age, name};
use crate::printers::{c, printer, Col, Printer, AGE, NAME};

pub const SERVICE_ACCOUNT_COLUMNS: &[Col] = &[
    NAME,
    c(
        "Secrets",
        "string",
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
    ),
    AGE,
];

pub fn service_account_cells(sa: &Value, now: Timestamp) -> Vec<Value> {
    let secrets = sa["secrets"].as_array().map_or(0, Vec::len);
    vec![name(sa), json!(secrets), age(sa, now)]
}

pub static PRINTER: Printer = printer(SERVICE_ACCOUNT_COLUMNS, service_account_cells);
