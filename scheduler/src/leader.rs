//! Leader election through a `coordination.k8s.io/v1` Lease, in the manner of client-go's
//! leaderelection: take the lease when it is free, ours, or has not been renewed for its
//! duration (measured on our own clock from when we last saw it change), renew it every retry
//! period, and step down when renewals fail for the renew deadline.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;

#[derive(Clone, Debug)]
pub struct LeaderElectionConfig {
    pub lease_name: String,
    pub lease_namespace: String,
    /// Unique per replica.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    pub fn new(identity: impl Into<String>) -> Self {
        LeaderElectionConfig {
            lease_name: "skiff-scheduler".into(),
            lease_namespace: "kube-system".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lease request failed: {0}")]
    Api(#[from] kube::Error),
}

/// Whether `me` may take or keep the lease, given how long its record has stayed unchanged.
pub fn can_acquire(spec: Option<&LeaseSpec>, me: &str, unchanged_for: Duration) -> bool {
    let Some(spec) = spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == me {
        return true;
    }
    let secs = spec.lease_duration_seconds.unwrap_or(15).max(0) as u64;
    unchanged_for >= Duration::from_secs(secs)
}

fn lease_seconds(d: Duration) -> i32 {
    d.as_secs_f64().ceil().max(1.0) as i32
}

fn record_key(spec: Option<&LeaseSpec>) -> String {
    let Some(s) = spec else { return String::new() };
    format!(
        "{}|{:?}|{:?}",
        s.holder_identity.as_deref().unwrap_or(""),
        s.renew_time.as_ref().map(|t| t.0),
        s.lease_duration_seconds
    )
}

pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaderElectionConfig,
    observed: Option<(String, Instant)>,
}

impl LeaderElector {
    pub fn new(client: Client, cfg: LeaderElectionConfig) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &cfg.lease_namespace),
            cfg,
            observed: None,
        }
    }

    fn spec_for_me(&self, old: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let me = &self.cfg.identity;
        let was_mine = old.and_then(|s| s.holder_identity.as_deref()) == Some(me.as_str());
        let transitions = old.and_then(|s| s.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(me.clone()),
            lease_duration_seconds: Some(lease_seconds(self.cfg.lease_duration)),
            acquire_time: if was_mine {
                old.and_then(|s| s.acquire_time.clone())
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(if was_mine || old.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..Default::default()
        }
    }

    /// One attempt to take or renew the lease. `Ok(true)`: we hold it now.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let now = Instant::now();
        let current = match self.api.get_opt(&self.cfg.lease_name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.lease_name.clone()),
                        namespace: Some(self.cfg.lease_namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.spec_for_me(None)),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(l) => {
                        self.observed = Some((record_key(l.spec.as_ref()), now));
                        Ok(true)
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e.into()),
                };
            }
            Some(l) => l,
        };
        let key = record_key(current.spec.as_ref());
        let since = match &self.observed {
            Some((k, at)) if *k == key => *at,
            _ => {
                self.observed = Some((key, now));
                now
            }
        };
        if !can_acquire(
            current.spec.as_ref(),
            &self.cfg.identity,
            now.duration_since(since),
        ) {
            return Ok(false);
        }
        let mut next = current.clone();
        next.spec = Some(self.spec_for_me(current.spec.as_ref()));
        match self
            .api
            .replace(&self.cfg.lease_name, &PostParams::default(), &next)
            .await
        {
            Ok(l) => {
                self.observed = Some((record_key(l.spec.as_ref()), now));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Wait until we hold the lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = %self.cfg.identity, lease = %self.cfg.lease_name, "acquired the lease");
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(self.cfg.retry_period).await;
        }
    }

    /// Keep renewing; return when the lease could not be renewed within the renew deadline.
    pub async fn renew_until_lost(&mut self) {
        let mut last_renew = Instant::now();
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renew = Instant::now(),
                Ok(false) => {
                    tracing::warn!(identity = %self.cfg.identity, "the lease was taken by another replica");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "renewing the lease"),
            }
            if last_renew.elapsed() >= self.cfg.renew_deadline {
                tracing::warn!(identity = %self.cfg.identity, "could not renew the lease in time");
                return;
            }
        }
    }

    /// Give the lease up so another replica can take it at once.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.lease_name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        if let Err(e) = self
            .api
            .replace(&self.cfg.lease_name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(error = %e, "releasing the lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(secs),
            ..Default::default()
        }
    }

    #[test]
    fn lease_is_taken_when_free_ours_or_expired() {
        assert!(can_acquire(None, "a", Duration::ZERO));
        assert!(can_acquire(
            Some(&LeaseSpec::default()),
            "a",
            Duration::ZERO
        ));
        assert!(can_acquire(Some(&held_by("a", 15)), "a", Duration::ZERO));
        assert!(!can_acquire(
            Some(&held_by("b", 15)),
            "a",
            Duration::from_secs(14)
        ));
        assert!(can_acquire(
            Some(&held_by("b", 15)),
            "a",
            Duration::from_secs(15)
        ));
    }

    #[test]
    fn lease_seconds_round_up() {
        assert_eq!(lease_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(lease_seconds(Duration::from_millis(10)), 1);
    }
}
