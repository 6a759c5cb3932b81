//! ServiceAccount tokens: issued by the TokenRequest API (`serviceaccounts/token`) and accepted
//! as bearer tokens while the objects they are bound to live. As kube-apiserver's
//! `pkg/serviceaccount`: a valid signature is not enough; the ServiceAccount (and the pod or
//! Secret the token is bound to) must still exist with the uid the token names.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use super::jwt::{BoundRef, Claims, JwtError, KubernetesClaims, TokenKeys};
use super::TokenAuthenticator;
use crate::auth::user::{self, UserInfo};
use crate::object;
use crate::resource::ResourceInfo;
use crate::storage::{Store, WatchCache};

/// Extra user info keys Kubernetes sets for ServiceAccount tokens.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
pub const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// The key and audiences tokens are issued with.
pub struct ServiceAccountTokens {
    keys: TokenKeys,
    /// The audiences the API accepts, and that tokens get when a request names none
    /// (kube-apiserver's `--api-audiences`, which defaults to the issuer).
    api_audiences: Vec<String>,
    /// The shortest lifetime a TokenRequest may ask for: ten minutes, as in Kubernetes,
    /// unless lowered for tests.
    min_expiration_seconds: i64,
}

/// Kubernetes' floor on `TokenRequest.spec.expirationSeconds`.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;

impl ServiceAccountTokens {
    pub fn new(keys: TokenKeys) -> ServiceAccountTokens {
        let api_audiences = vec![keys.issuer().to_string()];
        ServiceAccountTokens {
            keys,
            api_audiences,
            min_expiration_seconds: MIN_EXPIRATION_SECONDS,
        }
    }

    /// Accept TokenRequests for lifetimes down to `seconds`, so tests can see tokens expire.
    pub fn with_min_expiration_for_testing(mut self, seconds: i64) -> ServiceAccountTokens {
        self.min_expiration_seconds = seconds;
        self
    }

    pub fn min_expiration_seconds(&self) -> i64 {
        self.min_expiration_seconds
    }

    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// A token for `subject`, valid from `now` (Unix seconds) for `expiration_seconds`.
    pub fn issue(
        &self,
        subject: KubernetesClaims,
        audiences: Vec<String>,
        expiration_seconds: i64,
        now: i64,
    ) -> Result<String, JwtError> {
        let claims = Claims {
            iss: self.keys.issuer().to_string(),
            sub: user::service_account_user(&subject.namespace, &subject.serviceaccount.name),
            aud: audiences,
            exp: now + expiration_seconds,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: subject,
        };
        self.keys.sign(&claims)
    }

    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, JwtError> {
        self.keys.verify(token, &self.api_audiences, now)
    }
}

/// A kind whose objects tokens are bound to: its watch cache and where its objects live.
pub struct BoundKind {
    pub info: &'static ResourceInfo,
    pub cache: Arc<WatchCache>,
}

/// Accepts ServiceAccount tokens whose bound objects still exist.
pub struct ServiceAccountAuthenticator {
    pub tokens: Arc<ServiceAccountTokens>,
    pub service_accounts: BoundKind,
    pub pods: BoundKind,
    pub secrets: BoundKind,
    /// For a consistent re-read when the caches do not (yet) hold a bound object.
    pub store: Store,
}

/// How long a token check waits for the caches to reach etcd's current revision.
const CACHE_CATCH_UP: Duration = Duration::from_secs(2);

/// Why a bound object no longer vouches for a token.
fn bound_object_valid(obj: Option<&Value>, bound: &BoundRef, now: &jiff::Timestamp) -> bool {
    let Some(obj) = obj else {
        return false;
    };
    if object::uid(obj) != bound.uid {
        return false;
    }
    // A pod stays valid through its graceful termination; past its deletion time, not.
    match obj
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    {
        Some(deletion) => deletion > *now,
        None => true,
    }
}

/// The user a token's verified claims name.
pub fn user_of(claims: &Claims) -> UserInfo {
    let k = &claims.kubernetes;
    let mut user = UserInfo {
        name: user::service_account_user(&k.namespace, &k.serviceaccount.name),
        uid: k.serviceaccount.uid.clone(),
        groups: user::service_account_groups(&k.namespace),
        ..Default::default()
    };
    if let Some(pod) = &k.pod {
        user.extra
            .insert(EXTRA_POD_NAME.into(), vec![pod.name.clone()]);
        user.extra
            .insert(EXTRA_POD_UID.into(), vec![pod.uid.clone()]);
    }
    if let Some(node) = &k.node {
        user.extra
            .insert(EXTRA_NODE_NAME.into(), vec![node.name.clone()]);
        user.extra
            .insert(EXTRA_NODE_UID.into(), vec![node.uid.clone()]);
    }
    user.extra.insert(
        EXTRA_CREDENTIAL_ID.into(),
        vec![format!("JTI={}", claims.jti)],
    );
    user
}

impl ServiceAccountAuthenticator {
    /// Whether every object the claims are bound to is present in the caches as named.
    fn bound_objects_valid(&self, claims: &KubernetesClaims, now: &jiff::Timestamp) -> bool {
        let ns = Some(claims.namespace.as_str());
        let check = |kind: &BoundKind, bound: &BoundRef| {
            let obj = kind.cache.get(&kind.info.key(ns, &bound.name));
            bound_object_valid(obj.as_deref(), bound, now)
        };
        check(&self.service_accounts, &claims.serviceaccount)
            && claims.pod.as_ref().is_none_or(|p| check(&self.pods, p))
            && claims
                .secret
                .as_ref()
                .is_none_or(|s| check(&self.secrets, s))
    }

    async fn authenticate_token(&self, token: &str) -> Option<UserInfo> {
        if !super::jwt::looks_like_jwt(token) {
            return None;
        }
        let now = jiff::Timestamp::now();
        let claims = match self.tokens.verify(token, now.as_second()) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "ServiceAccount token refused");
                return None;
            }
        };
        if !self.bound_objects_valid(&claims.kubernetes, &now) {
            // The caches may trail etcd (a ServiceAccount created a moment ago): read again
            // once they have caught up with etcd's current revision.
            let revision = self.store.current_revision().await.ok()?;
            for kind in [&self.service_accounts, &self.pods, &self.secrets] {
                kind.cache.wait_for(revision, CACHE_CATCH_UP).await.ok()?;
            }
            if !self.bound_objects_valid(&claims.kubernetes, &now) {
                tracing::debug!(subject = %claims.sub, "ServiceAccount token's bound objects are gone");
                return None;
            }
        }
        Some(user_of(&claims))
    }
}

impl TokenAuthenticator for ServiceAccountAuthenticator {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Option<UserInfo>> {
        Box::pin(self.authenticate_token(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bound(uid: &str) -> BoundRef {
        BoundRef {
            name: "web".into(),
            uid: uid.into(),
        }
    }

    #[test]
    fn a_bound_object_must_exist_with_the_uid_and_not_be_past_deletion() {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let pod = json!({"metadata": {"name": "web", "uid": "u1"}});
        assert!(bound_object_valid(Some(&pod), &bound("u1"), &now));
        assert!(!bound_object_valid(Some(&pod), &bound("u2"), &now));
        assert!(!bound_object_valid(None, &bound("u1"), &now));
        let terminating = json!({"metadata": {"name": "web", "uid": "u1",
            "deletionTimestamp": "2026-01-01T00:00:30Z"}});
        assert!(bound_object_valid(Some(&terminating), &bound("u1"), &now));
        let gone = json!({"metadata": {"name": "web", "uid": "u1",
            "deletionTimestamp": "2025-12-31T23:59:00Z"}});
        assert!(!bound_object_valid(Some(&gone), &bound("u1"), &now));
    }

    #[test]
    fn the_user_is_the_service_account_with_the_pod_in_extra() {
        let tokens = ServiceAccountTokens::new(
            TokenKeys::ephemeral(super::super::jwt::DEFAULT_ISSUER).unwrap(),
        );
        let subject = KubernetesClaims {
            namespace: "dev".into(),
            serviceaccount: BoundRef {
                name: "builder".into(),
                uid: "sa1".into(),
            },
            pod: Some(bound("p1")),
            secret: None,
            node: None,
        };
        let token = tokens
            .issue(subject, tokens.api_audiences().to_vec(), 600, 1000)
            .unwrap();
        let claims = tokens.verify(&token, 1200).unwrap();
        let user = user_of(&claims);
        assert_eq!(user.name, "system:serviceaccount:dev:builder");
        assert_eq!(user.uid, "sa1");
        assert!(user.in_group("system:serviceaccounts:dev"));
        assert_eq!(user.extra[EXTRA_POD_NAME], ["web"]);
        assert!(tokens.verify(&token, 1000 + 600 + 61).is_err());
    }
}
