//! `kubectl get` columns for Node, as kube-apiserver's printers render them.

#![allow(unused_imports)]

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::*;
use crate::printers::*;

pub const NODE_COLUMNS: &[Col] = &[
    NAME,
    c("Status", "string", "The status of the node"),
    c("Roles", "string", "The roles of the node"),
    AGE,
    c("Version", "string", "Kubelet Version reported by the node."),
    w("Internal-IP", "string", "List of addresses reachable to the node."),
    w("External-IP", "string", "List of addresses reachable to the node."),
    w("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    w("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    w("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];

// --- Node ------------------------------------------------------------------

pub fn node_roles(node: &Value) -> String {
    const PREFIX: &str = "node-role.kubernetes.io/";
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = get(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix(PREFIX) {
                if !role.is_empty() {
                    roles.push(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                let v = v.as_str().unwrap_or("");
                if !v.is_empty() {
                    roles.push(v.to_string());
                }
            }
        }
    }
    roles.sort();
    roles.dedup();
    or_none(&roles.join(","))
}

pub fn node_address(node: &Value, ty: &str) -> String {
    arr(node, &["status", "addresses"])
        .iter()
        .find(|a| st(a, &["type"]) == ty)
        .map(|a| st(a, &["address"]).to_string())
        .unwrap_or_else(|| "<none>".to_string())
}

pub fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    // Only the Ready condition is reported; the last one of that type wins.
    let ready = arr(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| st(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if st(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if boolean(node, &["spec", "unschedulable"]) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let info = |field: &str| match st(node, &["status", "nodeInfo", field]) {
        "" => "<unknown>".to_string(),
        v => v.to_string(),
    };
    vec![
        name(node),
        s(status.join(",")),
        s(node_roles(node)),
        age(node, now),
        s(st(node, &["status", "nodeInfo", "kubeletVersion"])),
        s(node_address(node, "InternalIP")),
        s(node_address(node, "ExternalIP")),
        s(info("osImage")),
        s(info("kernelVersion")),
        s(info("containerRuntimeVersion")),
    ]
}

pub static PRINTER: Printer = printer(NODE_COLUMNS, node_cells);
