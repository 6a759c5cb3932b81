//! Encryption at rest, as kube-apiserver's `--encryption-provider-config`: an
//! `EncryptionConfiguration` file lists, per resource, providers in order. The first one
//! encrypts what is written; all of them are tried on read, so keys can be rotated and data
//! written before encryption was turned on (plaintext, read by `identity`) stays readable.
//!
//! Providers: `aesgcm` (AES-256-GCM with a random 96-bit nonce, the etcd key as associated
//! data, stored as `k8s:enc:aesgcm:v1:<key name>:<nonce><ciphertext+tag>` as Kubernetes
//! stores it) and `identity` (plaintext).

use std::borrow::Cow;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;

const AESGCM_PREFIX: &str = "k8s:enc:aesgcm:v1:";

#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    #[error("reading the encryption configuration {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the encryption configuration is not valid: {0}")]
    Invalid(String),
    #[error("no provider can read the value stored at {0}")]
    Unreadable(String),
    #[error("the value stored at {key} names an unknown key {name:?}")]
    UnknownKey { key: String, name: String },
    #[error("decrypting the value stored at {0} failed (wrong key or tampered data)")]
    Decrypt(String),
    #[error("encrypting a value failed")]
    Encrypt,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    kind: String,
    resources: Vec<ResourceConfig>,
}

#[derive(Deserialize)]
struct ResourceConfig {
    resources: Vec<String>,
    providers: Vec<ProviderConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProviderConfig {
    aesgcm: Option<KeysConfig>,
    identity: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct KeysConfig {
    keys: Vec<KeyConfig>,
}

#[derive(Deserialize)]
struct KeyConfig {
    name: String,
    secret: String,
}

struct NamedKey {
    name: String,
    key: LessSafeKey,
}

enum Provider {
    AesGcm(Vec<NamedKey>),
    Identity,
}

struct Rule {
    /// etcd key prefixes of the resources the rule covers.
    prefixes: Vec<String>,
    providers: Vec<Provider>,
}

/// The encryption rules of the configuration file.
pub struct Encryption {
    rules: Vec<Rule>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryption")
            .field(
                "resources",
                &self.rules.iter().map(|r| &r.prefixes).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A configuration with one fresh AES-GCM key for Secrets, then identity (so plaintext Secrets
/// written before still read).
pub fn new_config() -> String {
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .expect("the system random source works");
    format!(
        "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: {}
      - identity: {{}}
",
        STANDARD.encode(key)
    )
}

/// Write [`new_config`] to `path` (mode 0600) unless a configuration is there.
pub fn ensure_config(path: &Path) -> Result<(), EncryptionError> {
    if path.exists() {
        return Ok(());
    }
    let io = |source| EncryptionError::Read {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(new_config().as_bytes()).map_err(io)
}

impl Encryption {
    /// Read the configuration at `path`; `prefix_of` maps a resource name (`secrets`,
    /// `deployments.apps`) to its etcd prefix, or `None` if it is not served.
    pub fn load(
        path: &Path,
        prefix_of: impl Fn(&str) -> Option<String>,
    ) -> Result<Encryption, EncryptionError> {
        let text = std::fs::read_to_string(path).map_err(|source| EncryptionError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, prefix_of)
    }

    pub fn parse(
        text: &str,
        prefix_of: impl Fn(&str) -> Option<String>,
    ) -> Result<Encryption, EncryptionError> {
        let invalid = |m: String| EncryptionError::Invalid(m);
        let file: ConfigFile =
            skiff_common::yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if file.kind != "EncryptionConfiguration" {
            return Err(invalid(format!(
                "kind is {:?}, not EncryptionConfiguration",
                file.kind
            )));
        }
        let mut rules = Vec::new();
        for (i, r) in file.resources.iter().enumerate() {
            let mut prefixes = Vec::new();
            for name in &r.resources {
                let prefix = prefix_of(name).ok_or_else(|| {
                    invalid(format!(
                        "resources[{i}].resources: {name:?} is not a served resource"
                    ))
                })?;
                prefixes.push(prefix);
            }
            if r.providers.is_empty() {
                return Err(invalid(format!("resources[{i}].providers: Required value")));
            }
            let mut providers = Vec::new();
            for (j, p) in r.providers.iter().enumerate() {
                providers.push(match (&p.aesgcm, &p.identity) {
                    (Some(keys), None) => Provider::AesGcm(aesgcm_keys(keys).map_err(|e| {
                        invalid(format!("resources[{i}].providers[{j}].aesgcm: {e}"))
                    })?),
                    (None, Some(_)) => Provider::Identity,
                    _ => {
                        return Err(invalid(format!(
                            "resources[{i}].providers[{j}]: exactly one of aesgcm or identity"
                        )))
                    }
                });
            }
            rules.push(Rule {
                prefixes,
                providers,
            });
        }
        Ok(Encryption {
            rules,
            rng: SystemRandom::new(),
        })
    }

    fn rule(&self, key: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.prefixes.iter().any(|p| key.starts_with(p.as_str())))
    }

    /// The bytes to store at `key`.
    pub fn seal(&self, key: &str, plain: Vec<u8>) -> Result<Vec<u8>, EncryptionError> {
        let Some(rule) = self.rule(key) else {
            return Ok(plain);
        };
        match &rule.providers[0] {
            Provider::Identity => Ok(plain),
            Provider::AesGcm(keys) => {
                let k = &keys[0];
                let mut nonce = [0u8; NONCE_LEN];
                self.rng
                    .fill(&mut nonce)
                    .map_err(|_| EncryptionError::Encrypt)?;
                let mut sealed = plain;
                k.key
                    .seal_in_place_append_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(key.as_bytes()),
                        &mut sealed,
                    )
                    .map_err(|_| EncryptionError::Encrypt)?;
                let mut out = format!("{AESGCM_PREFIX}{}:", k.name).into_bytes();
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
                Ok(out)
            }
        }
    }

    /// The plaintext of the bytes stored at `key`.
    pub fn open<'a>(&self, key: &str, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, EncryptionError> {
        let Some(rule) = self.rule(key) else {
            return Ok(Cow::Borrowed(stored));
        };
        if let Some(rest) = stored.strip_prefix(AESGCM_PREFIX.as_bytes()) {
            let colon = rest
                .iter()
                .position(|b| *b == b':')
                .ok_or_else(|| EncryptionError::Unreadable(key.to_string()))?;
            let name = String::from_utf8_lossy(&rest[..colon]).into_owned();
            let body = &rest[colon + 1..];
            let named = rule
                .providers
                .iter()
                .filter_map(|p| match p {
                    Provider::AesGcm(keys) => Some(keys),
                    Provider::Identity => None,
                })
                .flatten()
                .find(|k| k.name == name)
                .ok_or_else(|| EncryptionError::UnknownKey {
                    key: key.to_string(),
                    name,
                })?;
            if body.len() < NONCE_LEN {
                return Err(EncryptionError::Decrypt(key.to_string()));
            }
            let (nonce, sealed) = body.split_at(NONCE_LEN);
            let nonce = Nonce::try_assume_unique_for_key(nonce)
                .map_err(|_| EncryptionError::Decrypt(key.to_string()))?;
            let mut buf = sealed.to_vec();
            let plain = named
                .key
                .open_in_place(nonce, Aad::from(key.as_bytes()), &mut buf)
                .map_err(|_| EncryptionError::Decrypt(key.to_string()))?;
            let len = plain.len();
            buf.truncate(len);
            return Ok(Cow::Owned(buf));
        }
        if rule
            .providers
            .iter()
            .any(|p| matches!(p, Provider::Identity))
        {
            return Ok(Cow::Borrowed(stored));
        }
        Err(EncryptionError::Unreadable(key.to_string()))
    }
}

fn aesgcm_keys(config: &KeysConfig) -> Result<Vec<NamedKey>, String> {
    if config.keys.is_empty() {
        return Err("keys: Required value".into());
    }
    config
        .keys
        .iter()
        .map(|k| {
            let secret = STANDARD
                .decode(k.secret.trim())
                .map_err(|e| format!("key {:?}: secret is not base64: {e}", k.name))?;
            if secret.len() != 32 {
                return Err(format!(
                    "key {:?}: secret must be 32 bytes (AES-256), not {}",
                    k.name,
                    secret.len()
                ));
            }
            let key = UnboundKey::new(&AES_256_GCM, &secret)
                .map_err(|_| format!("key {:?}: not an AES-256 key", k.name))?;
            Ok(NamedKey {
                name: k.name.clone(),
                key: LessSafeKey::new(key),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(name: &str) -> Option<String> {
        (name == "secrets").then(|| "/registry/secrets/".to_string())
    }

    #[test]
    fn secrets_are_sealed_and_opened_and_plaintext_still_reads() {
        let enc = Encryption::parse(&new_config(), prefixes).unwrap();
        let key = "/registry/secrets/default/db";
        let sealed = enc.seal(key, b"{\"data\":\"hunter2\"}".to_vec()).unwrap();
        assert!(sealed.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(&*enc.open(key, &sealed).unwrap(), b"{\"data\":\"hunter2\"}");
        // Bound to its key: moved elsewhere, it does not open.
        assert!(enc
            .open("/registry/secrets/default/other", &sealed)
            .is_err());
        assert_eq!(&*enc.open(key, b"{}").unwrap(), b"{}");
        // Other resources are untouched.
        let cm = enc
            .seal("/registry/configmaps/default/c", b"{}".to_vec())
            .unwrap();
        assert_eq!(cm, b"{}");
    }

    #[test]
    fn another_key_cannot_open_and_bad_configs_are_refused() {
        let a = Encryption::parse(&new_config(), prefixes).unwrap();
        let b = Encryption::parse(&new_config(), prefixes).unwrap();
        let key = "/registry/secrets/default/db";
        let sealed = a.seal(key, b"{}".to_vec()).unwrap();
        assert!(matches!(
            b.open(key, &sealed),
            Err(EncryptionError::Decrypt(_))
        ));
        let short = new_config().replace("secret: ", "secret: AAAA");
        assert!(Encryption::parse(&short, prefixes).is_err());
        let unknown = new_config().replace("- secrets", "- widgets");
        let err = Encryption::parse(&unknown, prefixes).unwrap_err();
        assert!(err
            .to_string()
            .contains("\"widgets\" is not a served resource"));
    }
}
