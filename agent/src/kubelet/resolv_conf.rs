//! The resolv.conf of a pod per its dnsPolicy and dnsConfig, as the kubelet writes it.

use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

use super::spec::BindMount;

/// The resolv.conf a pod gets (as the kubelet builds it), or `None` to leave the image's.
///
/// - `ClusterFirst` (the default; for hostNetwork pods only as `ClusterFirstWithHostNet`):
///   the cluster DNS, searching `<ns>.svc.<domain> svc.<domain> <domain>`, `ndots:5`; without
///   a cluster DNS it falls back to `Default`;
/// - `Default`: the host's resolv.conf;
/// - `None`: only the pod's `dnsConfig`.
///
/// `dnsConfig` nameservers, searches and options are added in every case.
pub fn resolv_conf(
    pod: &Pod,
    cluster_dns: Option<IpAddr>,
    domain: &str,
    host_resolv_conf: &str,
) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network.unwrap_or(false);
    let cluster = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let mut nameservers: Vec<String> = Vec::new();
    let mut searches: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    match (cluster, cluster_dns, policy) {
        (true, Some(ip), _) => {
            let d = domain.trim_end_matches('.');
            nameservers.push(ip.to_string());
            searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.to_string()];
            options.push("ndots:5".into());
        }
        (_, _, "None") => {}
        _ => {
            for line in host_resolv_conf.lines() {
                let mut words = line.split_whitespace();
                match words.next() {
                    Some("nameserver") => nameservers.extend(words.next().map(str::to_string)),
                    Some("search") | Some("domain") => searches.extend(words.map(str::to_string)),
                    Some("options") => options.extend(words.map(str::to_string)),
                    _ => {}
                }
            }
        }
    }
    if let Some(dc) = &spec.dns_config {
        for n in dc.nameservers.iter().flatten() {
            if !nameservers.contains(n) {
                nameservers.push(n.clone());
            }
        }
        for s in dc.searches.iter().flatten() {
            if !searches.contains(s) {
                searches.push(s.clone());
            }
        }
        for o in dc.options.iter().flatten() {
            let text = match &o.value {
                Some(v) => format!("{}:{v}", o.name.as_deref().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let key = text.split(':').next().unwrap_or_default().to_string();
            options.retain(|e| e.split(':').next() != Some(key.as_str()));
            options.push(text);
        }
    }
    if nameservers.is_empty() && searches.is_empty() && options.is_empty() {
        return None;
    }
    let mut out = String::new();
    // At most 3 nameservers and 6 search domains, as glibc reads them (and the kubelet cuts).
    for n in nameservers.iter().take(3) {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !searches.is_empty() {
        searches.truncate(6);
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    Some(out)
}

/// Write the pod's resolv.conf into its directory and return the bind mount for
/// `/etc/resolv.conf` (read-only), or `None` when the pod keeps the image's.
pub fn pod_resolv_conf(
    config: &crate::config::Config,
    pod: &Pod,
    pod_dir: &Path,
) -> anyhow::Result<Option<BindMount>> {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let Some(text) = resolv_conf(pod, config.cluster_dns, &config.cluster_domain, &host) else {
        return Ok(None);
    };
    std::fs::create_dir_all(pod_dir)?;
    let path = pod_dir.join("resolv.conf");
    let tmp = pod_dir.join("resolv.conf.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(Some(BindMount {
        host_path: path.display().to_string(),
        container_path: "/etc/resolv.conf".into(),
        read_only: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolv_conf_follows_dns_policy() {
        let pod = |v: serde_json::Value| serde_json::from_value::<Pod>(v).unwrap();
        let dns = Some(IpAddr::from([10, 244, 0, 1]));
        let host = "nameserver 10.255.255.53\nsearch corp.example\n";
        let plain = pod(json!({"metadata": {"name": "p", "namespace": "shop"},
            "spec": {"containers": []}}));
        assert_eq!(
            resolv_conf(&plain, dns, "cluster.local", host).unwrap(),
            "nameserver 10.244.0.1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        );
        // No cluster DNS: the host's.
        assert_eq!(
            resolv_conf(&plain, None, "cluster.local", host).unwrap(),
            "nameserver 10.255.255.53\nsearch corp.example\n"
        );
        let hostnet = pod(json!({"metadata": {"name": "p"},
            "spec": {"hostNetwork": true, "containers": []}}));
        assert!(resolv_conf(&hostnet, dns, "cluster.local", host)
            .unwrap()
            .starts_with("nameserver 10.255.255.53"));
        let custom = pod(json!({"metadata": {"name": "p"},
            "spec": {"dnsPolicy": "None", "containers": [],
                     "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}}));
        assert_eq!(
            resolv_conf(&custom, dns, "cluster.local", host).unwrap(),
            "nameserver 1.1.1.1\noptions ndots:2 edns0\n"
        );
        let none = pod(json!({"metadata": {"name": "p"},
            "spec": {"dnsPolicy": "None", "containers": []}}));
        assert_eq!(resolv_conf(&none, dns, "cluster.local", host), None);
    }
}
