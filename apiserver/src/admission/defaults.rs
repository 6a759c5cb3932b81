//! Defaulting, as Kubernetes' `SetDefaults_*` functions and default admission plugins do it for
//! the fields the rest of skiff relies on. Runs on typed k8s-openapi objects.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Container, Endpoints, Namespace, NamespaceSpec, NamespaceStatus, Pod, PodSpec, PodStatus,
    Probe, Secret, Service, Toleration,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;

fn set<T>(field: &mut Option<T>, value: T) {
    if field.is_none() {
        *field = Some(value);
    }
}

fn set_str(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.to_string());
    }
}

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

fn default_rolling_update(strategy: &mut Option<DeploymentStrategy>) {
    let s = strategy.get_or_insert_with(Default::default);
    set_str(&mut s.type_, "RollingUpdate");
    if s.type_.as_deref() == Some("RollingUpdate") {
        let ru = s
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        set(&mut ru.max_unavailable, IntOrString::String("25%".into()));
        set(&mut ru.max_surge, IntOrString::String("25%".into()));
    }
}

pub fn deployment(d: &mut Deployment) {
    let spec = d.spec.get_or_insert_with(Default::default);
    set(&mut spec.replicas, 1);
    default_rolling_update(&mut spec.strategy);
    set(&mut spec.revision_history_limit, 10);
    set(&mut spec.progress_deadline_seconds, 600);
    default_pod_spec(spec.template.spec.get_or_insert_with(Default::default));
}

pub fn replica_set(rs: &mut ReplicaSet) {
    let spec = rs.spec.get_or_insert_with(Default::default);
    set(&mut spec.replicas, 1);
    let template = spec.template.get_or_insert_with(Default::default);
    default_pod_spec(template.spec.get_or_insert_with(Default::default));
}

/// Jobs get a selector on their own UID unless `manualSelector` is set, as Kubernetes does.
pub fn job(job: &mut Job) {
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let spec = job.spec.get_or_insert_with(Default::default);
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    set(&mut spec.parallelism, 1);
    set(&mut spec.backoff_limit, 6);
    set_str(&mut spec.completion_mode, "NonIndexed");
    set(&mut spec.suspend, false);
    set_str(&mut spec.pod_replacement_policy, "TerminatingOrFailed");
    if spec.manual_selector != Some(true) && spec.selector.is_none() && !uid.is_empty() {
        spec.selector = Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "batch.kubernetes.io/controller-uid".to_string(),
                uid.clone(),
            )])),
            match_expressions: None,
        });
        let labels = spec
            .template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new);
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("job-name", &name),
        ] {
            labels.entry(k.to_string()).or_insert_with(|| v.clone());
        }
    }
    default_pod_spec(spec.template.spec.get_or_insert_with(Default::default));
}

pub fn service(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(Default::default);
    set_str(&mut spec.type_, "ClusterIP");
    set_str(&mut spec.session_affinity, "None");
    let ty = spec.type_.clone().unwrap_or_default();
    if ty != "ExternalName" {
        set_str(&mut spec.internal_traffic_policy, "Cluster");
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_str(&mut spec.external_traffic_policy, "Cluster");
    }
    for port in spec.ports.iter_mut().flatten() {
        set_str(&mut port.protocol, "TCP");
        if port.target_port.is_none() || port.target_port == Some(IntOrString::Int(0)) {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
}

pub fn namespace(ns: &mut Namespace) {
    let name = ns.metadata.name.clone().unwrap_or_default();
    ns.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert("kubernetes.io/metadata.name".into(), name);
    let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
    set(&mut spec.finalizers, vec!["kubernetes".to_string()]);
    let status = ns.status.get_or_insert_with(NamespaceStatus::default);
    set_str(&mut status.phase, "Active");
}

/// `stringData` is a write-only convenience: it is merged into `data` and dropped.
pub fn secret(secret: &mut Secret) {
    set_str(&mut secret.type_, "Opaque");
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in string_data {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
}

pub fn endpoints(ep: &mut Endpoints) {
    for subset in ep.subsets.iter_mut().flatten() {
        for port in subset.ports.iter_mut().flatten() {
            set_str(&mut port.protocol, "TCP");
        }
    }
}

pub fn endpoint_slice(slice: &mut EndpointSlice) {
    for port in slice.ports.iter_mut().flatten() {
        set_str(&mut port.protocol, "TCP");
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
    fn deployment_gets_rolling_update_quarters() {
        let mut d = Deployment::default();
        deployment(&mut d);
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        let ru = spec.strategy.unwrap().rolling_update.unwrap();
        assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
        assert_eq!(spec.revision_history_limit, Some(10));
        assert_eq!(spec.progress_deadline_seconds, Some(600));
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

    #[test]
    fn service_target_port_defaults_to_port() {
        let mut svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}]}
        }))
        .unwrap();
        service(&mut svc);
        let port = &svc.spec.unwrap().ports.unwrap()[0];
        assert_eq!(port.target_port, Some(IntOrString::Int(80)));
        assert_eq!(port.protocol.as_deref(), Some("TCP"));
    }
}
