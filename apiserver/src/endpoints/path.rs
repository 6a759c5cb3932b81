//! Resource paths: `/api/v1/...` and `/apis/<group>/<version>/...`, with optional
//! `namespaces/<ns>/`, a name, a subresource, and the legacy `watch/` prefix.

use crate::registry::strategy::{KindStrategy, SubresourceDef};

/// What a request path names.
#[derive(Debug)]
pub struct Target<'a, K> {
    pub kind: &'a K,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<&'static SubresourceDef>,
    pub watch_path: bool,
}

impl<K: AsRef<dyn KindStrategy>> Target<'_, K> {
    pub fn strategy(&self) -> &dyn KindStrategy {
        self.kind.as_ref()
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    pub fn key(&self) -> String {
        self.strategy()
            .info()
            .key(self.namespace.as_deref(), self.name())
    }

    pub fn prefix(&self) -> String {
        self.strategy()
            .info()
            .namespace_prefix(self.namespace.as_deref())
    }
}

/// Parse a resource path against the served kinds.
pub fn parse_path<'a, K: AsRef<dyn KindStrategy>>(
    kinds: &'a [K],
    path: &str,
) -> Option<Target<'a, K>> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, mut rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let watch_path = rest.first() == Some(&"watch");
    if watch_path {
        rest = &rest[1..];
    }
    let find = |plural: &str| crate::registry::find(kinds, group, version, plural);
    let namespaced_target = rest.len() >= 3
        && rest[0] == "namespaces"
        && find(rest[2]).is_some_and(|k| k.as_ref().info().namespaced);
    let (namespace, rest) = if namespaced_target {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let kind = find(rest.first()?)?;
    let strategy = kind.as_ref();
    if strategy.info().namespaced && namespace.is_none() && rest.len() > 1 {
        return None;
    }
    let name = rest.get(1).map(|s| s.to_string());
    let sub = match rest.get(2) {
        Some(s) => Some(strategy.subresource(s)?),
        None => None,
    };
    if rest.len() > 3 || name.as_deref() == Some("") {
        return None;
    }
    Some(Target {
        kind,
        namespace,
        name,
        sub,
        watch_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin::{kinds, RegistryConfig};

    #[test]
    fn paths_name_resources_namespaces_and_subresources() {
        let kinds = kinds(&RegistryConfig::default());
        let t = parse_path(&kinds, "/api/v1/namespaces/default/pods/web-1/status").unwrap();
        assert_eq!(t.strategy().info().plural, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web-1"));
        assert_eq!(t.sub.map(|s| s.name), Some("status"));

        let t = parse_path(&kinds, "/api/v1/namespaces/kube-system").unwrap();
        assert_eq!(t.strategy().info().plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("kube-system"));

        let t = parse_path(&kinds, "/api/v1/namespaces/dev/finalize").unwrap();
        assert_eq!(t.strategy().info().plural, "namespaces");
        assert_eq!(t.sub.map(|s| s.name), Some("finalize"));

        let t = parse_path(&kinds, "/apis/apps/v1/deployments").unwrap();
        assert!(t.namespace.is_none() && t.name.is_none());

        let t = parse_path(&kinds, "/api/v1/watch/namespaces/default/pods").unwrap();
        assert!(t.watch_path);

        assert!(parse_path(&kinds, "/api/v1/namespaces/default/configmaps/x/scale").is_none());
        assert!(parse_path(&kinds, "/apis/apps/v1/widgets").is_none());
        assert!(parse_path(&kinds, "/api/v1/pods/name-without-namespace").is_none());
    }
}
