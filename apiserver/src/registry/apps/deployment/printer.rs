//! `kubectl get` columns for Deployment, as kube-apiserver's printers render them.

#![allow(unused_imports)]

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::*;
use crate::printers::*;

pub const DEPLOYMENT_COLUMNS: &[Col] = &[
    NAME,
    c("Ready", "string", "Number of the pod with ready state"),
    c("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    c("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    w("Containers", "string", CONTAINERS_DESC),
    w("Images", "string", IMAGES_DESC),
    w("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
];

pub fn deployment_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = layout_containers(template_spec(obj));
    let selector =
        selector_string(get(obj, &["spec", "selector"])).unwrap_or_else(|()| "<invalid>".into());
    vec![
        name(obj),
        s(format!(
            "{}/{}",
            status_int(obj, "readyReplicas"),
            spec_replicas(obj)
        )),
        json!(status_int(obj, "updatedReplicas")),
        json!(status_int(obj, "availableReplicas")),
        age(obj, now),
        s(names),
        s(images),
        s(selector),
    ]
}

pub static PRINTER: Printer = printer(DEPLOYMENT_COLUMNS, deployment_cells);
