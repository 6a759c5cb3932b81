//! The registry: the served kinds, each a [`KindStrategy`] with its storage, and the generic
//! store flow that every write goes through. `builtin.rs` is the one list of served kinds;
//! adding a kind is a folder under its group and one line there.

pub mod builtin;
pub mod defaults;
pub mod generic;
pub mod scale;
pub mod strategy;
pub mod typed;
pub mod validation;

pub mod apps;
pub mod authentication;
pub mod authorization;
pub mod batch;
pub mod coordination;
pub mod core;
pub mod discovery;
pub mod rbac;

use std::sync::Arc;

use futures::future::BoxFuture;

pub use strategy::KindStrategy;

use crate::error::ApiResult;
use crate::resource::ResourceInfo;
use crate::storage::{ResourceStorage, Store, WatchCache};

/// A served resource: its strategy and its storage.
pub struct Resource {
    pub strategy: Box<dyn KindStrategy>,
    pub storage: ResourceStorage,
}

impl Resource {
    pub fn info(&self) -> &'static ResourceInfo {
        self.strategy.info()
    }
}

impl AsRef<dyn KindStrategy> for Resource {
    fn as_ref(&self) -> &(dyn KindStrategy + 'static) {
        self.strategy.as_ref()
    }
}

/// A plugin every create in a namespace passes: first [`Admission::mutate_create`] (before
/// validation, as Kubernetes' mutating admission), then [`Admission::admit_create`].
pub trait Admission: Send + Sync {
    /// Change a new object before it is validated (the ServiceAccount plugin's token volume).
    fn mutate_create<'a>(
        &'a self,
        _registry: &'a Registry,
        _info: &'static ResourceInfo,
        _namespace: &'a str,
        _obj: &'a mut serde_json::Value,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Accept or refuse a new, validated object.
    fn admit_create<'a>(
        &'a self,
        _registry: &'a Registry,
        _info: &'static ResourceInfo,
        _namespace: &'a str,
        _name: &'a str,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async { Ok(()) })
    }
}

pub struct Registry {
    resources: Vec<Resource>,
    admission: Vec<Box<dyn Admission>>,
}

impl Registry {
    /// One watch cache per kind over `store` (started by [`Registry::start_caches`]).
    pub fn new(
        kinds: Vec<Box<dyn KindStrategy>>,
        admission: Vec<Box<dyn Admission>>,
        store: &Store,
        cache_size: usize,
    ) -> Registry {
        let resources = kinds
            .into_iter()
            .map(|strategy| {
                let info = strategy.info();
                let cache = WatchCache::new(info.plural, info.storage_prefix(), cache_size);
                Resource {
                    strategy,
                    storage: ResourceStorage {
                        store: store.clone(),
                        cache,
                    },
                }
            })
            .collect();
        Registry {
            resources,
            admission,
        }
    }

    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    pub fn caches(&self) -> impl Iterator<Item = &Arc<WatchCache>> {
        self.resources.iter().map(|r| &r.storage.cache)
    }

    pub fn admission(&self) -> &[Box<dyn Admission>] {
        &self.admission
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&Resource> {
        find(&self.resources, group, version, plural)
    }

    /// The resource `info` describes (every `ResourceInfo` a strategy hands out is served).
    pub fn of(&self, info: &ResourceInfo) -> &Resource {
        self.resources
            .iter()
            .find(|r| std::ptr::eq(r.info(), info))
            .expect("every kind's ResourceInfo is registered")
    }
}

pub fn find<'a, K: AsRef<dyn KindStrategy>>(
    kinds: &'a [K],
    group: &str,
    version: &str,
    plural: &str,
) -> Option<&'a K> {
    kinds.iter().find(|k| {
        let r = k.as_ref().info();
        r.group == group && r.version == version && r.plural == plural
    })
}

/// The group/versions served, in discovery order (the core group apart).
pub fn group_versions<K: AsRef<dyn KindStrategy>>(
    kinds: &[K],
) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in kinds.iter().map(|k| k.as_ref().info()) {
        if !r.group.is_empty() && !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

pub fn in_group_version<'a, K: AsRef<dyn KindStrategy>>(
    kinds: &'a [K],
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'a dyn KindStrategy> + 'a {
    kinds
        .iter()
        .map(|k| k.as_ref())
        .filter(move |k| k.info().group == group && k.info().version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_are_unique_per_group_and_prefixes_do_not_nest() {
        let kinds = builtin::kinds(&builtin::RegistryConfig::default());
        for (i, a) in kinds.iter().enumerate() {
            for b in &kinds[i + 1..] {
                let (a, b) = (a.info(), b.info());
                assert!(
                    !(a.group == b.group && a.plural == b.plural),
                    "{} twice",
                    a.plural
                );
                assert!(!a.storage_prefix().starts_with(&b.storage_prefix()));
                assert!(!b.storage_prefix().starts_with(&a.storage_prefix()));
            }
        }
    }

    #[test]
    fn keys_follow_the_registry_layout() {
        let kinds = builtin::kinds(&builtin::RegistryConfig::default());
        let pods = find(&kinds, "", "v1", "pods").unwrap().info();
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        let nodes = find(&kinds, "", "v1", "nodes").unwrap().info();
        assert_eq!(nodes.key(None, "n1"), "/registry/nodes/n1");
        let deployments = find(&kinds, "apps", "v1", "deployments").unwrap().info();
        assert_eq!(deployments.qualified_plural(), "deployments.apps");
    }

    #[test]
    fn every_kind_has_columns_a_schema_and_subresources_with_verbs() {
        let kinds = builtin::kinds(&builtin::RegistryConfig::default());
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        for k in &kinds {
            assert!(!k.printer().columns.is_empty(), "{}", k.info().kind);
            let schema = k.openapi_schema(&mut generator);
            assert!(schema.get("$ref").is_some(), "{}", k.info().kind);
            for sub in k.subresources() {
                assert!(!sub.verbs.is_empty(), "{}/{}", k.info().plural, sub.name);
            }
        }
    }
}
