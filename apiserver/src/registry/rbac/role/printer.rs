//! `kubectl get` columns for Role and ClusterRole, as kube-apiserver's printers render them.

use jiff::Timestamp;
use serde_json::Value;

use crate::printers::format::*;
use crate::printers::*;

pub const ROLE_COLUMNS: &[Col] = &[
    NAME,
    c("Created At", "date", "CreationTimestamp is a timestamp representing the server time when this object was created."),
];

pub fn role_cells(role: &Value, _now: Timestamp) -> Vec<Value> {
    vec![name(role), s(st(role, &["metadata", "creationTimestamp"]))]
}

pub static PRINTER: Printer = printer(ROLE_COLUMNS, role_cells);
