//! Shared informers: ONE watch and reflector store per kind, however many controllers read it.
//!
//! Controllers read objects from the [`Store`]s (never LIST per reconcile) and are triggered by
//! subscriber streams fed from the same watch, so a controller woken by an event always finds
//! at least that event in the store. Deletions are passed on too (with the last known object),
//! which kube-runtime's own shared streams do not do, and a relist wakes every object again,
//! also those that vanished while the watch was down.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use serde::de::DeserializeOwned;
use skiff_component::AbortOnDrop;
use tokio::sync::broadcast;

/// Events buffered per subscriber; a subscriber that falls further behind is re-sent the whole
/// store instead (level-triggered reconcilers lose nothing by that).
const BUFFER: usize = 1024;

/// What an informer's kind must be.
pub trait Kind:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}
impl<K> Kind for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// The read side of one kind's informer. Cheap to clone.
pub struct Informer<K: Kind> {
    store: Store<K>,
    events: broadcast::Sender<Arc<K>>,
    seen: Arc<AtomicU64>,
}

impl<K: Kind> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            events: self.events.clone(),
            seen: self.seen.clone(),
        }
    }
}

impl<K: Kind> Informer<K> {
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// The newest resourceVersion (skiff: etcd revision) this informer has applied to its store.
    /// Every write of this kind at or below it is visible in the store.
    pub fn seen_revision(&self) -> u64 {
        self.seen.load(Ordering::Acquire)
    }

    /// A trigger stream for a kube-runtime `Controller` (`for_stream`, `watches_stream`,
    /// `owns_stream`). Subscribe before [`Informers::start`] so nothing is missed.
    pub fn stream(&self) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
        let mut rx = self.events.subscribe();
        let store = self.store.clone();
        async_stream::stream! {
            loop {
                match rx.recv().await {
                    Ok(obj) => yield Ok((*obj).clone()),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        for obj in store.state() {
                            yield Ok((*obj).clone());
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    }
}

/// Parse a resourceVersion as the etcd revision skiff uses; `None` for any other apiserver.
pub fn revision_of<K: Resource>(obj: &K) -> Option<u64> {
    obj.meta().resource_version.as_deref()?.parse().ok()
}

type Starter = Box<dyn FnOnce() -> AbortOnDrop<()> + Send>;

/// Every informer the enabled controllers asked for. Created before the controllers, started
/// once they all subscribed.
pub struct Informers {
    client: kube::Client,
    kinds: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    starters: Mutex<Vec<Starter>>,
    ready: Mutex<Vec<futures::future::BoxFuture<'static, ()>>>,
}

impl Informers {
    pub fn new(client: kube::Client) -> Informers {
        Informers {
            client,
            kinds: Mutex::default(),
            starters: Mutex::default(),
            ready: Mutex::default(),
        }
    }

    /// The informer of `K` over all namespaces, created on first use.
    pub fn get<K: Kind>(&self) -> Informer<K> {
        let mut kinds = self.kinds.lock().expect("informers lock");
        if let Some(existing) = kinds.get(&TypeId::of::<K>()) {
            return existing
                .downcast_ref::<Informer<K>>()
                .expect("informer of its own type")
                .clone();
        }
        let (store, writer) = reflector::store::<K>();
        let (events, _) = broadcast::channel(BUFFER);
        let informer = Informer {
            store,
            events,
            seen: Arc::default(),
        };
        kinds.insert(TypeId::of::<K>(), Box::new(informer.clone()));
        let api = Api::<K>::all(self.client.clone());
        let run = informer.clone();
        self.starters
            .lock()
            .expect("informers lock")
            .push(Box::new(move || {
                AbortOnDrop::spawn(run_informer(api, writer, run))
            }));
        let store = informer.store();
        self.ready
            .lock()
            .expect("informers lock")
            .push(Box::pin(async move {
                let _ = store.wait_until_ready().await;
            }));
        informer
    }

    /// Start every informer asked for so far; they stop when the guards are dropped.
    pub fn start(&self) -> Vec<AbortOnDrop<()>> {
        let starters = std::mem::take(&mut *self.starters.lock().expect("informers lock"));
        starters.into_iter().map(|start| start()).collect()
    }

    /// Completes when every started informer has listed its kind once.
    pub async fn wait_ready(&self) {
        let ready = std::mem::take(&mut *self.ready.lock().expect("informers lock"));
        futures::future::join_all(ready).await;
    }
}

async fn run_informer<K: Kind>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    informer: Informer<K>,
) {
    let store = informer.store();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    futures::pin_mut!(stream);
    // Objects known before a relist: those missing afterwards were deleted meanwhile.
    let mut before_relist: HashMap<ObjectRef<K>, Arc<K>> = HashMap::new();
    // The newest revision of a list in progress: it counts once the store holds the list.
    let listed = AtomicU64::new(0);
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, kind = %K::kind(&()), "watch failed; retrying");
                continue;
            }
        };
        match event {
            watcher::Event::Apply(obj) | watcher::Event::Delete(obj) => {
                note_revision(&informer.seen, &obj);
                let _ = informer.events.send(Arc::new(obj));
            }
            watcher::Event::Init => {
                before_relist = store
                    .state()
                    .into_iter()
                    .map(|o| (ObjectRef::from_obj(o.as_ref()), o))
                    .collect();
            }
            watcher::Event::InitApply(obj) => note_revision(&listed, &obj),
            // The store now holds the new list: wake everything in it, and what vanished.
            watcher::Event::InitDone => {
                informer
                    .seen
                    .fetch_max(listed.swap(0, Ordering::AcqRel), Ordering::AcqRel);
                for obj in store.state() {
                    before_relist.remove(&ObjectRef::from_obj(obj.as_ref()));
                    let _ = informer.events.send(obj);
                }
                for (_, gone) in before_relist.drain() {
                    let _ = informer.events.send(gone);
                }
            }
        }
    }
}

fn note_revision<K: Resource>(seen: &AtomicU64, obj: &K) {
    if let Some(rv) = revision_of(obj) {
        seen.fetch_max(rv, Ordering::AcqRel);
    }
}
