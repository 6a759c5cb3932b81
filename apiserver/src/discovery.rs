//! Discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`, `/version`) and
//! the OpenAPI v3 index kubectl consults, shaped exactly like kube-apiserver's.

use serde_json::{json, Value};

use crate::registry::strategy::KindStrategy;
use crate::registry::{self, group_versions};
use crate::resource::ALL_VERBS;

/// The Kubernetes version whose API semantics skiff follows.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";

pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0-skiff.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

pub fn groups<K: AsRef<dyn KindStrategy>>(kinds: &[K]) -> Value {
    let groups: Vec<Value> = group_versions(kinds)
        .into_iter()
        .map(|(g, v)| group_entry(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group<K: AsRef<dyn KindStrategy>>(kinds: &[K], name: &str) -> Option<Value> {
    let (g, v) = group_versions(kinds)
        .into_iter()
        .find(|(g, _)| *g == name)?;
    let mut entry = group_entry(g, v);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    Some(entry)
}

fn resource_entry(strategy: &dyn KindStrategy) -> Vec<Value> {
    let r = strategy.info();
    let mut main = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": if strategy.virtual_create().is_some() { &["create"][..] } else { ALL_VERBS },
    });
    if !r.short_names.is_empty() {
        main["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        main["categories"] = json!(r.categories);
    }
    let mut out = vec![main];
    for sub in strategy.subresources() {
        let mut entry = json!({
            "name": format!("{}/{}", r.plural, sub.name),
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": if sub.kind.is_empty() { r.kind } else { sub.kind },
            "verbs": sub.verbs,
        });
        if !sub.group.is_empty() {
            entry["group"] = json!(sub.group);
            entry["version"] = json!(sub.version);
        }
        out.push(entry);
    }
    out
}

pub fn resources<K: AsRef<dyn KindStrategy>>(
    kinds: &[K],
    group: &str,
    version: &str,
) -> Option<Value> {
    let list: Vec<Value> = registry::in_group_version(kinds, group, version)
        .flat_map(resource_entry)
        .collect();
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin::{kinds, RegistryConfig};

    #[test]
    fn core_discovery_lists_pods_with_short_names_and_subresources() {
        let kinds = kinds(&RegistryConfig::default());
        let doc = resources(&kinds, "", "v1").unwrap();
        let list = doc["resources"].as_array().unwrap();
        let pods = list.iter().find(|r| r["name"] == "pods").unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert!(list.iter().any(|r| r["name"] == "pods/status"));
        assert!(list.iter().any(|r| r["name"] == "pods/binding"));
    }

    #[test]
    fn apps_group_is_discoverable() {
        let kinds = kinds(&RegistryConfig::default());
        let groups = groups(&kinds);
        assert!(groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "apps"));
        let scale = resources(&kinds, "apps", "v1").unwrap()["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .cloned()
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
    }
}
