//! What a request asks to do, in the terms authorization speaks (verb, API group, resource,
//! subresource, namespace, name; or a non-resource path), parsed from the method and URL alone
//! as kube-apiserver's RequestInfoFactory does, before anything knows which kinds are served.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    pub resource_request: bool,
    pub path: String,
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

/// Subresources of a namespace that are not resources inside it.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

pub fn parse(method: &str, path: &str, query: Option<&str>) -> RequestInfo {
    let query: HashMap<String, String> = query
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default();
    let verb_of_method = match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        other => other,
    };
    let non_resource = || RequestInfo {
        resource_request: false,
        path: path.to_string(),
        verb: verb_of_method.to_ascii_lowercase(),
        ..Default::default()
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => (("", *version), rest),
        ["apis", group, version, rest @ ..] => ((*group, *version), rest),
        _ => return non_resource(),
    };
    // /api/v1 and /apis/apps/v1 are discovery documents.
    if rest.is_empty() {
        return non_resource();
    }
    let mut info = RequestInfo {
        resource_request: true,
        path: path.to_string(),
        verb: verb_of_method.to_string(),
        api_group: group.0.to_string(),
        api_version: group.1.to_string(),
        ..Default::default()
    };
    let mut rest = rest;
    if rest[0] == "watch" && method == "GET" {
        info.verb = "watch".into();
        rest = &rest[1..];
    }
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        info.namespace = rest[1].to_string();
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest = &rest[2..];
        }
    }
    match rest.len() {
        0 => {}
        1 => info.resource = rest[0].to_string(),
        2 => {
            info.resource = rest[0].to_string();
            info.name = rest[1].to_string();
        }
        _ => {
            info.resource = rest[0].to_string();
            info.name = rest[1].to_string();
            info.subresource = rest[2].to_string();
        }
    }
    // A collection GET lists (or watches); a collection DELETE is deletecollection.
    if info.name.is_empty() {
        match info.verb.as_str() {
            "get" if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
                info.verb = "watch".into()
            }
            "get" => info.verb = "list".into(),
            "delete" => info.verb = "deletecollection".into(),
            _ => {}
        }
    }
    // A list or watch of one object by field selector is authorized as that object, so a
    // node may watch its own Node.
    if matches!(info.verb.as_str(), "list" | "watch") && info.name.is_empty() {
        if let Some(name) = query
            .get("fieldSelector")
            .and_then(|s| single_name_selector(s))
        {
            info.name = name.to_string();
        }
    }
    info
}

fn single_name_selector(selector: &str) -> Option<&str> {
    let mut parts = selector.split(',');
    let only = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    only.strip_prefix("metadata.name==")
        .or_else(|| only.strip_prefix("metadata.name="))
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, path: &str, query: Option<&str>) -> RequestInfo {
        parse(method, path, query)
    }

    #[test]
    fn resource_paths() {
        let i = info("GET", "/api/v1/namespaces/default/pods", None);
        assert_eq!(
            (i.verb.as_str(), i.namespace.as_str(), i.resource.as_str()),
            ("list", "default", "pods")
        );
        let i = info("GET", "/api/v1/namespaces/default/pods", Some("watch=true"));
        assert_eq!(i.verb, "watch");
        let i = info("GET", "/api/v1/watch/namespaces/default/pods/web", None);
        assert_eq!((i.verb.as_str(), i.name.as_str()), ("watch", "web"));
        let i = info("POST", "/api/v1/namespaces/default/pods/web/exec", None);
        assert_eq!(
            (i.verb.as_str(), i.resource.as_str(), i.subresource.as_str()),
            ("create", "pods", "exec")
        );
        let i = info(
            "PUT",
            "/apis/apps/v1/namespaces/ns/deployments/d/scale",
            None,
        );
        assert_eq!(
            (
                i.api_group.as_str(),
                i.subresource.as_str(),
                i.name.as_str()
            ),
            ("apps", "scale", "d")
        );
        let i = info("DELETE", "/api/v1/namespaces/ns/configmaps", None);
        assert_eq!(i.verb, "deletecollection");
    }

    #[test]
    fn namespaces_are_resources_too() {
        let i = info("GET", "/api/v1/namespaces", None);
        assert_eq!(
            (i.verb.as_str(), i.resource.as_str()),
            ("list", "namespaces")
        );
        let i = info("GET", "/api/v1/namespaces/dev", None);
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.namespace.as_str()),
            ("namespaces", "dev", "dev")
        );
        let i = info("PUT", "/api/v1/namespaces/dev/finalize", None);
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.subresource.as_str()),
            ("namespaces", "dev", "finalize")
        );
    }

    #[test]
    fn discovery_and_other_paths_are_non_resource() {
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps/v1",
            "/healthz",
            "/version",
        ] {
            let i = info("GET", path, None);
            assert!(!i.resource_request, "{path}");
            assert_eq!(i.verb, "get");
            assert_eq!(i.path, path);
        }
    }

    #[test]
    fn a_name_selector_narrows_a_list_to_one_object() {
        let i = info(
            "GET",
            "/api/v1/nodes",
            Some("fieldSelector=metadata.name%3Dn1&watch=1"),
        );
        assert_eq!((i.verb.as_str(), i.name.as_str()), ("watch", "n1"));
        let i = info(
            "GET",
            "/api/v1/pods",
            Some("fieldSelector=spec.nodeName%3Dn1"),
        );
        assert_eq!(i.name, "");
    }
}
