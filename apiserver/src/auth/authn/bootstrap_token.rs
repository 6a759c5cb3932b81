//! Bootstrap tokens, for nodes joining: `<id>.<secret>` (6 and 16 characters of `[a-z0-9]`)
//! matching a `kube-system` Secret `bootstrap-token-<id>` of type
//! `bootstrap.kubernetes.io/token` with `usage-bootstrap-authentication: "true"` and no past
//! `expiration`. The user is `system:bootstrap:<id>` in `system:bootstrappers` and the
//! Secret's `auth-extra-groups`, as Kubernetes' bootstrap token authenticator has it.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures::future::BoxFuture;
use serde_json::Value;

use super::TokenAuthenticator;
use crate::auth::user::{UserInfo, BOOTSTRAPPERS};
use crate::resource::ResourceInfo;
use crate::storage::WatchCache;

pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
pub const SECRET_PREFIX: &str = "bootstrap-token-";
const NAMESPACE: &str = "kube-system";

/// `(id, secret)` of a well-formed bootstrap token (pure).
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

fn data(secret: &Value, key: &str) -> Option<String> {
    let b64 = secret.pointer(&format!("/data/{key}"))?.as_str()?;
    String::from_utf8(STANDARD.decode(b64).ok()?).ok()
}

/// The user `token` authenticates as against its Secret, at `now` (pure).
pub fn user_for(
    secret: &Value,
    id: &str,
    token_secret: &str,
    now: jiff::Timestamp,
) -> Option<UserInfo> {
    if secret["type"].as_str() != Some(SECRET_TYPE)
        || !secret
            .pointer("/metadata/deletionTimestamp")
            .is_none_or(Value::is_null)
        || data(secret, "token-id").as_deref() != Some(id)
        || data(secret, "usage-bootstrap-authentication").as_deref() != Some("true")
    {
        return None;
    }
    let stored = data(secret, "token-secret")?;
    // Compared in constant time: the secret half is what a guesser does not know.
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        stored.as_bytes(),
        token_secret.as_bytes(),
    )) {
        return None;
    }
    if let Some(expiration) = data(secret, "expiration") {
        match expiration.parse::<jiff::Timestamp>() {
            Ok(at) if at > now => {}
            _ => return None,
        }
    }
    let mut groups = vec![BOOTSTRAPPERS.to_string()];
    for g in data(secret, "auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        // Only bootstrappers' subgroups, so a Secret cannot make its token an admin.
        if g.starts_with(&format!("{BOOTSTRAPPERS}:")) && !groups.iter().any(|x| x == g) {
            groups.push(g.to_string());
        }
    }
    Some(UserInfo::new(format!("system:bootstrap:{id}"), groups).authenticated())
}

pub struct BootstrapTokenAuthenticator {
    pub secrets: Arc<WatchCache>,
    pub secret_info: &'static ResourceInfo,
}

impl TokenAuthenticator for BootstrapTokenAuthenticator {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Option<UserInfo>> {
        Box::pin(async move {
            let (id, token_secret) = parse(token)?;
            let key = self
                .secret_info
                .key(Some(NAMESPACE), &format!("{SECRET_PREFIX}{id}"));
            let secret = self.secrets.get(&key)?;
            user_for(&secret, id, token_secret, jiff::Timestamp::now())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(extra: Value) -> Value {
        let b = |s: &str| STANDARD.encode(s);
        let mut data = json!({
            "token-id": b("abcdef"), "token-secret": b("0123456789abcdef"),
            "usage-bootstrap-authentication": b("true"),
            "auth-extra-groups": b("system:bootstrappers:kubeadm:default-node-token,system:masters"),
        });
        for (k, v) in extra.as_object().unwrap() {
            data[k] = json!(b(v.as_str().unwrap()));
        }
        json!({"type": SECRET_TYPE, "metadata": {"name": "bootstrap-token-abcdef"}, "data": data})
    }

    #[test]
    fn tokens_parse_and_authenticate_until_they_expire() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(parse("ABCDEF.0123456789abcdef"), None);
        assert_eq!(parse("abcdef.0123"), None);
        let now: jiff::Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let user = user_for(&secret(json!({})), "abcdef", "0123456789abcdef", now).unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:kubeadm:default-node-token",
                "system:authenticated"
            ],
            "system:masters is not a bootstrappers' group"
        );
        assert!(user_for(&secret(json!({})), "abcdef", "0123456789abcdee", now).is_none());
        let expired = secret(json!({"expiration": "2026-05-01T00:00:00Z"}));
        assert!(user_for(&expired, "abcdef", "0123456789abcdef", now).is_none());
        let unusable = secret(json!({"usage-bootstrap-authentication": "false"}));
        assert!(user_for(&unusable, "abcdef", "0123456789abcdef", now).is_none());
    }
}
