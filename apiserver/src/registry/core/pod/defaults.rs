//! Pod defaulting, as Kubernetes' `SetDefaults_Pod`/`SetDefaults_PodSpec` and the
//! DefaultTolerationSeconds admission plugin do it; the pod template defaults are shared with
//! every workload kind.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus, Probe, Toleration};

use crate::registry::defaults::{set, set_str};

/// `Always` for `:latest` or untagged images, else `IfNotPresent` (digests included).
pub fn image_pull_policy_for(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_probe(probe: &mut Option<Probe>) {
    let Some(p) = probe else { return };
    set(&mut p.timeout_seconds, 1);
    set(&mut p.period_seconds, 10);
    set(&mut p.success_threshold, 1);
    set(&mut p.failure_threshold, 3);
    if let Some(http) = &mut p.http_get {
        set_str(&mut http.scheme, "HTTP");
        set_str(&mut http.path, "/");
    }
}

fn default_container(c: &mut Container) {
    if let Some(image) = c.image.clone() {
        set_str(&mut c.image_pull_policy, image_pull_policy_for(&image));
    }
    set_str(&mut c.termination_message_path, "/dev/termination-log");
    set_str(&mut c.termination_message_policy, "File");
    for port in c.ports.iter_mut().flatten() {
        set_str(&mut port.protocol, "TCP");
    }
    if let Some(res) = &mut c.resources {
        // Requests default to limits for every resource that only has a limit.
        if let Some(limits) = res.limits.clone() {
            let requests = res.requests.get_or_insert_with(BTreeMap::new);
            for (name, q) in limits {
                requests.entry(name).or_insert(q);
            }
        }
    }
    default_probe(&mut c.liveness_probe);
    default_probe(&mut c.readiness_probe);
    default_probe(&mut c.startup_probe);
}

pub fn default_pod_spec(spec: &mut PodSpec) {
    set_str(&mut spec.restart_policy, "Always");
    set(&mut spec.termination_grace_period_seconds, 30);
    set_str(&mut spec.dns_policy, "ClusterFirst");
    set_str(&mut spec.scheduler_name, "default-scheduler");
    set(&mut spec.security_context, Default::default());
    set(&mut spec.enable_service_links, true);
    for c in spec.containers.iter_mut() {
        default_container(c);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        default_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        if let Some(cm) = &mut v.config_map {
            set(&mut cm.default_mode, 0o644);
        }
        if let Some(s) = &mut v.secret {
            set(&mut s.default_mode, 0o644);
        }
        if let Some(hp) = &mut v.host_path {
            set_str(&mut hp.type_, "");
        }
    }
}

/// Pods tolerate a not-ready or unreachable node for 300 s unless they say otherwise
/// (the DefaultTolerationSeconds admission plugin).
fn default_tolerations(spec: &mut PodSpec) {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let covered = tolerations.iter().any(|t| {
            (t.key.as_deref() == Some(key)
                || (t.key.is_none() && t.operator.as_deref() == Some("Exists")))
                && matches!(t.effect.as_deref(), None | Some("") | Some("NoExecute"))
        });
        if !covered {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(300),
                value: None,
            });
        }
    }
}

/// The pod's QoS class, from its containers' requests and limits.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let res = c.resources.clone().unwrap_or_default();
        let requests = res.requests.unwrap_or_default();
        let limits = res.limits.unwrap_or_default();
        let relevant = |m: &BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >| { m.keys().any(|k| k == "cpu" || k == "memory") };
        any |= relevant(&requests) || relevant(&limits);
        for r in ["cpu", "memory"] {
            match (requests.get(r), limits.get(r)) {
                (Some(req), Some(lim)) if req == lim => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

pub fn pod(pod: &mut Pod, creating: bool) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    default_pod_spec(spec);
    if creating {
        default_tolerations(spec);
        set(&mut spec.priority, 0);
        let qos = qos_class(spec).to_string();
        let status = pod.status.get_or_insert_with(PodStatus::default);
        set_str(&mut status.phase, "Pending");
        set(&mut status.qos_class, qos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(image_pull_policy_for("busybox"), "Always");
        assert_eq!(image_pull_policy_for("busybox:latest"), "Always");
        assert_eq!(image_pull_policy_for("busybox:1.36"), "IfNotPresent");
        assert_eq!(image_pull_policy_for("localhost:5000/busybox"), "Always");
        assert_eq!(
            image_pull_policy_for("localhost:5000/busybox:v1"),
            "IfNotPresent"
        );
        assert_eq!(image_pull_policy_for("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn new_pods_are_pending_and_tolerate_unreachable_nodes() {
        let mut p = Pod::default();
        pod(&mut p, true);
        assert_eq!(p.status.unwrap().phase.as_deref(), Some("Pending"));
        let spec = p.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.tolerations.unwrap().len(), 2);
    }
}
