//! Continue tokens of paged lists: the revision the first page was read at and the key the
//! next page starts from, base64 JSON as kube-apiserver encodes them.

use base64::Engine;

use super::error::{StoreError, StoreResult};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ContinueToken {
    v: String,
    pub rv: i64,
    pub start: String,
}

pub fn encode(rv: i64, start: &str) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: start.to_string(),
    };
    base64::engine::general_purpose::URL_SAFE.encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// The token, if it is well formed and stays inside `prefix` (a token cannot be used to read
/// another resource or namespace).
pub fn decode(token: &str, prefix: &str) -> StoreResult<ContinueToken> {
    let bad = || StoreError::InvalidContinue(token.to_string());
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let decoded: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if decoded.v != "meta.k8s.io/v1" || !decoded.start.starts_with(prefix) || decoded.rv <= 0 {
        return Err(bad());
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_stay_in_their_prefix() {
        let token = encode(42, "/registry/pods/default/b\u{0}");
        let decoded = decode(&token, "/registry/pods/default/").unwrap();
        assert_eq!(decoded.rv, 42);
        assert!(decode(&token, "/registry/secrets/").is_err());
    }
}
