//! `kubectl get` columns for Secret, as kube-apiserver's printers render them.

#![allow(unused_imports)]

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::*;
use crate::printers::*;

pub const SECRET_COLUMNS: &[Col] = &[
    NAME,
    c(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    c("Data", "string", "Data contains the secret data."),
    AGE,
];

pub fn secret_cells(secret: &Value, now: Timestamp) -> Vec<Value> {
    let ty = match st(secret, &["type"]) {
        "" => "Opaque",
        t => t,
    };
    vec![
        name(secret),
        s(ty),
        json!(obj_len(secret, &["data"])),
        age(secret, now),
    ]
}

pub static PRINTER: Printer = printer(SECRET_COLUMNS, secret_cells);
