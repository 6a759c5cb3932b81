//! `kubectl get` columns for Service, as kube-apiserver's printers render them.

#![allow(unused_imports)]

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::*;
use crate::printers::*;

pub const SERVICE_COLUMNS: &[Col] = &[
    NAME,
    c("Type", "string", "type determines how the Service is exposed."),
    c("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
    c("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    c("Port(s)", "string", "The list of ports that are exposed by this service."),
    AGE,
    w("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
];

// --- Service / Endpoints ---------------------------------------------------

pub fn load_balancer_ingress(svc: &Value) -> Vec<String> {
    let mut out: Vec<String> = arr(svc, &["status", "loadBalancer", "ingress"])
        .iter()
        .filter_map(|i| {
            let ip = st(i, &["ip"]);
            let host = st(i, &["hostname"]);
            if !ip.is_empty() {
                Some(ip.to_string())
            } else if !host.is_empty() {
                Some(host.to_string())
            } else {
                None
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

pub fn service_type(svc: &Value) -> &str {
    match st(svc, &["spec", "type"]) {
        "" => "ClusterIP",
        t => t,
    }
}

pub fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = arr(svc, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match service_type(svc) {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".to_string()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut all = load_balancer_ingress(svc);
            if !external.is_empty() {
                all.extend(external.iter().map(|e| e.to_string()));
                return all.join(",");
            }
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => st(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

pub fn service_ports(svc: &Value) -> String {
    let pieces: Vec<String> = arr(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int(p, &["port"]).unwrap_or(0);
            let protocol = match st(p, &["protocol"]) {
                "" => "TCP",
                proto => proto,
            };
            match int(p, &["nodePort"]).filter(|n| *n > 0) {
                Some(node_port) => format!("{port}:{node_port}/{protocol}"),
                None => format!("{port}/{protocol}"),
            }
        })
        .collect();
    if pieces.is_empty() {
        "<none>".to_string()
    } else {
        pieces.join(",")
    }
}

pub fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    let cluster_ip = arr(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| st(svc, &["spec", "clusterIP"]));
    vec![
        name(svc),
        s(service_type(svc)),
        s(or_none(cluster_ip)),
        s(service_external_ip(svc)),
        s(service_ports(svc)),
        age(svc, now),
        s(format_labels(get(svc, &["spec", "selector"]))),
    ]
}

pub static PRINTER: Printer = printer(SERVICE_COLUMNS, service_cells);
