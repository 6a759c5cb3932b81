//! ServiceAccount tokens for projected volumes, as the kubelet's token manager: requested
//! through the TokenRequest API bound to the pod, kept per (pod, ServiceAccount, audience,
//! lifetime), and replaced once 80% of a token's life has passed (or after 24 hours), so
//! the file a pod reads always holds a valid token.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::Api;

/// Which token a projected volume asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub namespace: String,
    pub service_account: String,
    pub pod_name: String,
    pub pod_uid: String,
    /// Empty: the apiserver's own audiences.
    pub audience: String,
    pub expiration_seconds: i64,
}

#[derive(Debug, Clone)]
struct Issued {
    token: String,
    issued: Timestamp,
    expires: Timestamp,
}

/// Whether a token issued at `issued` and expiring at `expires` should be replaced at `now`
/// (pure): past 80% of its life, or older than a day.
pub fn needs_refresh(issued: Timestamp, expires: Timestamp, now: Timestamp) -> bool {
    let life = expires.duration_since(issued);
    let age = now.duration_since(issued);
    age >= SignedDuration::from_secs(24 * 3600) || age.as_secs_f64() >= life.as_secs_f64() * 0.8
}

#[derive(Default)]
pub struct TokenManager {
    issued: Mutex<HashMap<TokenKey, Issued>>,
}

impl TokenManager {
    /// A valid token for `key`: the cached one, or a new one from the apiserver.
    pub async fn token(
        &self,
        client: &kube::Client,
        key: &TokenKey,
    ) -> Result<String, kube::Error> {
        let now = Timestamp::now();
        if let Some(cached) = self.issued.lock().expect("tokens lock").get(key) {
            if !needs_refresh(cached.issued, cached.expires, now) {
                return Ok(cached.token.clone());
            }
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: if key.audience.is_empty() {
                    Vec::new()
                } else {
                    vec![key.audience.clone()]
                },
                expiration_seconds: Some(key.expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(key.pod_name.clone()),
                    uid: Some(key.pod_uid.clone()),
                }),
            },
            ..Default::default()
        };
        let answer = Api::<ServiceAccount>::namespaced(client.clone(), &key.namespace)
            .create_token_request(&key.service_account, &PostParams::default(), &request)
            .await?;
        let Some(status) = answer.status else {
            return Err(kube::Error::Service(
                "the TokenRequest answer has no status".into(),
            ));
        };
        let expires = status.expiration_timestamp.0;
        self.issued.lock().expect("tokens lock").insert(
            key.clone(),
            Issued {
                token: status.token.clone(),
                issued: now,
                expires,
            },
        );
        Ok(status.token)
    }

    /// Forget the tokens of a pod that is gone.
    pub fn forget_pod(&self, pod_uid: &str) {
        self.issued
            .lock()
            .expect("tokens lock")
            .retain(|k, _| k.pod_uid != pod_uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_replaced_after_80_percent_of_their_life_or_a_day() {
        let issued: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let hour = issued + SignedDuration::from_secs(3600);
        assert!(!needs_refresh(
            issued,
            hour,
            issued + SignedDuration::from_secs(2000)
        ));
        assert!(needs_refresh(
            issued,
            hour,
            issued + SignedDuration::from_secs(2880)
        ));
        let year = issued + SignedDuration::from_secs(365 * 24 * 3600);
        assert!(!needs_refresh(
            issued,
            year,
            issued + SignedDuration::from_secs(3600)
        ));
        assert!(needs_refresh(
            issued,
            year,
            issued + SignedDuration::from_secs(24 * 3600)
        ));
    }
}
