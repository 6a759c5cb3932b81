//! `kubectl get` columns for Endpoints, as kube-apiserver's printers render them.

#![allow(unused_imports)]

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::*;
use crate::printers::*;

pub const ENDPOINTS_COLUMNS: &[Col] = &[
    NAME,
    c(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

/// Kubernetes' `formatEndpoints` with all ports: at most three
/// `ip:port` entries, then " + N more...".
pub fn format_endpoints(ep: &Value) -> String {
    const MAX: usize = 3;
    let subsets = arr(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for subset in subsets {
        let addresses = arr(subset, &["addresses"]);
        let ports = arr(subset, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(st(a, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            let port_num = int(port, &["port"]).unwrap_or(0);
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(st(a, &["ip"]), port_num));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

pub fn endpoints_cells(ep: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(ep), s(format_endpoints(ep)), age(ep, now)]
}

pub static PRINTER: Printer = printer(ENDPOINTS_COLUMNS, endpoints_cells);
