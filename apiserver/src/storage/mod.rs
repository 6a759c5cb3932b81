//! The storage layer: etcd (the source of truth, compare-and-swap writes) and the watch cache
//! (lists and watches), behind one per-resource interface. Whether a list is served from the
//! cache or from etcd is decided here, by [`list_source`], as kube-apiserver's cacher
//! delegator decides it; callers only say what they asked for.

pub mod cacher;
pub mod continuation;
pub mod encryption;
pub mod error;
pub mod etcd;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use cacher::{CacheEvent, EventType, Subscription, WatchCache};
pub use error::{StoreError, StoreResult};
pub use etcd::{set_resource_version, Page, SideKeys, Store, Versioned, WriteOutcome};

/// How long a read waits for the cache to reach the revision it needs (Kubernetes: 3 s).
const CACHE_WAIT: Duration = Duration::from_secs(3);

/// The storage of one resource.
#[derive(Clone)]
pub struct ResourceStorage {
    pub store: Store,
    pub cache: Arc<WatchCache>,
}

/// The list parameters that decide where a list is served from.
#[derive(Debug, Default, Clone)]
pub struct ListOptions {
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    /// 0: no limit.
    pub limit: i64,
    pub continue_token: Option<String>,
}

/// How fresh the cache must be before it answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Freshness {
    /// `resourceVersion=0`: whatever the cache holds.
    Any,
    /// No resourceVersion: a consistent read, at etcd's current revision.
    Consistent,
    /// At least this revision.
    AtLeast(i64),
}

/// Where a list is served from.
#[derive(Debug, PartialEq, Eq)]
pub enum ListSource {
    Cache(Freshness),
    /// From etcd at `revision` (0: the newest), from key `start`, in pages of `limit`.
    Etcd {
        start: Option<String>,
        revision: i64,
        limit: i64,
    },
}

fn parse_revision(rv: &str) -> StoreResult<i64> {
    rv.parse()
        .map_err(|_| StoreError::InvalidResourceVersion(rv.to_string()))
}

/// Continued and paged lists go to etcd (the cache keeps no old snapshots to page through);
/// everything else is served by the cache once it is fresh enough.
pub fn list_source(opts: &ListOptions, prefix: &str) -> StoreResult<ListSource> {
    let rv = opts.resource_version.as_deref();
    if let Some(token) = &opts.continue_token {
        let token = continuation::decode(token, prefix)?;
        return Ok(ListSource::Etcd {
            start: Some(token.start),
            revision: token.rv,
            limit: opts.limit,
        });
    }
    if opts.limit > 0 && rv != Some("0") {
        let revision = match (rv, opts.resource_version_match.as_deref()) {
            (Some(rv), Some("Exact")) => parse_revision(rv)?,
            _ => 0,
        };
        return Ok(ListSource::Etcd {
            start: None,
            revision,
            limit: opts.limit,
        });
    }
    Ok(ListSource::Cache(match rv {
        None => Freshness::Consistent,
        Some("0") => Freshness::Any,
        Some(rv) => Freshness::AtLeast(parse_revision(rv)?),
    }))
}

/// One list answer: matching items, the revision they are at, and where to continue.
#[derive(Debug)]
pub struct ListResult {
    pub items: Vec<Arc<Value>>,
    pub revision: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

impl ResourceStorage {
    pub async fn get(&self, key: &str) -> StoreResult<Option<Versioned>> {
        self.store.get(key).await
    }

    /// The object at `key` from the watch cache, else from etcd (the cache may trail a
    /// moment behind a create): for checks that need an object to exist, not its newest state.
    pub async fn get_cached_or_stored(&self, key: &str) -> StoreResult<Option<Value>> {
        if let Some(obj) = self.cache.get(key) {
            return Ok(Some((*obj).clone()));
        }
        Ok(self.store.get(key).await?.map(|v| v.value))
    }

    async fn wait_until(&self, freshness: Freshness) -> StoreResult<()> {
        let revision = match freshness {
            Freshness::Any => return Ok(()),
            Freshness::Consistent => self.store.current_revision().await?,
            Freshness::AtLeast(rv) => rv,
        };
        self.cache.wait_for(revision, CACHE_WAIT).await
    }

    /// The objects under `prefix` that `matches` accepts.
    pub async fn list(
        &self,
        prefix: &str,
        opts: &ListOptions,
        matches: impl Fn(&Value) -> bool,
    ) -> StoreResult<ListResult> {
        match list_source(opts, prefix)? {
            ListSource::Cache(freshness) => {
                self.wait_until(freshness).await?;
                let (items, revision) = self.cache.snapshot(prefix);
                Ok(ListResult {
                    items: items.into_iter().filter(|o| matches(o)).collect(),
                    revision,
                    continue_token: None,
                    remaining: None,
                })
            }
            ListSource::Etcd {
                start,
                revision,
                limit,
            } => {
                self.list_from_etcd(prefix, start, revision, limit, matches)
                    .await
            }
        }
    }

    /// Paginated list straight from etcd at one revision, filling each page with matching items.
    async fn list_from_etcd(
        &self,
        prefix: &str,
        mut start: Option<String>,
        mut revision: i64,
        limit: i64,
        matches: impl Fn(&Value) -> bool,
    ) -> StoreResult<ListResult> {
        let mut items = Vec::new();
        loop {
            let want = if limit > 0 {
                limit - items.len() as i64
            } else {
                0
            };
            let page = self
                .store
                .list(prefix, start.as_deref(), revision, want)
                .await?;
            revision = page.revision;
            let remaining = page.remaining;
            items.extend(
                page.items
                    .into_iter()
                    .map(|(_, v)| v.value)
                    .filter(|v| matches(v))
                    .map(Arc::new),
            );
            match page.next_key {
                None => {
                    return Ok(ListResult {
                        items,
                        revision,
                        continue_token: None,
                        remaining: None,
                    })
                }
                Some(next) if limit > 0 && items.len() as i64 >= limit => {
                    return Ok(ListResult {
                        items,
                        revision,
                        continue_token: Some(continuation::encode(revision, &next)),
                        remaining: Some(remaining),
                    });
                }
                Some(next) => start = Some(next),
            }
        }
    }

    /// Where a watch starts: from the current state (`resourceVersion` unset or 0, or
    /// `sendInitialEvents`), or replaying history after the given revision.
    pub async fn watch(
        &self,
        prefix: &str,
        resource_version: Option<&str>,
        send_initial_events: bool,
    ) -> StoreResult<Subscription> {
        let from = match resource_version {
            None | Some("0") => None,
            Some(rv) => {
                let rv = parse_revision(rv)?;
                self.cache.wait_for(rv, CACHE_WAIT).await?;
                Some(rv)
            }
        };
        if send_initial_events && resource_version.is_none() {
            self.wait_until(Freshness::Consistent).await?;
        }
        self.cache
            .subscribe(prefix, if send_initial_events { None } else { from })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(rv: Option<&str>, limit: i64) -> ListOptions {
        ListOptions {
            resource_version: rv.map(str::to_string),
            limit,
            ..Default::default()
        }
    }

    #[test]
    fn unpaged_lists_come_from_the_cache_at_the_freshness_asked_for() {
        let p = "/registry/pods/";
        assert_eq!(
            list_source(&opts(None, 0), p).unwrap(),
            ListSource::Cache(Freshness::Consistent)
        );
        assert_eq!(
            list_source(&opts(Some("0"), 0), p).unwrap(),
            ListSource::Cache(Freshness::Any)
        );
        assert_eq!(
            list_source(&opts(Some("42"), 0), p).unwrap(),
            ListSource::Cache(Freshness::AtLeast(42))
        );
        assert!(matches!(
            list_source(&opts(Some("x"), 0), p),
            Err(StoreError::InvalidResourceVersion(_))
        ));
    }

    #[test]
    fn paged_and_continued_lists_go_to_etcd() {
        let p = "/registry/pods/";
        assert_eq!(
            list_source(&opts(None, 10), p).unwrap(),
            ListSource::Etcd {
                start: None,
                revision: 0,
                limit: 10
            }
        );
        // resourceVersion=0 with a limit may be served from the cache, unpaged, as Kubernetes does.
        assert_eq!(
            list_source(&opts(Some("0"), 10), p).unwrap(),
            ListSource::Cache(Freshness::Any)
        );
        let exact = ListOptions {
            resource_version_match: Some("Exact".into()),
            ..opts(Some("7"), 10)
        };
        assert_eq!(
            list_source(&exact, p).unwrap(),
            ListSource::Etcd {
                start: None,
                revision: 7,
                limit: 10
            }
        );
        let token = continuation::encode(9, "/registry/pods/default/b\u{0}");
        let continued = ListOptions {
            continue_token: Some(token),
            ..opts(None, 10)
        };
        assert_eq!(
            list_source(&continued, p).unwrap(),
            ListSource::Etcd {
                start: Some("/registry/pods/default/b\u{0}".into()),
                revision: 9,
                limit: 10
            }
        );
        let elsewhere = ListOptions {
            continue_token: Some(continuation::encode(9, "/registry/secrets/x")),
            ..opts(None, 10)
        };
        assert!(matches!(
            list_source(&elsewhere, p),
            Err(StoreError::InvalidContinue(_))
        ));
    }
}
