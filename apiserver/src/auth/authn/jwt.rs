//! ServiceAccount tokens: JWTs (ES256, the P-256 key in the cert dir) with Kubernetes' claims,
//! signed by the apiserver for the TokenRequest API and verified on every request that bears
//! one. A token is only as good as its bound objects: the authenticator also checks that the
//! ServiceAccount (and the pod, when bound) still exist with the uids the token names.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};

/// The issuer and default audience, as kube-apiserver's with `--service-account-issuer`
/// set to its usual value.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("the ServiceAccount signing key: {0}")]
    Key(String),
    #[error("not a JWT")]
    Malformed,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by {0:?}, not this cluster")]
    Issuer(String),
    #[error("the token is not meant for this cluster (audiences {0:?})")]
    Audience(Vec<String>),
}

/// An object a token is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundRef {
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: BoundRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<BoundRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<BoundRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<BoundRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    kid: String,
}

/// Signs and verifies ServiceAccount tokens with one key.
pub struct TokenKeys {
    key: EcdsaKeyPair,
    key_id: String,
    issuer: String,
    rng: SystemRandom,
}

impl TokenKeys {
    /// From the PKCS#8 PEM the cert dir holds.
    pub fn from_pem(pem: &str, issuer: &str) -> Result<TokenKeys, JwtError> {
        let der = skiff_pki::pem::private_key(pem, "the ServiceAccount key")
            .map_err(|e| JwtError::Key(e.to_string()))?;
        Self::from_pkcs8(der.secret_der(), issuer)
    }

    fn from_pkcs8(pkcs8: &[u8], issuer: &str) -> Result<TokenKeys, JwtError> {
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                .map_err(|e| JwtError::Key(e.to_string()))?;
        // The key id names the public key, as kube-apiserver derives it (a hash of the key).
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        Ok(TokenKeys {
            key_id: URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]),
            key,
            issuer: issuer.to_string(),
            rng,
        })
    }

    /// A key that lives as long as the process (the insecure test mode has no cert dir).
    pub fn ephemeral(issuer: &str) -> Result<TokenKeys, JwtError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| JwtError::Key(e.to_string()))?;
        Self::from_pkcs8(pkcs8.as_ref(), issuer)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, JwtError> {
        let header = Header {
            alg: "ES256".into(),
            kid: self.key_id.clone(),
        };
        let encode = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        let signing_input = format!(
            "{}.{}",
            encode(&serde_json::to_vec(&header).expect("header serializes")),
            encode(&serde_json::to_vec(claims).expect("claims serialize"))
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|e| JwtError::Key(e.to_string()))?;
        Ok(format!("{signing_input}.{}", encode(sig.as_ref())))
    }

    /// The claims of a token this key signed, if it is valid at `now` (Unix seconds) for one
    /// of `audiences`. Objects it is bound to are the caller's to check.
    pub fn verify(&self, token: &str, audiences: &[String], now: i64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed);
        let header: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Malformed)?;
        if header.alg != "ES256" {
            return Err(JwtError::Signature);
        }
        let signing_input_len = token.len() - sig.len() - 1;
        signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        )
        .verify(&token.as_bytes()[..signing_input_len], &decode(sig)?)
        .map_err(|_| JwtError::Signature)?;
        let claims: Claims =
            serde_json::from_slice(&decode(payload)?).map_err(|_| JwtError::Malformed)?;
        if claims.iss != self.issuer {
            return Err(JwtError::Issuer(claims.iss));
        }
        if !claims.aud.iter().any(|a| audiences.contains(a)) {
            return Err(JwtError::Audience(claims.aud));
        }
        // A minute of leeway for clocks, as Kubernetes allows.
        if now > claims.exp + 60 {
            return Err(JwtError::Expired);
        }
        if now + 60 < claims.nbf {
            return Err(JwtError::NotYetValid);
        }
        Ok(claims)
    }
}

/// Whether a bearer token looks like a JWT (three base64url parts), so other token
/// authenticators need not parse it.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        let key = rcgen::KeyPair::generate().unwrap();
        TokenKeys::from_pem(&key.serialize_pem(), DEFAULT_ISSUER).unwrap()
    }

    fn claims(exp: i64) -> Claims {
        Claims {
            iss: DEFAULT_ISSUER.into(),
            sub: "system:serviceaccount:default:builder".into(),
            aud: vec![DEFAULT_ISSUER.into()],
            exp,
            iat: 1000,
            nbf: 1000,
            jti: "j1".into(),
            kubernetes: KubernetesClaims {
                namespace: "default".into(),
                serviceaccount: BoundRef {
                    name: "builder".into(),
                    uid: "u1".into(),
                },
                pod: None,
                secret: None,
                node: None,
            },
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let keys = keys();
        let token = keys.sign(&claims(2000)).unwrap();
        assert!(looks_like_jwt(&token));
        let aud = vec![DEFAULT_ISSUER.to_string()];
        assert_eq!(keys.verify(&token, &aud, 1500).unwrap(), claims(2000));
        assert!(matches!(
            keys.verify(&token, &aud, 2100),
            Err(JwtError::Expired)
        ));
        let other = vec!["vault".to_string()];
        assert!(matches!(
            keys.verify(&token, &other, 1500),
            Err(JwtError::Audience(_))
        ));
    }

    #[test]
    fn another_key_or_a_changed_payload_is_refused() {
        let token = keys().sign(&claims(2000)).unwrap();
        let aud = vec![DEFAULT_ISSUER.to_string()];
        assert!(matches!(
            keys().verify(&token, &aud, 1500),
            Err(JwtError::Signature)
        ));
        let keys = keys();
        let token = keys.sign(&claims(2000)).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut forged = claims(2000);
        forged.sub = "system:serviceaccount:kube-system:admin".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert!(matches!(
            keys.verify(&parts.join("."), &aud, 1500),
            Err(JwtError::Signature)
        ));
    }
}
