//! Expectations: what a controller wrote and must see in its (eventually consistent) store
//! before it decides again, so that a stale store never makes it create or delete twice.
//! Kubernetes' ControllerExpectations in spirit: a reconcile whose expectations are not met
//! waits for the watch to catch up (or for the expectations to expire).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;

use crate::informers::{revision_of, Informer, Kind};

/// Expectations older than this are dropped (a watch event may have been lost).
pub const EXPECTATION_TTL: Duration = Duration::from_secs(30);

/// One thing a controller waits to see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pending {
    /// A create or update answered with this resourceVersion: the informer must have applied
    /// at least this revision.
    Revision(u64),
    /// A delete: the object (this uid) must be gone from the store or terminating.
    Gone {
        namespace: Option<String>,
        name: String,
        uid: Option<String>,
    },
}

/// How an object currently looks in the store, for [`is_met`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    Absent,
    Present { uid: Option<String>, deleting: bool },
}

/// The pure rule: is `pending` satisfied, given the informer's revision and the stored object
/// (for deletes)?
pub fn is_met(pending: &Pending, seen_revision: u64, stored: impl FnOnce() -> Stored) -> bool {
    match pending {
        Pending::Revision(rv) => seen_revision >= *rv,
        Pending::Gone { uid, .. } => match stored() {
            Stored::Absent => true,
            Stored::Present {
                uid: current,
                deleting,
            } => deleting || current != *uid,
        },
    }
}

/// Expectations of one controller on one kind of object, per owner (`namespace/name`).
pub struct Expectations<K: Kind> {
    pending: Mutex<HashMap<String, Vec<(Pending, Instant)>>>,
    _kind: std::marker::PhantomData<fn() -> K>,
}

impl<K: Kind> Default for Expectations<K> {
    fn default() -> Self {
        Expectations {
            pending: Mutex::default(),
            _kind: std::marker::PhantomData,
        }
    }
}

/// The key expectations are filed under.
pub fn owner_key<O: Resource>(owner: &O) -> String {
    let meta = owner.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

impl<K: Kind> Expectations<K> {
    fn add(&self, owner: &str, pending: Pending) {
        self.pending
            .lock()
            .expect("expectations lock")
            .entry(owner.to_string())
            .or_default()
            .push((pending, Instant::now()));
    }

    /// `written` is what the apiserver answered to a create, update or patch.
    pub fn wrote(&self, owner: &str, written: &K) {
        if let Some(rv) = revision_of(written) {
            self.add(owner, Pending::Revision(rv));
        }
    }

    /// `deleted` was deleted (or its deletion requested).
    pub fn deleted(&self, owner: &str, deleted: &K) {
        let meta = deleted.meta();
        self.add(
            owner,
            Pending::Gone {
                namespace: meta.namespace.clone(),
                name: meta.name.clone().unwrap_or_default(),
                uid: meta.uid.clone(),
            },
        );
    }

    /// Whether the store shows everything `owner` expects; met and expired entries are dropped.
    pub fn satisfied(&self, owner: &str, informer: &Informer<K>) -> bool {
        let seen = informer.seen_revision();
        let store = informer.store();
        let mut all = self.pending.lock().expect("expectations lock");
        let Some(list) = all.get_mut(owner) else {
            return true;
        };
        list.retain(|(p, since)| {
            since.elapsed() < EXPECTATION_TTL && !is_met(p, seen, || stored(&store, p))
        });
        let done = list.is_empty();
        if done {
            all.remove(owner);
        }
        done
    }

    /// The owner is gone: nothing to wait for.
    pub fn forget(&self, owner: &str) {
        self.pending
            .lock()
            .expect("expectations lock")
            .remove(owner);
    }
}

fn stored<K: Kind>(store: &Store<K>, pending: &Pending) -> Stored {
    let Pending::Gone {
        namespace, name, ..
    } = pending
    else {
        return Stored::Absent;
    };
    let mut key = ObjectRef::<K>::new(name);
    if let Some(ns) = namespace {
        key = key.within(ns);
    }
    match store.get(&key) {
        None => Stored::Absent,
        Some(obj) => Stored::Present {
            uid: obj.meta().uid.clone(),
            deleting: obj.meta().deletion_timestamp.is_some(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_met_once_the_informer_caught_up() {
        let p = Pending::Revision(10);
        assert!(!is_met(&p, 9, || Stored::Absent));
        assert!(is_met(&p, 10, || Stored::Absent));
    }

    #[test]
    fn deletes_are_met_when_gone_terminating_or_replaced() {
        let p = Pending::Gone {
            namespace: Some("d".into()),
            name: "a".into(),
            uid: Some("u1".into()),
        };
        let present = |uid: &str, deleting| Stored::Present {
            uid: Some(uid.into()),
            deleting,
        };
        assert!(is_met(&p, 0, || Stored::Absent));
        assert!(!is_met(&p, 0, || present("u1", false)));
        assert!(is_met(&p, 0, || present("u1", true)));
        assert!(is_met(&p, 0, || present("u2", false)));
    }
}
