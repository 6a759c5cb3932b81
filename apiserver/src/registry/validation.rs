//! Validation shared by every kind: object metadata (names by the kind's rule, labels,
//! annotations) and the pieces several kinds' specs have in common. Every problem becomes a
//! `Cause` naming the field, so a 422 tells the user exactly what to fix.

use serde_json::Value;
use skiff_common::labels::LabelSelector;
use skiff_common::validation::{
    is_dns1123_label, is_dns1123_subdomain, label_value_problems, qualified_name_problem,
    DNS1123_LABEL_MSG, DNS1123_SUBDOMAIN_MSG,
};

use super::strategy::{KindStrategy, NameRule};
use crate::error::Cause;

/// Every problem with `obj` as a new object of the strategy's kind.
pub fn validate_new(strategy: &dyn KindStrategy, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_metadata(strategy.name_rule(), obj, &mut causes);
    strategy.validate(obj, &mut causes);
    causes
}

/// Problems with changing `old` into `new`: immutable fields, on top of [`validate_new`].
pub fn validate_changed(strategy: &dyn KindStrategy, new: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = validate_new(strategy, new);
    strategy.validate_update(new, old, &mut causes);
    causes
}

fn validate_metadata(rule: NameRule, obj: &Value, causes: &mut Vec<Cause>) {
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    if name.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired",
            field: "metadata.name".into(),
            message: "Required value: name or generateName is required".into(),
        });
    } else {
        match rule {
            NameRule::PathSegment => {
                if name.contains('/') || name == "." || name == ".." {
                    causes.push(Cause::invalid("metadata.name", name, "may not contain '/'"));
                }
            }
            NameRule::Label => {
                if !is_dns1123_label(name) {
                    causes.push(Cause::invalid("metadata.name", name, DNS1123_LABEL_MSG));
                }
            }
            NameRule::Subdomain => {
                if !is_dns1123_subdomain(name) {
                    causes.push(Cause::invalid("metadata.name", name, DNS1123_SUBDOMAIN_MSG));
                }
            }
        }
    }
    validate_labels(&meta["labels"], "metadata.labels", causes);
    if let Some(annotations) = meta["annotations"].as_object() {
        let mut total = 0;
        for (k, v) in annotations {
            total += k.len() + v.as_str().map_or(0, str::len);
            if let Some(problem) = qualified_name_problem(k) {
                causes.push(Cause::invalid("metadata.annotations", k, &problem));
            }
        }
        if total > 256 * 1024 {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".into(),
                message: "Too long: must have at most 262144 bytes".into(),
            });
        }
    }
}

pub fn validate_labels(labels: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(labels) = labels.as_object() else {
        return;
    };
    for (k, v) in labels {
        if let Some(problem) = qualified_name_problem(k) {
            causes.push(Cause::invalid(path, k, &problem));
        }
        let value = v.as_str().unwrap_or("");
        for problem in label_value_problems(value) {
            causes.push(Cause::invalid(path, value, &problem));
        }
    }
}

pub fn validate_port_number(v: &Value, field: String, causes: &mut Vec<Cause>) {
    match v.as_i64() {
        Some(p) if (1..=65535).contains(&p) => {}
        _ => causes.push(Cause::invalid(
            field,
            v,
            "must be between 1 and 65535, inclusive",
        )),
    }
}

pub fn validate_non_negative(v: &Value, field: &str, causes: &mut Vec<Cause>) {
    if let Some(n) = v.as_i64() {
        if n < 0 {
            causes.push(Cause::invalid(
                field,
                n,
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// The template's labels must be selected by the workload's own selector.
pub fn validate_selector_and_template(
    spec: &Value,
    selector_required: bool,
    causes: &mut Vec<Cause>,
) {
    let selector = &spec["selector"];
    if selector.is_null() {
        if selector_required {
            causes.push(Cause::required("spec.selector"));
        }
        return;
    }
    let empty = selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.is_empty())
        && selector["matchExpressions"]
            .as_array()
            .is_none_or(|m| m.is_empty());
    if empty {
        causes.push(Cause::invalid(
            "spec.selector",
            "{}",
            "empty selector is invalid for deployment",
        ));
        return;
    }
    validate_labels(
        &selector["matchLabels"],
        "spec.selector.matchLabels",
        causes,
    );
    match LabelSelector::from_json(selector) {
        Err(e) => causes.push(Cause::invalid("spec.selector", selector, &e.to_string())),
        Ok(sel) => {
            let labels = spec.pointer("/template/metadata/labels");
            if !sel.matches_json(labels) {
                let shown = labels
                    .map(Value::to_string)
                    .unwrap_or_else(|| "null".into());
                causes.push(Cause::invalid(
                    "spec.template.metadata.labels",
                    shown,
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
}

pub fn validate_data_keys(obj: &Value, causes: &mut Vec<Cause>) {
    for part in ["data", "binaryData"] {
        for key in obj[part].as_object().into_iter().flatten().map(|(k, _)| k) {
            let ok = !key.is_empty()
                && key.len() <= 253
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !ok {
                causes.push(Cause::invalid(
                    format!("{part}[{key}]"),
                    key,
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ));
            }
        }
    }
}

/// With `immutable: true` the data of a ConfigMap or Secret can no longer change.
pub fn validate_immutable_data(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    if old["immutable"] != Value::Bool(true) {
        return;
    }
    for part in ["data", "binaryData", "stringData"] {
        if new[part] != old[part] {
            causes.push(Cause::forbidden(
                part,
                "field is immutable when `immutable` is set",
            ));
        }
    }
}
