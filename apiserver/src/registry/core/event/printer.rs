//! `kubectl get` columns for Event, as kube-apiserver's printers render them.

#![allow(unused_imports)]

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::printers::format::*;
use crate::printers::*;

pub const EVENT_COLUMNS: &[Col] = &[
    c("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    c("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    c("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    c("Object", "string", "The object that this event is about."),
    w("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."),
    w("Source", "string", "The component reporting this event. Should be a short machine understandable string."),
    c("Message", "string", "A human-readable description of the status of this operation."),
    w("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
    w("Count", "string", "The number of times this event has occurred."),
    Col {
        name: "Name",
        ty: "string",
        format: "name",
        priority: 1,
        description: NAME_DESC,
    },
];

// --- Event -----------------------------------------------------------------

pub fn event_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    let first_seen = match time_at(ev, &["firstTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => since(time_at(ev, &["eventTime"]), now),
    };
    let mut last_seen = match time_at(ev, &["lastTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = int(ev, &["count"]).unwrap_or(0);
    if let Some(series) = get(ev, &["series"]).filter(|v| v.is_object()) {
        last_seen = since(time_at(series, &["lastObservedTime"]), now);
        count = int(series, &["count"]).unwrap_or(0);
    } else if count == 0 {
        // Singleton events from the events.k8s.io API carry no count.
        count = 1;
    }
    let kind = st(ev, &["involvedObject", "kind"]).to_lowercase();
    let obj_name = st(ev, &["involvedObject", "name"]);
    let target = if obj_name.is_empty() {
        kind
    } else {
        format!("{kind}/{obj_name}")
    };
    let component = match st(ev, &["source", "component"]) {
        "" => st(ev, &["reportingComponent"]),
        c => c,
    };
    let host = match st(ev, &["source", "host"]) {
        "" => st(ev, &["reportingInstance"]),
        h => h,
    };
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        s(last_seen),
        s(st(ev, &["type"])),
        s(st(ev, &["reason"])),
        s(target),
        s(st(ev, &["involvedObject", "fieldPath"])),
        s(source),
        s(st(ev, &["message"]).trim()),
        s(first_seen),
        json!(count),
        name(ev),
    ]
}

pub static PRINTER: Printer = printer(EVENT_COLUMNS, event_cells);
