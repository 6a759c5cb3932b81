//! What the API serves for one resource: its REST names, scope and discovery metadata, and
//! where its objects live in etcd. Pure data; a kind's behaviour is its strategy
//! (`registry::strategy`).

/// What the API serves for one resource (a plural REST name under a group/version).
#[derive(Debug)]
pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// `metadata.generation` is kept and bumped on spec changes.
    pub tracks_generation: bool,
}

pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// `deployments.apps`, or `pods` in the core group: the name used in error messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// etcd prefix holding every object of this resource, ending in `/`.
    pub fn storage_prefix(&self) -> String {
        format!("/registry/{}/", self.plural)
    }

    /// etcd prefix for one namespace (or the whole resource when cluster-scoped / all namespaces).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("/registry/{}/{}/", self.plural, ns),
            _ => self.storage_prefix(),
        }
    }

    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("/registry/{}/{}/{}", self.plural, ns, name),
            _ => format!("/registry/{}/{}", self.plural, name),
        }
    }
}
