//! The watch cache: one etcd watch per resource feeds an in-memory copy of every object and a
//! bounded window of recent events. Watches and consistent lists are served from it, so a
//! thousand watchers cost one etcd watch, and a slow watcher only loses its own stream.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{EventType as EtcdEventType, GetOptions, WatchOptions};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, watch};

use super::error::StoreError;
use super::etcd::{prefix_end, set_resource_version, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn wire_name(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A change to one object. For `Deleted`, `object` is the last state with the deletion revision.
#[derive(Debug)]
pub struct CacheEvent {
    pub kind: EventType,
    pub key: String,
    pub object: Arc<Value>,
    pub prev: Option<Arc<Value>>,
    pub revision: i64,
    encoded: OnceLock<Bytes>,
}

impl CacheEvent {
    pub fn new(
        kind: EventType,
        key: String,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
        revision: i64,
    ) -> Self {
        CacheEvent {
            kind,
            key,
            object,
            prev,
            revision,
            encoded: OnceLock::new(),
        }
    }

    /// The object's JSON, serialized once however many watchers send it.
    pub fn encoded_object(&self) -> Bytes {
        self.encoded
            .get_or_init(|| Bytes::from(serde_json::to_vec(&*self.object).unwrap_or_default()))
            .clone()
    }
}

/// One change to the stored objects, as the store reports it.
#[derive(Debug)]
pub enum Change {
    Put {
        key: String,
        object: Value,
        revision: i64,
    },
    Delete {
        key: String,
        revision: i64,
    },
}

/// Where a new watch starts.
pub struct Subscription {
    /// Events to send before live ones: synthetic ADDED for a fresh start, or history replay.
    pub initial: Vec<Arc<CacheEvent>>,
    /// The cache's revision when the subscription was taken.
    pub revision: i64,
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
}

struct Inner {
    objects: BTreeMap<String, Arc<Value>>,
    history: VecDeque<Arc<CacheEvent>>,
    /// Watches can resume from any revision at or after this one.
    oldest: i64,
    revision: i64,
    /// The newest revision of an event (or list) actually applied; `revision` may be ahead of
    /// it through progress notifications.
    applied: i64,
    live: broadcast::Sender<Arc<CacheEvent>>,
}

pub struct WatchCache {
    /// The resource's etcd prefix, ending in `/`.
    pub prefix: String,
    /// The resource's plural name, for logs.
    pub resource: &'static str,
    inner: RwLock<Inner>,
    revision_tx: watch::Sender<i64>,
    progress_tx: mpsc::Sender<()>,
    progress_rx: std::sync::Mutex<Option<mpsc::Receiver<()>>>,
    capacity: usize,
    live_capacity: usize,
}

const LIST_PAGE: i64 = 1000;

impl WatchCache {
    pub fn new(resource: &'static str, prefix: String, capacity: usize) -> Arc<Self> {
        let live_capacity = capacity.clamp(1024, 65536);
        let (live, _) = broadcast::channel(live_capacity);
        let (revision_tx, _) = watch::channel(0);
        let (progress_tx, progress_rx) = mpsc::channel(1);
        Arc::new(WatchCache {
            prefix,
            resource,
            inner: RwLock::new(Inner {
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                oldest: 0,
                revision: 0,
                applied: 0,
                live,
            }),
            revision_tx,
            progress_tx,
            progress_rx: std::sync::Mutex::new(Some(progress_rx)),
            capacity: capacity.max(1),
            live_capacity,
        })
    }

    pub fn revision(&self) -> i64 {
        self.inner.read().expect("cache lock").revision
    }

    /// The revision of the last change applied (not moved by progress notifications), so a
    /// reader can tell whether the objects changed.
    pub fn applied_revision(&self) -> i64 {
        self.inner.read().expect("cache lock").applied
    }

    /// The oldest revision a watch may start from.
    pub fn oldest(&self) -> i64 {
        self.inner.read().expect("cache lock").oldest
    }

    /// Forget history up to `revision` (etcd compacted it).
    pub fn trim_history(&self, revision: i64) {
        let mut inner = self.inner.write().expect("cache lock");
        while inner
            .history
            .front()
            .is_some_and(|e| e.revision <= revision)
        {
            inner.history.pop_front();
        }
        if inner.oldest < revision {
            inner.oldest = revision;
        }
    }

    /// Keep the cache in step with etcd until the process ends.
    pub async fn run(self: Arc<Self>, store: Store) {
        let mut progress_rx = self
            .progress_rx
            .lock()
            .expect("progress lock")
            .take()
            .expect("a cache runs once");
        loop {
            if let Err(e) = self.sync(&store, &mut progress_rx).await {
                tracing::warn!(resource = self.resource, error = %e, "watch cache lost etcd; re-listing");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    /// List everything, then follow etcd's watch from that revision. Returns on any break.
    async fn sync(
        &self,
        store: &Store,
        progress_rx: &mut mpsc::Receiver<()>,
    ) -> Result<(), StoreError> {
        let prefix = self.prefix.clone();
        let mut kv = store.client().kv_client();
        let mut objects = BTreeMap::new();
        let mut start = prefix.clone().into_bytes();
        let mut list_rev = 0;
        loop {
            let opts = GetOptions::new()
                .with_range(prefix_end(&prefix))
                .with_limit(LIST_PAGE)
                .with_revision(list_rev);
            let resp = kv.get(start.clone(), Some(opts)).await?;
            if list_rev == 0 {
                list_rev = resp.header().map(|h| h.revision()).unwrap_or(0);
            }
            for kv in resp.kvs() {
                let v = store.decode(kv)?;
                objects.insert(
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    Arc::new(v.value),
                );
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => break,
            }
        }
        self.reset(objects, list_rev);

        let opts = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(list_rev + 1);
        let mut stream = store
            .client()
            .watch_client()
            .watch(prefix.clone(), Some(opts))
            .await?;
        loop {
            tokio::select! {
                msg = stream.message() => {
                    let Some(resp) = msg? else { return Ok(()) };
                    if resp.canceled() {
                        return Err(StoreError::Compacted(format!(
                            "etcd watch canceled (compacted at {}): {}",
                            resp.compact_revision(),
                            resp.cancel_reason()
                        )));
                    }
                    if resp.events().is_empty() {
                        // A progress notification: everything up to this revision has been seen.
                        if let Some(h) = resp.header() {
                            if self.nothing_pending(&mut kv, &prefix, h.revision()).await {
                                self.advance(h.revision());
                            }
                        }
                        continue;
                    }
                    for ev in resp.events() {
                        self.apply(store, ev)?;
                    }
                }
                Some(()) = progress_rx.recv() => {
                    stream.request_progress().await?;
                }
            }
        }
    }

    /// Whether etcd holds no write under `prefix` newer than the last applied event, as of
    /// `revision`. etcd 3.4 (before 3.4.31) may send a progress notification while events up
    /// to its revision are still queued for the watcher (etcd issue 15220); trusting it alone
    /// would let a consistent list miss a write that was just acknowledged.
    async fn nothing_pending(
        &self,
        kv: &mut etcd_client::KvClient,
        prefix: &str,
        revision: i64,
    ) -> bool {
        let applied = self.inner.read().expect("cache lock").applied;
        if revision <= applied {
            return true;
        }
        // Not count_only: etcd counts the whole range before the mod-revision filter applies.
        let opts = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_revision(revision)
            .with_min_mod_revision(applied + 1)
            .with_keys_only();
        match kv.get(prefix.as_bytes().to_vec(), Some(opts)).await {
            Ok(resp) => resp.kvs().is_empty(),
            Err(_) => false,
        }
    }

    /// Replace the whole state with a fresh list at `revision`.
    pub fn reset(&self, objects: BTreeMap<String, Arc<Value>>, revision: i64) {
        let mut inner = self.inner.write().expect("cache lock");
        inner.objects = objects;
        inner.history.clear();
        inner.oldest = revision;
        inner.revision = revision;
        inner.applied = revision;
        // Watchers of the old stream may have missed events: close them so they start over.
        let (live, _) = broadcast::channel(self.live_capacity);
        inner.live = live;
        drop(inner);
        self.revision_tx.send_replace(revision);
    }

    fn advance(&self, revision: i64) {
        let mut inner = self.inner.write().expect("cache lock");
        if revision > inner.revision {
            inner.revision = revision;
            drop(inner);
            self.revision_tx.send_replace(revision);
        }
    }

    fn apply(&self, store: &Store, ev: &etcd_client::Event) -> Result<(), StoreError> {
        let Some(kv) = ev.kv() else { return Ok(()) };
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let revision = kv.mod_revision();
        let change = match ev.event_type() {
            EtcdEventType::Put => Change::Put {
                key,
                object: store.decode(kv)?.value,
                revision,
            },
            EtcdEventType::Delete => Change::Delete { key, revision },
        };
        self.apply_change(change);
        Ok(())
    }

    /// Apply one change seen on the store: update the objects, record the event in the
    /// window, and send it to the watchers.
    pub fn apply_change(&self, change: Change) {
        let (key, revision) = match &change {
            Change::Put { key, revision, .. } | Change::Delete { key, revision } => {
                (key.clone(), *revision)
            }
        };
        let mut inner = self.inner.write().expect("cache lock");
        let prev = inner.objects.get(&key).cloned();
        let event = match change {
            Change::Put { object, .. } => {
                let object = Arc::new(object);
                inner.objects.insert(key.clone(), object.clone());
                let kind = if prev.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                CacheEvent::new(kind, key, object, prev, revision)
            }
            Change::Delete { .. } => {
                inner.objects.remove(&key);
                let Some(prev) = prev else {
                    // Deleted before we ever saw it (e.g. created and removed inside one list).
                    inner.revision = revision.max(inner.revision);
                    inner.applied = revision.max(inner.applied);
                    return;
                };
                let mut last = (*prev).clone();
                set_resource_version(&mut last, revision);
                CacheEvent::new(
                    EventType::Deleted,
                    key,
                    Arc::new(last),
                    Some(prev),
                    revision,
                )
            }
        };
        let event = Arc::new(event);
        inner.history.push_back(event.clone());
        while inner.history.len() > self.capacity {
            if let Some(old) = inner.history.pop_front() {
                inner.oldest = old.revision;
            }
        }
        inner.revision = revision.max(inner.revision);
        inner.applied = revision.max(inner.applied);
        // No receivers is fine; a lagging receiver notices on its own.
        let _ = inner.live.send(event);
        drop(inner);
        self.revision_tx.send_replace(revision);
    }

    /// Wait until the cache has seen `revision`, asking etcd for a progress notification when
    /// the resource itself is quiet. Kubernetes gives up after 3 s with a 504.
    pub async fn wait_for(&self, revision: i64, timeout: Duration) -> Result<(), StoreError> {
        let mut rx = self.revision_tx.subscribe();
        if *rx.borrow() >= revision {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let _ = self.progress_tx.try_send(());
            let outcome =
                tokio::time::timeout(Duration::from_millis(100), rx.wait_for(|r| *r >= revision))
                    .await
                    .map(|r| r.is_ok());
            match outcome {
                Ok(true) => return Ok(()),
                Ok(false) => return Err(StoreError::CacheStopped),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(StoreError::TooLargeResourceVersion {
                        requested: revision,
                        current: *rx.borrow(),
                    })
                }
                Err(_) => {}
            }
        }
    }

    /// The object stored under `key`, as of the cache's current revision.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.inner
            .read()
            .expect("cache lock")
            .objects
            .get(key)
            .cloned()
    }

    /// Every object under `prefix`, as of the cache's current revision.
    pub fn snapshot(&self, prefix: &str) -> (Vec<Arc<Value>>, i64) {
        let inner = self.inner.read().expect("cache lock");
        let items = inner
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.revision)
    }

    /// Start a watch. `from: None` begins with the current state as ADDED events; `Some(rv)`
    /// replays every change after `rv`, or fails with 410 Gone if that is no longer in the window.
    pub fn subscribe(&self, prefix: &str, from: Option<i64>) -> Result<Subscription, StoreError> {
        let inner = self.inner.read().expect("cache lock");
        let initial = match from {
            None => inner
                .objects
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| {
                    let rev = resource_version(v).unwrap_or(inner.revision);
                    Arc::new(CacheEvent::new(
                        EventType::Added,
                        k.clone(),
                        v.clone(),
                        None,
                        rev,
                    ))
                })
                .collect(),
            Some(rv) => {
                if rv < inner.oldest {
                    return Err(StoreError::TooOldResourceVersion {
                        requested: rv,
                        oldest: inner.oldest,
                    });
                }
                inner
                    .history
                    .iter()
                    .filter(|e| e.revision > rv && e.key.starts_with(prefix))
                    .cloned()
                    .collect()
            }
        };
        Ok(Subscription {
            initial,
            revision: inner.revision,
            live: inner.live.subscribe(),
        })
    }
}

pub fn resource_version(v: &Value) -> Option<i64> {
    v.pointer("/metadata/resourceVersion")?
        .as_str()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PREFIX: &str = "/registry/pods/";

    fn pod(name: &str, rv: i64) -> Value {
        json!({"metadata": {"name": name, "namespace": "d", "resourceVersion": rv.to_string()}})
    }

    fn put(name: &str, rv: i64) -> Change {
        Change::Put {
            key: format!("{PREFIX}d/{name}"),
            object: pod(name, rv),
            revision: rv,
        }
    }

    /// A cache listed at revision 10 with one pod, as if fed by a store.
    fn cache(capacity: usize) -> Arc<WatchCache> {
        let cache = WatchCache::new("pods", PREFIX.to_string(), capacity);
        let objects = BTreeMap::from([(format!("{PREFIX}d/a"), Arc::new(pod("a", 5)))]);
        cache.reset(objects, 10);
        cache
    }

    #[test]
    fn changes_update_the_snapshot_and_the_revision() {
        let c = cache(100);
        c.apply_change(put("b", 11));
        c.apply_change(put("a", 12));
        c.apply_change(Change::Delete {
            key: format!("{PREFIX}d/b"),
            revision: 13,
        });
        let (items, rev) = c.snapshot(PREFIX);
        assert_eq!(rev, 13);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["resourceVersion"], "12");
        // Deleting what the cache never saw only moves the revision on.
        c.apply_change(Change::Delete {
            key: format!("{PREFIX}d/zz"),
            revision: 14,
        });
        assert_eq!(c.revision(), 14);
        assert_eq!(c.snapshot(PREFIX).0.len(), 1);
    }

    #[test]
    fn a_watch_from_a_revision_replays_the_window_with_kinds_and_previous_states() {
        let c = cache(100);
        c.apply_change(put("b", 11));
        c.apply_change(put("b", 12));
        c.apply_change(Change::Delete {
            key: format!("{PREFIX}d/b"),
            revision: 13,
        });
        let sub = c.subscribe(PREFIX, Some(11)).unwrap();
        let kinds: Vec<EventType> = sub.initial.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventType::Modified, EventType::Deleted]);
        let deleted = &sub.initial[1];
        assert_eq!(deleted.object["metadata"]["resourceVersion"], "13");
        assert_eq!(
            deleted.prev.as_ref().unwrap()["metadata"]["resourceVersion"],
            "12"
        );
        // A fresh watch starts from the current objects as ADDED.
        let fresh = c.subscribe(PREFIX, None).unwrap();
        assert_eq!(fresh.initial.len(), 1);
        assert_eq!(fresh.initial[0].kind, EventType::Added);
        assert_eq!(fresh.revision, 13);
    }

    #[test]
    fn revisions_older_than_the_window_are_gone() {
        let c = cache(2);
        for rv in 11..=15 {
            c.apply_change(put("b", rv));
        }
        assert!(matches!(
            c.subscribe(PREFIX, Some(11)),
            Err(StoreError::TooOldResourceVersion { .. })
        ));
        assert_eq!(c.subscribe(PREFIX, Some(14)).unwrap().initial.len(), 1);
        c.trim_history(15);
        assert!(c.subscribe(PREFIX, Some(14)).is_err());
    }

    #[tokio::test]
    async fn live_watchers_get_new_changes_and_waiters_wake_up() {
        let c = cache(100);
        let mut sub = c.subscribe(PREFIX, None).unwrap();
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move { c.wait_for(11, Duration::from_secs(5)).await })
        };
        c.apply_change(put("b", 11));
        let ev = sub.live.recv().await.unwrap();
        assert_eq!(ev.kind, EventType::Added);
        assert_eq!(ev.revision, 11);
        waiter.await.unwrap().unwrap();
        assert!(matches!(
            c.wait_for(99, Duration::from_millis(200)).await,
            Err(StoreError::TooLargeResourceVersion {
                requested: 99,
                current: 11
            })
        ));
    }
}
