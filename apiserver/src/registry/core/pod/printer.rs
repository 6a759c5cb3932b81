//! `kubectl get` columns for Pod, as kube-apiserver's printers render them.

#![allow(unused_imports)]

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::*;
use crate::printers::*;

pub const POD_COLUMNS: &[Col] = &[
    NAME,
    c("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    c("Status", "string", "The aggregate status of the containers in this pod."),
    c("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    w("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    w("Node", "string", "NodeName indicates in which node this pod is scheduled."),
    w("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
    w("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
];

// --- Pod -------------------------------------------------------------------

pub fn pod_row_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match st(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    }]))
}

pub fn pod_condition_true(pod: &Value, ty: &str) -> bool {
    arr(pod, &["status", "conditions"])
        .iter()
        .find(|c| st(c, &["type"]) == ty)
        .is_some_and(|c| st(c, &["status"]) == "True")
}

pub fn has_pod_ready_condition(pod: &Value) -> bool {
    arr(pod, &["status", "conditions"])
        .iter()
        .any(|c| st(c, &["type"]) == "Ready" && st(c, &["status"]) == "True")
}

pub fn is_restartable_init_container(pod: &Value, container_name: &str) -> bool {
    arr(pod, &["spec", "initContainers"])
        .iter()
        .find(|c| st(c, &["name"]) == container_name)
        .is_some_and(|c| st(c, &["restartPolicy"]) == "Always")
}

pub fn last_termination(status: &Value) -> Option<Option<Timestamp>> {
    get(status, &["lastState", "terminated"])
        .filter(|t| t.is_object())
        .map(|t| time_at(t, &["finishedAt"]))
}

pub fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Reason text for a terminated container that reported no reason.
pub fn exit_text(terminated: &Value) -> String {
    let signal = int(terminated, &["signal"]).unwrap_or(0);
    if signal != 0 {
        format!("Signal:{signal}")
    } else {
        format!("ExitCode:{}", int(terminated, &["exitCode"]).unwrap_or(0))
    }
}

/// READY, STATUS and RESTARTS exactly as kube-apiserver's pod printer
/// derives them.
pub fn pod_status_summary(pod: &Value, now: Timestamp) -> (String, String, String) {
    let init_specs = arr(pod, &["spec", "initContainers"]);
    let mut total = arr(pod, &["spec", "containers"]).len();
    total += init_specs
        .iter()
        .filter(|c| st(c, &["restartPolicy"]) == "Always")
        .count();
    let mut ready = 0usize;
    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let phase = st(pod, &["status", "phase"]);
    let status_reason = st(pod, &["status", "reason"]);
    // A freshly created pod that has not been given a phase yet is Pending.
    let mut reason = if !status_reason.is_empty() {
        status_reason.to_string()
    } else if phase.is_empty() {
        "Pending".to_string()
    } else {
        phase.to_string()
    };
    if arr(pod, &["status", "conditions"])
        .iter()
        .any(|c| st(c, &["type"]) == "PodScheduled" && st(c, &["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    let init_statuses = arr(pod, &["status", "initContainerStatuses"]);
    let mut initializing = false;
    for (i, cs) in init_statuses.iter().enumerate() {
        restarts += int(cs, &["restartCount"]).unwrap_or(0);
        if let Some(finished) = last_termination(cs) {
            last_restart = later(last_restart, finished);
        }
        let restartable = is_restartable_init_container(pod, st(cs, &["name"]));
        if restartable {
            sidecar_restarts += int(cs, &["restartCount"]).unwrap_or(0);
            if let Some(finished) = last_termination(cs) {
                last_sidecar_restart = later(last_sidecar_restart, finished);
            }
        }
        let terminated = get(cs, &["state", "terminated"]).filter(|t| t.is_object());
        let waiting = get(cs, &["state", "waiting"]).filter(|t| t.is_object());
        if terminated.is_some_and(|t| int(t, &["exitCode"]).unwrap_or(0) == 0) {
            continue;
        }
        if restartable && boolean(cs, &["started"]) == Some(true) {
            if boolean(cs, &["ready"]) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            let r = st(t, &["reason"]);
            reason = if r.is_empty() {
                format!("Init:{}", exit_text(t))
            } else {
                format!("Init:{r}")
            };
        } else if let Some(wr) = waiting
            .map(|w| st(w, &["reason"]))
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{wr}");
        } else {
            reason = format!("Init:{}/{}", i, init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || pod_condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in arr(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int(cs, &["restartCount"]).unwrap_or(0);
            if let Some(finished) = last_termination(cs) {
                last_restart = later(last_restart, finished);
            }
            let waiting_reason = get(cs, &["state", "waiting"])
                .filter(|w| w.is_object())
                .map(|w| st(w, &["reason"]))
                .unwrap_or("");
            let terminated = get(cs, &["state", "terminated"]).filter(|t| t.is_object());
            let running = get(cs, &["state", "running"]).is_some_and(Value::is_object);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                let r = st(t, &["reason"]);
                reason = if r.is_empty() {
                    exit_text(t)
                } else {
                    r.to_string()
                };
            } else if boolean(cs, &["ready"]) == Some(true) && running {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_pod_ready_condition(pod) {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if has_deletion_timestamp(pod) {
        if status_reason == "NodeLost" {
            reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };
    (format!("{ready}/{total}"), reason, restarts_text)
}

pub fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let (ready, reason, restarts) = pod_status_summary(pod, now);
    let pod_ip = arr(pod, &["status", "podIPs"])
        .first()
        .map(|ip| st(ip, &["ip"]))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| st(pod, &["status", "podIP"]));
    let gates = arr(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr(pod, &["status", "conditions"]);
        let true_count = gates
            .iter()
            .filter(|g| {
                let ty = st(g, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| st(c, &["type"]) == ty)
                    .is_some_and(|c| st(c, &["status"]) == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        name(pod),
        s(ready),
        s(reason),
        s(restarts),
        age(pod, now),
        s(or_none(pod_ip)),
        s(or_none(st(pod, &["spec", "nodeName"]))),
        s(or_none(st(pod, &["status", "nominatedNodeName"]))),
        s(readiness_gates),
    ]
}

pub static PRINTER: Printer = Printer {
    columns: POD_COLUMNS,
    cells: pod_cells,
    conditions: Some(pod_row_conditions),
};
