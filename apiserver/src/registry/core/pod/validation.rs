//! Pod and pod template validation, as Kubernetes' `ValidatePodSpec` does it for the fields
//! skiff relies on; shared with every workload kind's template.

use std::collections::HashSet;

use serde_json::Value;
use skiff_common::quantity::Quantity;
use skiff_common::validation::{is_dns1123_label, DNS1123_LABEL_MSG};

use crate::error::Cause;
use crate::registry::validation::validate_port_number;

pub fn validate_quantities(res: &Value, path: &str, causes: &mut Vec<Cause>) {
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

pub fn validate_containers(
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

pub fn validate_pod_spec(
    spec: &Value,
    path: &str,
    allowed_restart: &[&str],
    causes: &mut Vec<Cause>,
) {
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

/// Most of a pod's spec is fixed once created: only images, activeDeadlineSeconds, added
/// tolerations, and scheduling gates may change (and nodeName only through binding).
pub fn validate_pod_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
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
    use serde_json::json;

    use crate::registry::core::pod::PodStrategy;
    use crate::registry::validation::validate_new;

    #[test]
    fn missing_image_and_bad_quantity_name_their_fields() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "resources": {"limits": {"memory": "12XYZ"}}},
                {"name": "a", "image": "busybox"}
            ]}
        });
        let causes = validate_new(&PodStrategy, &pod);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"spec.containers[0].image"), "{fields:?}");
        assert!(
            fields.contains(&"spec.containers[0].resources.limits[memory]"),
            "{fields:?}"
        );
        assert!(fields.contains(&"spec.containers[1].name"), "{fields:?}");
    }
}
