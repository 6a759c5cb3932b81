//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's leaderelection
//! package does it: the holder renews `renewTime`; anyone may take the lease once it has not
//! been renewed for `leaseDurationSeconds`. Writes are compare-and-swap on resourceVersion.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};

use crate::util::{Error, Result};

pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    retry_period: Duration,
}

/// What the candidate should do with the lease it read.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// It is free or expired: take it (a new term, so transitions increase).
    Take,
    /// Somebody else holds it.
    Wait,
}

pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Take;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Take;
    }
    let duration = SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(15) as i64);
    match spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) {
        Some(t) if t.0 + duration > now => Decision::Wait,
        _ => Decision::Take,
    }
}

impl LeaderElector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
    ) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration,
            retry_period: lease_duration / 5,
        }
    }

    /// One attempt to take or renew the lease; true when we hold it afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        let now = Timestamp::now();
        let existing = self.api.get_opt(&self.name).await?;
        let decision = decide(
            existing.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        );
        let micro = MicroTime(now);
        match (existing, decision) {
            (_, Decision::Wait) => Ok(false),
            (None, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(self.lease_duration.as_secs() as i32),
                        acquire_time: Some(micro.clone()),
                        renew_time: Some(micro),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(Error::Kube(e)),
                }
            }
            (Some(mut lease), decision) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                if decision == Decision::Take {
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    spec.acquire_time = Some(micro.clone());
                }
                spec.holder_identity = Some(self.identity.clone());
                spec.lease_duration_seconds = Some(self.lease_duration.as_secs() as i32);
                spec.renew_time = Some(micro);
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(Error::Kube(e)),
                }
            }
        }
    }

    /// Wait until this candidate holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(self.retry_period).await;
        }
    }

    /// Keep renewing; returns when the lease could not be renewed in time (leadership lost).
    pub async fn hold(&self) {
        let mut last_renewed = tokio::time::Instant::now();
        // Give up a little before others may take the lease, as client-go's renewDeadline does.
        let deadline = self.lease_duration * 2 / 3;
        loop {
            tokio::time::sleep(self.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, "renewing the leader lease failed"),
            }
            if last_renewed.elapsed() > deadline {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                Timestamp::now() - SignedDuration::from_secs(renewed_secs_ago),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn leases_are_taken_renewed_or_waited_on() {
        let now = Timestamp::now();
        assert_eq!(decide(None, "me", now), Decision::Take);
        assert_eq!(decide(Some(&spec("me", 1)), "me", now), Decision::Renew);
        assert_eq!(decide(Some(&spec("other", 1)), "me", now), Decision::Wait);
        assert_eq!(decide(Some(&spec("other", 60)), "me", now), Decision::Take);
        assert_eq!(decide(Some(&spec("", 1)), "me", now), Decision::Take);
    }
}
