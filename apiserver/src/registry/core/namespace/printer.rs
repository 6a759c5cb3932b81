//! `kubectl get` columns for Namespace, as kube-apiserver's printers render them.

#![allow(unused_imports)]

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::*;
use crate::printers::*;

pub const NAMESPACE_COLUMNS: &[Col] = &[
    NAME,
    c("Status", "string", "The status of the namespace"),
    AGE,
];

// --- Simple kinds ----------------------------------------------------------

pub fn namespace_cells(ns: &Value, now: Timestamp) -> Vec<Value> {
    let phase = match st(ns, &["status", "phase"]) {
        "" if has_deletion_timestamp(ns) => "Terminating",
        "" => "Active",
        p => p,
    };
    vec![name(ns), s(phase), age(ns, now)]
}

pub static PRINTER: Printer = printer(NAMESPACE_COLUMNS, namespace_cells);
