//! `kubectl get` columns for ReplicaSet, as kube-apiserver's printers render them.

#![allow(unused_imports)]

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::*;
use crate::printers::*;

pub const REPLICASET_COLUMNS: &[Col] = &[
    NAME,
    c(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas.",
    ),
    c(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas.",
    ),
    c(
        "Ready",
        "integer",
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    w("Containers", "string", CONTAINERS_DESC),
    w("Images", "string", IMAGES_DESC),
    w("Selector", "string", SELECTOR_DESC),
];

pub fn replicaset_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = layout_containers(template_spec(obj));
    vec![
        name(obj),
        json!(spec_replicas(obj)),
        json!(status_int(obj, "replicas")),
        json!(status_int(obj, "readyReplicas")),
        age(obj, now),
        s(names),
        s(images),
        s(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

pub static PRINTER: Printer = printer(REPLICASET_COLUMNS, replicaset_cells);
