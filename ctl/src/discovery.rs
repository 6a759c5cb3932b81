//! Resource resolution through the API's discovery documents, as kubectl's RESTMapper does:
//! plural, singular, short names and kinds, optionally qualified by group (`deploy.apps`).

use serde_json::Value;

use crate::error::{CtlError, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub group: String,
    pub version: String,
    /// Plural, as in the URL path.
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub verbs: Vec<String>,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployment.apps` / `service`: the prefix of `-o name` and of apply's messages.
    pub fn kind_group(&self) -> String {
        let kind = self.kind.to_ascii_lowercase();
        if self.group.is_empty() {
            kind
        } else {
            format!("{kind}.{}", self.group)
        }
    }

    /// `deployments.apps` / `services`: how the server names the resource in errors.
    pub fn plural_group(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The collection path, in `namespace` when the resource is namespaced and one is given.
    pub fn collection(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }

    pub fn item(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{name}", self.collection(namespace))
    }
}

/// Every resource the server serves, core first, then groups in the server's order.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    pub resources: Vec<Resource>,
}

impl Discovery {
    /// The discovery document paths behind `/api` and `/apis` (as `(group, version, path)`),
    /// the preferred version of each group first, so it resolves names first.
    pub fn list_paths(core: &Value, groups: &Value) -> Vec<(String, String, String)> {
        let mut paths = Vec::new();
        for v in core["versions"].as_array().into_iter().flatten() {
            if let Some(v) = v.as_str() {
                paths.push(("".to_string(), v.to_string(), format!("/api/{v}")));
            }
        }
        for g in groups["groups"].as_array().into_iter().flatten() {
            let name = g["name"].as_str().unwrap_or_default();
            let preferred = g["preferredVersion"]["version"].as_str();
            let mut versions: Vec<&str> = g["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["version"].as_str())
                .collect();
            if let Some(p) = preferred {
                versions.sort_by_key(|v| *v != p);
            }
            for v in versions {
                paths.push((name.to_string(), v.to_string(), format!("/apis/{name}/{v}")));
            }
        }
        paths
    }

    /// The resources of the fetched resource lists, one per path of [`Discovery::list_paths`].
    pub fn from_lists<'a>(
        lists: impl IntoIterator<Item = (&'a str, &'a str, &'a Value)>,
    ) -> Discovery {
        let mut resources = Vec::new();
        for (group, version, list) in lists {
            resources.extend(parse_resource_list(group, version, list));
        }
        Discovery { resources }
    }

    /// The resource a user typed: `po`, `pods`, `pod`, `Pod`, `deploy.apps`, `deployments.v1.apps`.
    pub fn resolve(&self, input: &str) -> Result<&Resource> {
        self.find(input).ok_or_else(|| {
            CtlError::usage(format!(
                "the server doesn't have a resource type \"{input}\" (try `skiffctl api-resources`)"
            ))
        })
    }

    pub fn find(&self, input: &str) -> Option<&Resource> {
        let lower = input.to_ascii_lowercase();
        let (name, qualifier) = match lower.split_once('.') {
            Some((n, q)) => (n.to_string(), Some(q.to_string())),
            None => (lower.clone(), None),
        };
        let matches_name = |r: &Resource| {
            r.plural == name
                || r.singular == name
                || r.kind.to_ascii_lowercase() == name
                || r.short_names.contains(&name)
        };
        let matches_group = |r: &Resource| match &qualifier {
            None => true,
            Some(q) => {
                *q == r.group
                    || *q == format!("{}.{}", r.version, r.group)
                    || (*q == r.version && r.group.is_empty())
            }
        };
        // A preferred version of a resource appears first, so the first match is the one.
        self.resources
            .iter()
            .find(|r| matches_name(r) && matches_group(r))
    }

    /// The resource of a manifest's `apiVersion` and `kind`.
    pub fn for_kind(&self, api_version: &str, kind: &str) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.kind == kind && r.api_version() == api_version)
    }
}

/// The top-level resources (no subresources) of one `APIResourceList`.
pub fn parse_resource_list(group: &str, version: &str, list: &Value) -> Vec<Resource> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    list["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let plural = r["name"].as_str()?;
            if plural.contains('/') {
                return None;
            }
            let kind = r["kind"].as_str()?.to_string();
            let singular = r["singularName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(String::from)
                .unwrap_or_else(|| kind.to_ascii_lowercase());
            Some(Resource {
                group: group.to_string(),
                version: version.to_string(),
                plural: plural.to_string(),
                singular,
                kind,
                namespaced: r["namespaced"].as_bool().unwrap_or(false),
                short_names: strings(&r["shortNames"]),
                verbs: strings(&r["verbs"]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn disc() -> Discovery {
        let core = json!({"resources": [
            {"name": "pods", "singularName": "pod", "kind": "Pod", "namespaced": true, "shortNames": ["po"], "verbs": ["get"]},
            {"name": "pods/log", "kind": "Pod", "namespaced": true},
            {"name": "events", "singularName": "event", "kind": "Event", "namespaced": true, "shortNames": ["ev"]},
        ]});
        let apps = json!({"resources": [
            {"name": "deployments", "singularName": "deployment", "kind": "Deployment", "namespaced": true, "shortNames": ["deploy"]},
        ]});
        let events = json!({"resources": [
            {"name": "events", "singularName": "event", "kind": "Event", "namespaced": true, "shortNames": ["ev"]},
        ]});
        let mut resources = parse_resource_list("", "v1", &core);
        resources.extend(parse_resource_list("apps", "v1", &apps));
        resources.extend(parse_resource_list("events.k8s.io", "v1", &events));
        Discovery { resources }
    }

    #[test]
    fn resolves_short_plural_singular_kind_and_group() {
        let d = disc();
        for input in ["po", "pods", "pod", "Pod", "POD"] {
            assert_eq!(d.find(input).unwrap().plural, "pods", "{input}");
        }
        assert_eq!(d.find("deploy.apps").unwrap().kind, "Deployment");
        assert_eq!(d.find("deployments.v1.apps").unwrap().kind, "Deployment");
        assert_eq!(
            d.find("ev").unwrap().group,
            "",
            "core events win, as in kubectl"
        );
        assert_eq!(
            d.find("events.events.k8s.io").unwrap().group,
            "events.k8s.io"
        );
        assert!(d.find("pods/log").is_none());
        assert!(d.find("widgets").is_none());
    }

    #[test]
    fn paths_and_names() {
        let d = disc();
        let deploy = d.find("deploy").unwrap();
        assert_eq!(
            deploy.item(Some("ns"), "web"),
            "/apis/apps/v1/namespaces/ns/deployments/web"
        );
        assert_eq!(deploy.collection(None), "/apis/apps/v1/deployments");
        assert_eq!(deploy.kind_group(), "deployment.apps");
        assert_eq!(d.find("po").unwrap().kind_group(), "pod");
    }
}
