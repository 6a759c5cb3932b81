//! Validation as Kubernetes does it: every problem becomes a `Cause` naming the field, so a 422
//! tells the user exactly what to fix. Works on the JSON form, where field paths are natural.

use std::collections::HashSet;

use serde_json::Value;
use skiff_common::labels::LabelSelector;
use skiff_common::quantity::Quantity;

use crate::error::Cause;
use crate::registry::ResourceInfo;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_label_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name_part(s)
}

/// `prefix/name` or `name`, as label and annotation keys must be.
pub fn qualified_name_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !is_dns1123_subdomain(p) {
            return Some(format!("prefix part {DNS1123_SUBDOMAIN_MSG}"));
        }
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    if !is_label_name_part(name) {
        return Some(QUALIFIED_NAME_MSG.into());
    }
    None
}

/// Kinds whose names must be DNS labels rather than subdomains.
fn name_must_be_label(kind: &str) -> bool {
    matches!(kind, "Namespace" | "Service")
}

fn validate_metadata(info: &ResourceInfo, obj: &Value, causes: &mut Vec<Cause>) {
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    if name.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired",
            field: "metadata.name".into(),
            message: "Required value: name or generateName is required".into(),
        });
    } else if info.kind == "Event" || info.kind == "Lease" {
        // Events and leases allow any path-segment name (e.g. node names with dots).
        if name.contains('/') || name == "." || name == ".." {
            causes.push(Cause::invalid("metadata.name", name, "may not contain '/'"));
        }
    } else if name_must_be_label(info.kind) {
        if !is_dns1123_label(name) {
            causes.push(Cause::invalid("metadata.name", name, DNS1123_LABEL_MSG));
        }
    } else if !is_dns1123_subdomain(name) {
        causes.push(Cause::invalid("metadata.name", name, DNS1123_SUBDOMAIN_MSG));
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

fn validate_labels(labels: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(labels) = labels.as_object() else {
        return;
    };
    for (k, v) in labels {
        if let Some(problem) = qualified_name_problem(k) {
            causes.push(Cause::invalid(path, k, &problem));
        }
        let value = v.as_str().unwrap_or("");
        if !is_label_value(value) {
            causes.push(Cause::invalid(path, value, LABEL_VALUE_MSG));
        }
    }
}

fn validate_quantities(res: &Value, path: &str, causes: &mut Vec<Cause>) {
    for part in ["limits", "requests"] {
        let Some(map) = res[part].as_object() else {
            continue;
        };
        for (name, q) in map {
            let field = format!("{path}.{part}[{name}]");
            let text = q
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| q.to_string());
            match Quantity::parse(&text) {
                Err(e) => causes.push(Cause::invalid(field, &text, &e.to_string())),
                Ok(v) if v.is_negative() => causes.push(Cause::invalid(
                    field,
                    &text,
                    "must be greater than or equal to 0",
                )),
                Ok(_) => {}
            }
        }
    }
    if let (Some(limits), Some(requests)) = (res["limits"].as_object(), res["requests"].as_object())
    {
        for (name, req) in requests {
            let (Some(req), Some(lim)) = (req.as_str(), limits.get(name).and_then(Value::as_str))
            else {
                continue;
            };
            if let (Ok(r), Ok(l)) = (Quantity::parse(req), Quantity::parse(lim)) {
                if r > l {
                    causes.push(Cause::invalid(
                        format!("{path}.requests"),
                        req,
                        &format!("must be less than or equal to {name} limit of {lim}"),
                    ));
                }
            }
        }
    }
}

fn validate_port_number(v: &Value, field: String, causes: &mut Vec<Cause>) {
    match v.as_i64() {
        Some(p) if (1..=65535).contains(&p) => {}
        _ => causes.push(Cause::invalid(
            field,
            v,
            "must be between 1 and 65535, inclusive",
        )),
    }
}

fn validate_containers(
    list: &Value,
    path: &str,
    names: &mut HashSet<String>,
    causes: &mut Vec<Cause>,
) {
    let Some(containers) = list.as_array() else {
        return;
    };
    for (i, c) in containers.iter().enumerate() {
        let at = format!("{path}[{i}]");
        match c["name"].as_str().unwrap_or("") {
            "" => causes.push(Cause::required(format!("{at}.name"))),
            name if !is_dns1123_label(name) => causes.push(Cause::invalid(
                format!("{at}.name"),
                name,
                DNS1123_LABEL_MSG,
            )),
            name => {
                if !names.insert(name.to_string()) {
                    causes.push(Cause::duplicate(format!("{at}.name"), name));
                }
            }
        }
        if c["image"].as_str().unwrap_or("").trim().is_empty() {
            causes.push(Cause::required(format!("{at}.image")));
        }
        let mut port_names = HashSet::new();
        for (j, port) in c["ports"].as_array().into_iter().flatten().enumerate() {
            let pat = format!("{at}.ports[{j}]");
            validate_port_number(
                &port["containerPort"],
                format!("{pat}.containerPort"),
                causes,
            );
            if let Some(hp) = port.get("hostPort").filter(|v| v.as_i64() != Some(0)) {
                validate_port_number(hp, format!("{pat}.hostPort"), causes);
            }
            if let Some(n) = port["name"].as_str().filter(|n| !n.is_empty()) {
                if !port_names.insert(n.to_string()) {
                    causes.push(Cause::duplicate(format!("{pat}.name"), n));
                }
            }
            if let Some(p) = port["protocol"].as_str() {
                if !["TCP", "UDP", "SCTP"].contains(&p) {
                    causes.push(Cause::unsupported(
                        format!("{pat}.protocol"),
                        p,
                        &["SCTP", "TCP", "UDP"],
                    ));
                }
            }
        }
        validate_quantities(&c["resources"], &format!("{at}.resources"), causes);
        for (j, env) in c["env"].as_array().into_iter().flatten().enumerate() {
            if env["name"].as_str().unwrap_or("").is_empty() {
                causes.push(Cause::required(format!("{at}.env[{j}].name")));
            }
        }
    }
}

fn validate_pod_spec(spec: &Value, path: &str, allowed_restart: &[&str], causes: &mut Vec<Cause>) {
    if spec.is_null() {
        causes.push(Cause::required(path));
        return;
    }
    let containers = &spec["containers"];
    if containers.as_array().is_none_or(Vec::is_empty) {
        causes.push(Cause::required(format!("{path}.containers")));
    }
    let mut names = HashSet::new();
    validate_containers(
        containers,
        &format!("{path}.containers"),
        &mut names,
        causes,
    );
    validate_containers(
        &spec["initContainers"],
        &format!("{path}.initContainers"),
        &mut names,
        causes,
    );
    if let Some(policy) = spec["restartPolicy"].as_str() {
        if !allowed_restart.contains(&policy) {
            causes.push(Cause::unsupported(
                format!("{path}.restartPolicy"),
                policy,
                allowed_restart,
            ));
        }
    }
    if let Some(policy) = spec["dnsPolicy"].as_str() {
        let supported = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
        if !supported.contains(&policy) {
            causes.push(Cause::unsupported(
                format!("{path}.dnsPolicy"),
                policy,
                &supported,
            ));
        }
    }
    let mut volumes = HashSet::new();
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let name = v["name"].as_str().unwrap_or("");
        if name.is_empty() {
            causes.push(Cause::required(format!("{path}.volumes[{i}].name")));
        } else if !volumes.insert(name.to_string()) {
            causes.push(Cause::duplicate(format!("{path}.volumes[{i}].name"), name));
        }
    }
    for (ci, c) in containers.as_array().into_iter().flatten().enumerate() {
        for (j, m) in c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = m["name"].as_str().unwrap_or("");
            if !volumes.contains(name) {
                causes.push(Cause {
                    reason: "FieldValueNotFound",
                    field: format!("{path}.containers[{ci}].volumeMounts[{j}].name"),
                    message: format!("Not found: \"{name}\""),
                });
            }
        }
    }
    if let Some(g) = spec["terminationGracePeriodSeconds"].as_i64() {
        if g < 0 {
            causes.push(Cause::invalid(
                format!("{path}.terminationGracePeriodSeconds"),
                g,
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// The template's labels must be selected by the workload's own selector.
fn validate_selector_and_template(spec: &Value, selector_required: bool, causes: &mut Vec<Cause>) {
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

fn validate_non_negative(v: &Value, field: &str, causes: &mut Vec<Cause>) {
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

fn validate_service(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    let supported = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    if !supported.contains(&ty) {
        causes.push(Cause::unsupported("spec.type", ty, &supported));
    }
    let headless = spec["clusterIP"].as_str() == Some("None");
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" && !headless {
        causes.push(Cause::required("spec.ports"));
    }
    if ty == "ExternalName" && spec["externalName"].as_str().unwrap_or("").is_empty() {
        causes.push(Cause::required("spec.externalName"));
    }
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        validate_port_number(&p["port"], format!("{at}.port"), causes);
        let name = p["name"].as_str().unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            causes.push(Cause::required(format!("{at}.name")));
        }
        if !name.is_empty() {
            if !is_dns1123_label(name) {
                causes.push(Cause::invalid(
                    format!("{at}.name"),
                    name,
                    DNS1123_LABEL_MSG,
                ));
            }
            if !names.insert(name.to_string()) {
                causes.push(Cause::duplicate(format!("{at}.name"), name));
            }
        }
        if let Some(proto) = p["protocol"].as_str() {
            if !["TCP", "UDP", "SCTP"].contains(&proto) {
                causes.push(Cause::unsupported(
                    format!("{at}.protocol"),
                    proto,
                    &["SCTP", "TCP", "UDP"],
                ));
            }
        }
        if let Some(np) = p.get("nodePort").filter(|v| v.as_i64().unwrap_or(0) != 0) {
            if ty == "ClusterIP" {
                causes.push(Cause::forbidden(
                    format!("{at}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else {
                validate_port_number(np, format!("{at}.nodePort"), causes);
            }
        }
    }
    if let Some(aff) = spec["sessionAffinity"].as_str() {
        if !["None", "ClientIP"].contains(&aff) {
            causes.push(Cause::unsupported(
                "spec.sessionAffinity",
                aff,
                &["ClientIP", "None"],
            ));
        }
    }
}

fn validate_data_keys(obj: &Value, causes: &mut Vec<Cause>) {
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

/// Every problem with `obj` as a new object of `info`'s kind.
pub fn validate(info: &ResourceInfo, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_metadata(info, obj, &mut causes);
    let spec = &obj["spec"];
    match info.kind {
        "Pod" => validate_pod_spec(spec, "spec", &["Always", "OnFailure", "Never"], &mut causes),
        "Deployment" | "ReplicaSet" => {
            validate_non_negative(&spec["replicas"], "spec.replicas", &mut causes);
            validate_non_negative(
                &spec["minReadySeconds"],
                "spec.minReadySeconds",
                &mut causes,
            );
            validate_selector_and_template(spec, true, &mut causes);
            validate_labels(
                &spec["template"]["metadata"]["labels"],
                "spec.template.metadata.labels",
                &mut causes,
            );
            validate_pod_spec(
                &spec["template"]["spec"],
                "spec.template.spec",
                &["Always"],
                &mut causes,
            );
            if info.kind == "Deployment" {
                let ty = spec
                    .pointer("/strategy/type")
                    .and_then(Value::as_str)
                    .unwrap_or("RollingUpdate");
                if !["RollingUpdate", "Recreate"].contains(&ty) {
                    causes.push(Cause::unsupported(
                        "spec.strategy.type",
                        ty,
                        &["Recreate", "RollingUpdate"],
                    ));
                }
            }
        }
        "Job" => {
            validate_non_negative(&spec["parallelism"], "spec.parallelism", &mut causes);
            validate_non_negative(&spec["completions"], "spec.completions", &mut causes);
            validate_non_negative(&spec["backoffLimit"], "spec.backoffLimit", &mut causes);
            validate_selector_and_template(spec, false, &mut causes);
            validate_pod_spec(
                &spec["template"]["spec"],
                "spec.template.spec",
                &["OnFailure", "Never"],
                &mut causes,
            );
        }
        "Service" => validate_service(obj, &mut causes),
        "ConfigMap" | "Secret" => validate_data_keys(obj, &mut causes),
        _ => {}
    }
    causes
}

/// Problems with changing `old` into `new`: immutable fields, on top of [`validate`].
pub fn validate_update(info: &ResourceInfo, new: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = validate(info, new);
    let changed = |pointer: &str| new.pointer(pointer) != old.pointer(pointer);
    match info.kind {
        "Deployment" | "ReplicaSet" if changed("/spec/selector") => {
            causes.push(Cause::immutable("spec.selector"))
        }
        "Job" => {
            if changed("/spec/selector") {
                causes.push(Cause::immutable("spec.selector"));
            }
            if changed("/spec/template") {
                causes.push(Cause::immutable("spec.template"));
            }
        }
        "Service" => {
            let old_ip = old
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("");
            let new_ip = new
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !old_ip.is_empty() && new_ip != old_ip {
                causes.push(Cause::immutable("spec.clusterIP"));
            }
        }
        "Pod" => validate_pod_update(new, old, &mut causes),
        "ConfigMap" | "Secret" if old["immutable"] == Value::Bool(true) => {
            for part in ["data", "binaryData", "stringData"] {
                if new[part] != old[part] {
                    causes.push(Cause::forbidden(
                        part,
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        _ => {}
    }
    causes
}

/// Most of a pod's spec is fixed once created: only images, activeDeadlineSeconds, added
/// tolerations, and scheduling gates may change (and nodeName only through binding).
fn validate_pod_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let mut a = new["spec"].clone();
    let mut b = old["spec"].clone();
    for spec in [&mut a, &mut b] {
        for list in ["containers", "initContainers"] {
            if let Some(cs) = spec[list].as_array_mut() {
                for c in cs {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("image");
                    }
                }
            }
        }
        if let Some(s) = spec.as_object_mut() {
            s.remove("activeDeadlineSeconds");
            s.remove("tolerations");
            s.remove("schedulingGates");
            s.remove("terminationGracePeriodSeconds");
        }
    }
    if a != b {
        causes.push(Cause::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find;
    use serde_json::json;

    fn deployments() -> &'static ResourceInfo {
        find("apps", "v1", "deployments").unwrap()
    }

    #[test]
    fn names_follow_dns_rules() {
        assert!(is_dns1123_subdomain("web.example-1"));
        assert!(!is_dns1123_subdomain("Web"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }

    #[test]
    fn label_keys_may_have_a_prefix() {
        assert!(qualified_name_problem("app.kubernetes.io/name").is_none());
        assert!(qualified_name_problem("-bad").is_some());
        assert!(qualified_name_problem("Bad_Prefix/x").is_some());
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let d = json!({
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "other"}},
                             "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
            }
        });
        let causes = validate(deployments(), &d);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn missing_image_and_bad_quantity_name_their_fields() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "resources": {"limits": {"memory": "12XYZ"}}},
                {"name": "a", "image": "busybox"}
            ]}
        });
        let causes = validate(find("", "v1", "pods").unwrap(), &pod);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"spec.containers[0].image"), "{fields:?}");
        assert!(
            fields.contains(&"spec.containers[0].resources.limits[memory]"),
            "{fields:?}"
        );
        assert!(fields.contains(&"spec.containers[1].name"), "{fields:?}");
    }

    #[test]
    fn deployment_selector_is_immutable() {
        let old = json!({"metadata": {"name": "w"}, "spec": {"selector": {"matchLabels": {"a": "1"}},
            "template": {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"b": "2"}});
        let causes = validate_update(deployments(), &new, &old);
        assert!(
            causes.iter().any(|c| c.field == "spec.selector"),
            "{causes:?}"
        );
    }
}
