//! `kubectl get` columns for ConfigMap, as kube-apiserver's printers render them.

#![allow(unused_imports)]

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::*;
use crate::printers::*;

pub const CONFIGMAP_COLUMNS: &[Col] = &[
    NAME,
    c("Data", "string", "Data contains the configuration data."),
    AGE,
];

pub fn configmap_cells(cm: &Value, now: Timestamp) -> Vec<Value> {
    let n = obj_len(cm, &["data"]) + obj_len(cm, &["binaryData"]);
    vec![name(cm), json!(n), age(cm, now)]
}

pub static PRINTER: Printer = printer(CONFIGMAP_COLUMNS, configmap_cells);
