//! `kubectl get` columns for EndpointSlice, as kube-apiserver's printers render them.

#![allow(unused_imports)]

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::*;
use crate::printers::*;

pub const ENDPOINTSLICE_COLUMNS: &[Col] = &[
    NAME,
    c(
        "AddressType",
        "string",
        "addressType specifies the type of address carried by this EndpointSlice.",
    ),
    c(
        "Ports",
        "string",
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    c(
        "Endpoints",
        "string",
        "endpoints is a list of unique endpoints in this slice.",
    ),
    AGE,
];

pub fn format_discovery_ports(slice: &Value) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for p in arr(slice, &["ports"]) {
        if list.len() < MAX {
            let text = match (int(p, &["port"]), get(p, &["name"]).and_then(Value::as_str)) {
                (Some(n), _) => n.to_string(),
                (None, Some(n)) => n.to_string(),
                (None, None) => "*".to_string(),
            };
            list.push(text);
        } else if list.len() == MAX {
            more = true;
        }
        count += 1;
    }
    list_with_more(&list, more, count, MAX)
}

pub fn format_discovery_endpoints(slice: &Value) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for e in arr(slice, &["endpoints"]) {
        for a in arr(e, &["addresses"]) {
            if list.len() < MAX {
                list.push(a.as_str().unwrap_or("").to_string());
            } else if list.len() == MAX {
                more = true;
            }
            count += 1;
        }
    }
    list_with_more(&list, more, count, MAX)
}

pub fn endpointslice_cells(slice: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(slice),
        s(st(slice, &["addressType"])),
        s(format_discovery_ports(slice)),
        s(format_discovery_endpoints(slice)),
        age(slice, now),
    ]
}

pub static PRINTER: Printer = printer(ENDPOINTSLICE_COLUMNS, endpointslice_cells);
