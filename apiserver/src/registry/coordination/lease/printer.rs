//! `kubectl get` columns for Lease, as kube-apiserver's printers render them.

#![allow(unused_imports)]

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::*;
use crate::printers::*;

pub const LEASE_COLUMNS: &[Col] = &[
    NAME,
    c(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

pub fn lease_cells(lease: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(lease),
        s(st(lease, &["spec", "holderIdentity"])),
        age(lease, now),
    ]
}

pub static PRINTER: Printer = printer(LEASE_COLUMNS, lease_cells);
