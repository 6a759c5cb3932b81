//! Columns of kinds skiff does not serve yet (ReplicationController, StatefulSet, DaemonSet,
//! CronJob, ServiceAccount), kept ready for the issues that add them: each moves into its
//! kind's folder with the kind's strategy.

#![allow(unused_imports)]

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::*;
use crate::printers::*;
use crate::registry::apps::replicaset::printer::REPLICASET_COLUMNS;
use crate::registry::batch::job::printer::job_condition;

pub const REPLICATION_CONTROLLER_COLUMNS: &[Col] = REPLICASET_COLUMNS;

pub const STATEFULSET_COLUMNS: &[Col] = &[
    NAME,
    c("Ready", "string", "Number of the pod with ready state"),
    AGE,
    w("Containers", "string", CONTAINERS_DESC),
    w("Images", "string", IMAGES_DESC),
];

pub const DAEMONSET_COLUMNS: &[Col] = &[
    NAME,
    c("Desired", "integer", "The total number of nodes that should be running the daemon pod."),
    c("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
    c("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
    c("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
    c("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
    c("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
    AGE,
    w("Containers", "string", CONTAINERS_DESC),
    w("Images", "string", IMAGES_DESC),
    w("Selector", "string", "A label query over pods that are managed by the daemon set."),
];

pub const CRONJOB_COLUMNS: &[Col] = &[
    NAME,
    c(
        "Schedule",
        "string",
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    ),
    c(
        "Timezone",
        "string",
        "The time zone name for the given schedule.",
    ),
    c(
        "Suspend",
        "boolean",
        "This flag tells the controller to suspend subsequent executions.",
    ),
    c(
        "Active",
        "integer",
        "A list of pointers to currently running jobs.",
    ),
    c(
        "Last Schedule",
        "string",
        "Information when was the last time the job was successfully scheduled.",
    ),
    AGE,
    w("Containers", "string", CONTAINERS_DESC),
    w("Images", "string", IMAGES_DESC),
    w(
        "Selector",
        "string",
        "A label query over pods that should match the pod count.",
    ),
];

pub const SERVICEACCOUNT_COLUMNS: &[Col] = &[
    NAME,
    c("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];

pub fn replication_controller_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = layout_containers(template_spec(obj));
    vec![
        name(obj),
        json!(spec_replicas(obj)),
        json!(status_int(obj, "replicas")),
        json!(status_int(obj, "readyReplicas")),
        age(obj, now),
        s(names),
        s(images),
        // A ReplicationController selector is a plain label map.
        s(format_labels(get(obj, &["spec", "selector"]))),
    ]
}

pub fn statefulset_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = layout_containers(template_spec(obj));
    vec![
        name(obj),
        s(format!(
            "{}/{}",
            status_int(obj, "readyReplicas"),
            spec_replicas(obj)
        )),
        age(obj, now),
        s(names),
        s(images),
    ]
}

pub fn daemonset_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = layout_containers(template_spec(obj));
    vec![
        name(obj),
        json!(status_int(obj, "desiredNumberScheduled")),
        json!(status_int(obj, "currentNumberScheduled")),
        json!(status_int(obj, "numberReady")),
        json!(status_int(obj, "updatedNumberScheduled")),
        json!(status_int(obj, "numberAvailable")),
        s(format_labels(get(
            obj,
            &["spec", "template", "spec", "nodeSelector"],
        ))),
        age(obj, now),
        s(names),
        s(images),
        s(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

pub fn cronjob_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = match time_at(obj, &["status", "lastScheduleTime"]) {
        Some(t) => since(Some(t), now),
        None => "<none>".to_string(),
    };
    let time_zone = get(obj, &["spec", "timeZone"])
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let suspend = match boolean(obj, &["spec", "suspend"]) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let job_template = get(obj, &["spec", "jobTemplate"]).unwrap_or(&Value::Null);
    let (names, images) = layout_containers(template_spec(job_template));
    vec![
        name(obj),
        s(st(obj, &["spec", "schedule"])),
        s(time_zone),
        s(suspend),
        json!(arr(obj, &["status", "active"]).len()),
        s(last_schedule),
        age(obj, now),
        s(names),
        s(images),
        s(format_label_selector(get(
            job_template,
            &["spec", "selector"],
        ))),
    ]
}

pub fn serviceaccount_cells(sa: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(sa), json!(arr(sa, &["secrets"]).len()), age(sa, now)]
}

pub static REPLICATION_CONTROLLER: Printer =
    printer(REPLICATION_CONTROLLER_COLUMNS, replication_controller_cells);
pub static STATEFULSET: Printer = printer(STATEFULSET_COLUMNS, statefulset_cells);
pub static DAEMONSET: Printer = printer(DAEMONSET_COLUMNS, daemonset_cells);
pub static CRONJOB: Printer = printer(CRONJOB_COLUMNS, cronjob_cells);
pub static SERVICEACCOUNT: Printer = printer(SERVICEACCOUNT_COLUMNS, serviceaccount_cells);
