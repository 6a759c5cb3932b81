//! Leader election through a `coordination.k8s.io/v1` Lease with client-go's semantics.
//!
//! A candidate takes the Lease when nobody holds it, or when the holder has not changed the
//! record (holder, renewTime, transitions, duration) for `leaseDurationSeconds` as measured on
//! the candidate's OWN clock since it last saw the record change. The server's `renewTime` is
//! never compared with the local clock, so clock skew between hosts cannot cause two leaders.
//! The leader renews every retry period and steps down when it could not renew for the renew
//! deadline. On shutdown it releases the Lease (no holder, leaseDurationSeconds=1, as
//! client-go's ReleaseOnCancel) so that another candidate takes over at once. Every write is a
//! compare-and-swap on resourceVersion.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

#[derive(Clone, Debug)]
pub struct LeaderElectionConfig {
    pub lease_name: String,
    pub lease_namespace: String,
    /// Unique per candidate (see [`crate::identity::instance_identity`]).
    pub identity: String,
    /// How long a non-leader waits after the last observed change before taking the Lease.
    pub lease_duration: Duration,
    /// How long the leader keeps retrying a failing renewal before it steps down.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period, in kube-system.
    pub fn new(lease_name: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaderElectionConfig {
            lease_name: lease_name.into(),
            lease_namespace: "kube-system".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Durations derived from the lease duration alone in client-go's proportions
    /// (renew deadline 2/3, retry period 1/5 of it).
    pub fn with_lease_duration(mut self, lease_duration: Duration) -> Self {
        self.lease_duration = lease_duration;
        self.renew_deadline = lease_duration * 2 / 3;
        self.retry_period = lease_duration / 5;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lease request failed: {0}")]
    Api(#[from] kube::Error),
}

/// The part of a Lease that leader election reads and writes (client-go's LeaderElectionRecord).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderRecord {
    pub holder: String,
    pub lease_duration_seconds: i32,
    pub acquire_time: Option<Timestamp>,
    pub renew_time: Option<Timestamp>,
    pub transitions: i32,
}

impl LeaderRecord {
    pub fn from_spec(spec: Option<&LeaseSpec>) -> LeaderRecord {
        let Some(s) = spec else {
            return LeaderRecord::default();
        };
        LeaderRecord {
            holder: s.holder_identity.clone().unwrap_or_default(),
            lease_duration_seconds: s.lease_duration_seconds.unwrap_or(0),
            acquire_time: s.acquire_time.as_ref().map(|t| t.0),
            renew_time: s.renew_time.as_ref().map(|t| t.0),
            transitions: s.lease_transitions.unwrap_or(0),
        }
    }

    pub fn to_spec(&self) -> LeaseSpec {
        LeaseSpec {
            // An empty holder is written as no holder, so a released Lease reads as free.
            holder_identity: (!self.holder.is_empty()).then(|| self.holder.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.map(MicroTime),
            renew_time: self.renew_time.map(MicroTime),
            lease_transitions: Some(self.transitions),
            ..Default::default()
        }
    }
}

/// A record as this candidate saw it, and when (on the local clock) it last saw it change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub record: LeaderRecord,
    pub changed_at: Instant,
}

/// What a candidate does after reading the Lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// There is no Lease: create it, holding it.
    Create,
    /// Free or expired: take it (a new term, so transitions increase).
    Acquire,
    /// We hold it: renew.
    Renew,
    /// Somebody else holds a valid Lease.
    Wait,
}

/// The pure decision. `observed` is `None` when the Lease does not exist.
pub fn decide(observed: Option<&Observed>, now: Instant, me: &str) -> Action {
    let Some(o) = observed else {
        return Action::Create;
    };
    if o.record.holder == me {
        return Action::Renew;
    }
    if o.record.holder.is_empty() {
        return Action::Acquire;
    }
    let valid_for = Duration::from_secs(o.record.lease_duration_seconds.max(0) as u64);
    if now.saturating_duration_since(o.changed_at) >= valid_for {
        Action::Acquire
    } else {
        Action::Wait
    }
}

/// Fold a freshly read record into the observation: the clock restarts only when it changed.
pub fn observe(previous: Option<Observed>, record: LeaderRecord, now: Instant) -> Observed {
    match previous {
        Some(o) if o.record == record => o,
        _ => Observed {
            record,
            changed_at: now,
        },
    }
}

/// The record to write for `action` (Create, Acquire or Renew) by `me`.
pub fn next_record(
    action: Action,
    old: &LeaderRecord,
    me: &str,
    lease_duration: Duration,
    now: Timestamp,
) -> LeaderRecord {
    let renewing = action == Action::Renew;
    LeaderRecord {
        holder: me.to_string(),
        lease_duration_seconds: lease_seconds(lease_duration),
        acquire_time: if renewing {
            old.acquire_time.or(Some(now))
        } else {
            Some(now)
        },
        renew_time: Some(now),
        transitions: match action {
            Action::Create => 0,
            Action::Renew => old.transitions,
            _ => old.transitions + 1,
        },
    }
}

fn lease_seconds(d: Duration) -> i32 {
    d.as_secs_f64().ceil().max(1.0) as i32
}

pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaderElectionConfig,
    observed: Option<Observed>,
    leading: bool,
}

impl LeaderElector {
    pub fn new(client: kube::Client, cfg: LeaderElectionConfig) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &cfg.lease_namespace),
            cfg,
            observed: None,
            leading: false,
        }
    }

    pub fn config(&self) -> &LeaderElectionConfig {
        &self.cfg
    }

    /// Whether the last attempt left us holding the Lease.
    pub fn is_leader(&self) -> bool {
        self.leading
    }

    /// One attempt to take or renew the Lease. `Ok(true)`: we hold it now.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let result = self.attempt().await;
        self.leading = matches!(result, Ok(true));
        result
    }

    async fn attempt(&mut self) -> Result<bool, LeaderError> {
        let current = self.api.get_opt(&self.cfg.lease_name).await?;
        let now = Instant::now();
        if let Some(lease) = &current {
            let record = LeaderRecord::from_spec(lease.spec.as_ref());
            self.observed = Some(observe(self.observed.take(), record, now));
        } else {
            self.observed = None;
        }
        let action = decide(self.observed.as_ref(), now, &self.cfg.identity);
        if action == Action::Wait {
            return Ok(false);
        }
        let old = self
            .observed
            .as_ref()
            .map(|o| o.record.clone())
            .unwrap_or_default();
        let record = next_record(
            action,
            &old,
            &self.cfg.identity,
            self.cfg.lease_duration,
            Timestamp::now(),
        );
        let written = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.lease_name.clone()),
                        namespace: Some(self.cfg.lease_namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(record.to_spec()),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                lease.spec = Some(merge_spec(lease.spec.take(), &record));
                self.api
                    .replace(&self.cfg.lease_name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(lease) => {
                let record = LeaderRecord::from_spec(lease.spec.as_ref());
                self.observed = Some(Observed {
                    record,
                    changed_at: Instant::now(),
                });
                Ok(true)
            }
            // Somebody else wrote first (create raced, or resourceVersion moved on).
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Wait until we hold the Lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = %self.cfg.identity, lease = %self.cfg.lease_name, "acquired the lease");
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.cfg.lease_name, "leader election")
                }
            }
            tokio::time::sleep(self.cfg.retry_period).await;
        }
    }

    /// Keep renewing; return when the Lease was taken by another candidate or could not be
    /// renewed within the renew deadline.
    pub async fn renew_until_lost(&mut self) {
        let mut last_renew = Instant::now();
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renew = Instant::now(),
                Ok(false) => {
                    tracing::warn!(identity = %self.cfg.identity, lease = %self.cfg.lease_name, "the lease was taken by another candidate");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.cfg.lease_name, "renewing the lease")
                }
            }
            if last_renew.elapsed() >= self.cfg.renew_deadline {
                self.leading = false;
                tracing::warn!(identity = %self.cfg.identity, lease = %self.cfg.lease_name, "could not renew the lease in time");
                return;
            }
        }
    }

    /// Give the Lease up so that another candidate takes it at once. Only the holder releases.
    pub async fn release(&mut self) {
        let lease = match self.api.get_opt(&self.cfg.lease_name).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reading the lease to release it");
                return;
            }
        };
        let record = LeaderRecord::from_spec(lease.spec.as_ref());
        if record.holder != self.cfg.identity {
            return;
        }
        let now = Timestamp::now();
        let released = LeaderRecord {
            holder: String::new(),
            lease_duration_seconds: 1,
            acquire_time: Some(now),
            renew_time: Some(now),
            transitions: record.transitions,
        };
        let mut lease = lease;
        lease.spec = Some(merge_spec(lease.spec.take(), &released));
        match self
            .api
            .replace(&self.cfg.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                tracing::info!(identity = %self.cfg.identity, lease = %self.cfg.lease_name, "released the lease")
            }
            Err(e) => tracing::warn!(error = %e, "releasing the lease"),
        }
        self.leading = false;
    }
}

/// The record's fields written over an existing spec (fields leader election does not own,
/// such as preferredHolder or strategy, are kept).
fn merge_spec(old: Option<LeaseSpec>, record: &LeaderRecord) -> LeaseSpec {
    let new = record.to_spec();
    LeaseSpec {
        holder_identity: new.holder_identity,
        lease_duration_seconds: new.lease_duration_seconds,
        acquire_time: new.acquire_time,
        renew_time: new.renew_time,
        lease_transitions: new.lease_transitions,
        ..old.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, secs: i32, at: Instant) -> Observed {
        Observed {
            record: LeaderRecord {
                holder: holder.into(),
                lease_duration_seconds: secs,
                transitions: 3,
                ..Default::default()
            },
            changed_at: at,
        }
    }

    #[test]
    fn the_lease_is_created_taken_renewed_or_waited_for() {
        let t0 = Instant::now();
        assert_eq!(decide(None, t0, "a"), Action::Create);
        assert_eq!(decide(Some(&held_by("a", 15, t0)), t0, "a"), Action::Renew);
        assert_eq!(decide(Some(&held_by("", 15, t0)), t0, "a"), Action::Acquire);
        let later = t0 + Duration::from_secs(14);
        assert_eq!(
            decide(Some(&held_by("b", 15, t0)), later, "a"),
            Action::Wait
        );
        let expired = t0 + Duration::from_secs(15);
        assert_eq!(
            decide(Some(&held_by("b", 15, t0)), expired, "a"),
            Action::Acquire
        );
    }

    #[test]
    fn expiry_ignores_the_servers_renew_time() {
        // A holder whose clock runs an hour behind: its renewTime looks ancient, but the record
        // just changed, so the lease is valid.
        let t0 = Instant::now();
        let mut o = held_by("b", 15, t0);
        o.record.renew_time =
            Some(Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_hours(1));
        assert_eq!(
            decide(Some(&o), t0 + Duration::from_secs(1), "a"),
            Action::Wait
        );
    }

    #[test]
    fn the_clock_restarts_only_when_the_record_changes() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        let first = observe(None, held_by("b", 15, t0).record, t0);
        let same = observe(Some(first.clone()), held_by("b", 15, t0).record, t1);
        assert_eq!(same.changed_at, t0);
        let mut renewed = held_by("b", 15, t0).record;
        renewed.renew_time = Some(Timestamp::now());
        let changed = observe(Some(same), renewed, t1);
        assert_eq!(changed.changed_at, t1);
    }

    #[test]
    fn transitions_count_new_terms_only() {
        let now = Timestamp::now();
        let old = held_by("b", 15, Instant::now()).record;
        let d = Duration::from_millis(1500);
        let taken = next_record(Action::Acquire, &old, "a", d, now);
        assert_eq!((taken.transitions, taken.lease_duration_seconds), (4, 2));
        assert_eq!(taken.acquire_time, Some(now));
        let renewed = next_record(Action::Renew, &taken, "a", d, now);
        assert_eq!(renewed.transitions, 4);
        let created = next_record(Action::Create, &LeaderRecord::default(), "a", d, now);
        assert_eq!(created.transitions, 0);
    }

    #[test]
    fn a_released_record_has_no_holder() {
        let r = LeaderRecord {
            lease_duration_seconds: 1,
            ..Default::default()
        };
        assert_eq!(r.to_spec().holder_identity, None);
        assert_eq!(LeaderRecord::from_spec(Some(&r.to_spec())), r);
    }
}
