//! The scheduling queue: an active queue (higher priority first, then FIFO), a back-off queue,
//! and the set of unschedulable pods that waits for a cluster event that could change the
//! answer. Time is passed in, so the queue is a plain data structure.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{pod_key, PodKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active { priority: i32, seq: u64 },
    Backoff { until: Instant },
    Unschedulable { since: Instant, until: Instant },
}

#[derive(Debug)]
struct Entry {
    pod: Arc<Pod>,
    attempts: u32,
    place: Place,
}

/// A pod handed out for one scheduling attempt.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    pub pod: Arc<Pod>,
    /// Failed attempts so far.
    pub attempts: u32,
}

#[derive(Debug)]
pub struct SchedulingQueue {
    initial_backoff: Duration,
    max_backoff: Duration,
    max_unschedulable: Duration,
    entries: HashMap<PodKey, Entry>,
    active: BTreeSet<(Reverse<i32>, u64, PodKey)>,
    backoff: BTreeSet<(Instant, PodKey)>,
    unschedulable: BTreeSet<(Instant, PodKey)>,
    seq: u64,
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// Whether an update could change a scheduling decision (status-only changes cannot).
pub fn scheduling_relevant_change(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
}

impl SchedulingQueue {
    pub fn new(
        initial_backoff: Duration,
        max_backoff: Duration,
        max_unschedulable: Duration,
    ) -> Self {
        SchedulingQueue {
            initial_backoff,
            max_backoff,
            max_unschedulable,
            entries: HashMap::new(),
            active: BTreeSet::new(),
            backoff: BTreeSet::new(),
            unschedulable: BTreeSet::new(),
            seq: 0,
        }
    }

    /// Back-off after `attempts` failures: initial × 2^(attempts−1), capped.
    pub fn backoff_for(&self, attempts: u32) -> Duration {
        if attempts == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1).min(30))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    fn unplace(&mut self, key: &str, place: Place) {
        match place {
            Place::Active { priority, seq } => {
                self.active
                    .remove(&(Reverse(priority), seq, key.to_string()));
            }
            Place::Backoff { until } => {
                self.backoff.remove(&(until, key.to_string()));
            }
            Place::Unschedulable { since, .. } => {
                self.unschedulable.remove(&(since, key.to_string()));
            }
        }
    }

    fn place(&mut self, key: &str, place: Place) {
        match place {
            Place::Active { priority, seq } => {
                self.active
                    .insert((Reverse(priority), seq, key.to_string()));
            }
            Place::Backoff { until } => {
                self.backoff.insert((until, key.to_string()));
            }
            Place::Unschedulable { since, .. } => {
                self.unschedulable.insert((since, key.to_string()));
            }
        }
        if let Some(e) = self.entries.get_mut(key) {
            e.place = place;
        }
    }

    fn active_place(&mut self, pod: &Pod) -> Place {
        self.seq += 1;
        Place::Active {
            priority: priority(pod),
            seq: self.seq,
        }
    }

    /// A pending pod was added or updated.
    pub fn add(&mut self, pod: Arc<Pod>, now: Instant) {
        let key = pod_key(&pod);
        let Some(entry) = self.entries.get_mut(&key) else {
            let place = self.active_place(&pod);
            self.entries.insert(
                key.clone(),
                Entry {
                    pod,
                    attempts: 0,
                    place,
                },
            );
            self.place(&key, place);
            return;
        };
        let relevant = scheduling_relevant_change(&entry.pod, &pod);
        let old_place = entry.place;
        let old_priority = priority(&entry.pod);
        entry.pod = pod.clone();
        match old_place {
            Place::Unschedulable { until, .. } if relevant => {
                self.unplace(&key, old_place);
                let place = if until <= now {
                    self.active_place(&pod)
                } else {
                    Place::Backoff { until }
                };
                self.place(&key, place);
            }
            Place::Active { .. } if old_priority != priority(&pod) => {
                self.unplace(&key, old_place);
                let place = self.active_place(&pod);
                self.place(&key, place);
            }
            _ => {}
        }
    }

    /// A pod that failed to bind goes back, after its back-off.
    pub fn add_backoff(&mut self, pod: Arc<Pod>, attempts: u32, now: Instant) {
        let key = pod_key(&pod);
        self.delete(&key);
        let until = now + self.backoff_for(attempts);
        self.entries.insert(
            key.clone(),
            Entry {
                pod,
                attempts,
                place: Place::Backoff { until },
            },
        );
        self.place(&key, Place::Backoff { until });
    }

    /// The pod was deleted, bound, or is no longer ours.
    pub fn delete(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.unplace(key, e.place);
        }
    }

    pub fn keys(&self) -> Vec<PodKey> {
        self.entries.keys().cloned().collect()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Take the next pod to schedule. It stays known to the queue (updates are absorbed) until
    /// `done` or `unschedulable`.
    pub fn pop(&mut self) -> Option<QueuedPod> {
        let (_, _, key) = self.active.pop_first()?;
        let e = self.entries.remove(&key)?;
        Some(QueuedPod {
            pod: e.pod,
            attempts: e.attempts,
        })
    }

    /// Scheduling failed: park the pod until a cluster event (or the max wait) moves it.
    pub fn unschedulable(&mut self, qp: QueuedPod, now: Instant) {
        let key = pod_key(&qp.pod);
        let attempts = qp.attempts + 1;
        let place = Place::Unschedulable {
            since: now,
            until: now + self.backoff_for(attempts),
        };
        self.entries.insert(
            key.clone(),
            Entry {
                pod: qp.pod,
                attempts,
                place,
            },
        );
        self.place(&key, place);
    }

    /// A cluster event that may make parked pods schedulable: each goes to the active queue, or
    /// to the back-off queue while its back-off lasts.
    pub fn move_all_unschedulable(&mut self, now: Instant) {
        let parked: Vec<(Instant, PodKey)> = std::mem::take(&mut self.unschedulable)
            .into_iter()
            .collect();
        for (_, key) in parked {
            let Some(e) = self.entries.get(&key) else {
                continue;
            };
            let Place::Unschedulable { until, .. } = e.place else {
                continue;
            };
            let pod = e.pod.clone();
            let place = if until <= now {
                self.active_place(&pod)
            } else {
                Place::Backoff { until }
            };
            self.place(&key, place);
        }
    }

    /// Move pods whose back-off ended, and pods parked longer than the maximum, to active.
    pub fn flush(&mut self, now: Instant) {
        while let Some((until, key)) = self.backoff.first().cloned() {
            if until > now {
                break;
            }
            self.backoff.pop_first();
            if let Some(pod) = self.entries.get(&key).map(|e| e.pod.clone()) {
                let place = self.active_place(&pod);
                self.place(&key, place);
            }
        }
        while let Some((since, key)) = self.unschedulable.first().cloned() {
            if since + self.max_unschedulable > now {
                break;
            }
            self.unschedulable.pop_first();
            if let Some(pod) = self.entries.get(&key).map(|e| e.pod.clone()) {
                let place = self.active_place(&pod);
                self.place(&key, place);
            }
        }
    }

    /// When `flush` next has something to do.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let b = self.backoff.first().map(|(t, _)| *t);
        let u = self
            .unschedulable
            .first()
            .map(|(t, _)| *t + self.max_unschedulable);
        match (b, u) {
            (Some(b), Some(u)) => Some(b.min(u)),
            (b, u) => b.or(u),
        }
    }

    /// (active, backoff, unschedulable) sizes.
    pub fn lens(&self) -> (usize, usize, usize) {
        (
            self.active.len(),
            self.backoff.len(),
            self.unschedulable.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, prio: i32) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
                "spec": {"priority": prio, "containers": [{"name": "c", "image": "i"}]}}))
            .unwrap(),
        )
    }

    fn queue() -> SchedulingQueue {
        SchedulingQueue::new(
            Duration::from_secs(1),
            Duration::from_secs(10),
            Duration::from_secs(300),
        )
    }

    #[test]
    fn pops_by_priority_then_fifo() {
        let mut q = queue();
        let now = Instant::now();
        q.add(pod("a", 0), now);
        q.add(pod("b", 10), now);
        q.add(pod("c", 0), now);
        let order: Vec<String> = std::iter::from_fn(|| q.pop())
            .map(|p| p.pod.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(order, ["b", "a", "c"]);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let q = queue();
        assert_eq!(q.backoff_for(1), Duration::from_secs(1));
        assert_eq!(q.backoff_for(3), Duration::from_secs(4));
        assert_eq!(q.backoff_for(9), Duration::from_secs(10));
    }

    #[test]
    fn unschedulable_pods_wait_for_an_event_and_their_backoff() {
        let mut q = queue();
        let t0 = Instant::now();
        q.add(pod("a", 0), t0);
        let p = q.pop().unwrap();
        q.unschedulable(p, t0);
        assert!(q.pop().is_none());
        q.flush(t0 + Duration::from_secs(5));
        assert!(q.pop().is_none(), "no event yet: stays parked");
        // An event during the back-off moves it to the back-off queue ...
        q.move_all_unschedulable(t0 + Duration::from_millis(500));
        assert!(q.pop().is_none());
        assert_eq!(q.next_wakeup(), Some(t0 + Duration::from_secs(1)));
        q.flush(t0 + Duration::from_secs(1));
        let p = q.pop().unwrap();
        assert_eq!(p.attempts, 1);
        // ... and an event after the back-off makes it active at once.
        q.unschedulable(p, t0 + Duration::from_secs(1));
        q.move_all_unschedulable(t0 + Duration::from_secs(10));
        assert_eq!(q.pop().unwrap().attempts, 2);
    }

    #[test]
    fn parked_pods_retry_after_the_maximum_wait_and_on_spec_changes() {
        let mut q = queue();
        let t0 = Instant::now();
        q.add(pod("a", 0), t0);
        let p = q.pop().unwrap();
        q.unschedulable(p, t0);
        assert_eq!(q.next_wakeup(), Some(t0 + Duration::from_secs(300)));
        q.flush(t0 + Duration::from_secs(300));
        let p = q.pop().unwrap();
        q.unschedulable(p, t0);
        // A status-only update does not move it; a spec change does.
        let mut same = (*pod("a", 0)).clone();
        same.status = Some(Default::default());
        q.add(Arc::new(same), t0 + Duration::from_secs(20));
        assert!(q.pop().is_none());
        q.add(pod("a", 5), t0 + Duration::from_secs(20));
        assert!(q.pop().is_some());
        q.delete("default/a");
        assert_eq!(q.lens(), (0, 0, 0));
    }
}
