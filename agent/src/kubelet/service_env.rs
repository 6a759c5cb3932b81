//! Service environment variables, as the kubelet sets them: `KUBERNETES_SERVICE_HOST`,
//! `KUBERNETES_SERVICE_PORT` and the Docker-link style `<NAME>_PORT_*` for the `kubernetes`
//! Service always (so in-cluster clients find the API), and for every Service of the pod's
//! namespace unless `enableServiceLinks` is false.

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

/// The namespace of the Service that fronts the apiserver.
const MASTER_NAMESPACE: &str = "default";
const MASTER_SERVICE: &str = "kubernetes";

/// A Service's name as an environment variable prefix (`my-svc` → `MY_SVC`).
fn env_name(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

/// The variables one Service with a ClusterIP gives.
fn vars_of(svc: &Service) -> Vec<(String, String)> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let ip = match spec.cluster_ip.as_deref() {
        Some(ip) if !ip.is_empty() && ip != "None" => ip,
        _ => return Vec::new(),
    };
    let ports = spec.ports.as_deref().unwrap_or_default();
    let Some(first) = ports.first() else {
        return Vec::new();
    };
    let name = env_name(&svc.name_any());
    let url = |p: &k8s_openapi::api::core::v1::ServicePort| {
        let proto = p.protocol.as_deref().unwrap_or("TCP").to_lowercase();
        format!("{proto}://{ip}:{}", p.port)
    };
    let mut out = vec![
        (format!("{name}_SERVICE_HOST"), ip.to_string()),
        (format!("{name}_SERVICE_PORT"), first.port.to_string()),
    ];
    for p in ports {
        if let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!("{name}_SERVICE_PORT_{}", env_name(port_name)),
                p.port.to_string(),
            ));
        }
    }
    out.push((format!("{name}_PORT"), url(first)));
    for p in ports {
        let proto = p.protocol.as_deref().unwrap_or("TCP").to_uppercase();
        let prefix = format!("{name}_PORT_{}_{proto}", p.port);
        out.push((prefix.clone(), url(p)));
        out.push((format!("{prefix}_PROTO"), proto.to_lowercase()));
        out.push((format!("{prefix}_PORT"), p.port.to_string()));
        out.push((format!("{prefix}_ADDR"), ip.to_string()));
    }
    out
}

/// The service variables of a pod in `namespace` (pure).
pub fn service_env<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    namespace: &str,
    enable_service_links: bool,
) -> Vec<(String, String)> {
    let mut chosen: Vec<&Service> = services
        .into_iter()
        .filter(|s| {
            let ns = s.namespace().unwrap_or_default();
            (enable_service_links && ns == namespace)
                || (ns == MASTER_NAMESPACE && s.name_any() == MASTER_SERVICE)
        })
        .collect();
    chosen.sort_by_key(|s| (s.name_any(), s.namespace()));
    chosen.dedup_by_key(|s| s.name_any());
    chosen.into_iter().flat_map(vars_of).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports},
        }))
        .unwrap()
    }

    #[test]
    fn the_kubernetes_service_always_and_the_namespace_with_links() {
        let services = [
            svc(
                "default",
                "kubernetes",
                "10.96.0.1",
                json!([{"name": "https", "port": 443}]),
            ),
            svc(
                "dev",
                "web-api",
                "10.96.0.9",
                json!([{"port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]),
            ),
            svc("dev", "headless", "None", json!([{"port": 80}])),
            svc("other", "db", "10.96.0.7", json!([{"port": 5432}])),
        ];
        let env = service_env(&services, "dev", true);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP"), Some("tcp://10.96.0.1:443"));
        assert_eq!(get("WEB_API_SERVICE_HOST"), Some("10.96.0.9"));
        assert_eq!(get("WEB_API_PORT"), Some("tcp://10.96.0.9:80"));
        assert_eq!(get("WEB_API_PORT_53_UDP_PROTO"), Some("udp"));
        assert_eq!(get("HEADLESS_SERVICE_HOST"), None);
        assert_eq!(get("DB_SERVICE_HOST"), None);
        let without_links = service_env(&services, "dev", false);
        assert!(without_links
            .iter()
            .all(|(k, _)| k.starts_with("KUBERNETES_")));
    }
}
