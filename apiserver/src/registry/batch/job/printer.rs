//! `kubectl get` columns for Job, as kube-apiserver's printers render them.

#![allow(unused_imports)]

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::*;
use crate::printers::*;

pub const JOB_COLUMNS: &[Col] = &[
    NAME,
    c("Status", "string", "Status of the job."),
    c(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded.",
    ),
    c("Duration", "string", "Time required to complete the job."),
    AGE,
    w("Containers", "string", CONTAINERS_DESC),
    w("Images", "string", IMAGES_DESC),
    w(
        "Selector",
        "string",
        "A label query over pods that should match the pod count.",
    ),
];

/// First condition of `ty` decides; true only when its status is "True".
pub fn job_condition(obj: &Value, ty: &str) -> bool {
    arr(obj, &["status", "conditions"])
        .iter()
        .find(|c| st(c, &["type"]) == ty)
        .is_some_and(|c| st(c, &["status"]) == "True")
}

pub fn job_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = status_int(obj, "succeeded");
    let completions = match int(obj, &["spec", "completions"]) {
        Some(n) => format!("{succeeded}/{n}"),
        None => {
            let parallelism = int(obj, &["spec", "parallelism"]).unwrap_or(0);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let duration = match (
        time_at(obj, &["status", "startTime"]),
        time_at(obj, &["status", "completionTime"]),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now.duration_since(start)),
        (Some(start), Some(end)) => human_duration(end.duration_since(start)),
    };
    let status = if job_condition(obj, "Complete") {
        "Complete"
    } else if job_condition(obj, "Failed") {
        "Failed"
    } else if has_deletion_timestamp(obj) {
        "Terminating"
    } else if job_condition(obj, "Suspended") {
        "Suspended"
    } else if job_condition(obj, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = layout_containers(template_spec(obj));
    vec![
        name(obj),
        s(status),
        s(completions),
        s(duration),
        age(obj, now),
        s(names),
        s(images),
        s(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

pub static PRINTER: Printer = printer(JOB_COLUMNS, job_cells);
