//! etcd storage: one JSON value per object under `/registry/<resource>/[<namespace>/]<name>`.
//!
//! `metadata.resourceVersion` is never stored; it is the key's etcd mod revision, set when the
//! object is read. Every write is a transaction guarded on that revision (compare-and-swap), so
//! several apiservers can share one etcd without losing updates.

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

use super::encryption::Encryption;

pub use super::error::{StoreError, StoreResult};

/// An object as read from etcd, with its resourceVersion filled in.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub value: Value,
    pub revision: i64,
}

/// Keys written in the same transaction as an object: allocation records (a ClusterIP, a
/// NodePort) that must be unique cluster-wide. Creating one that exists fails the transaction.
#[derive(Debug, Default, Clone)]
pub struct SideKeys {
    pub create: Vec<String>,
    pub delete: Vec<String>,
}

#[derive(Debug, PartialEq)]
pub enum WriteOutcome {
    /// Written at this revision.
    Written(i64),
    /// The object's key exists (create) or moved on from the expected revision (update/delete).
    Conflict,
    /// One of the side keys to create is already taken.
    SideKeyTaken(String),
}

/// One page of a range read.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<(String, Versioned)>,
    pub revision: i64,
    /// Key to continue from, when more remain.
    pub next_key: Option<String>,
    pub remaining: i64,
}

#[derive(Clone)]
pub struct Store {
    client: Client,
    /// Encryption at rest of the configured resources (None: everything in plaintext).
    encryption: Option<Arc<Encryption>>,
}

fn compacted(e: &etcd_client::Error) -> bool {
    e.to_string().contains("compacted")
}

/// The first key after every key starting with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

pub fn set_resource_version(value: &mut Value, revision: i64) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

fn encode(value: &Value) -> Vec<u8> {
    let mut value = value.clone();
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&value).expect("JSON values always serialize")
}

impl Store {
    pub async fn connect(endpoints: &[String]) -> StoreResult<Store> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let client = Client::connect(endpoints, Some(options)).await?;
        Ok(Store {
            client,
            encryption: None,
        })
    }

    /// Encrypt (and decrypt) the resources `encryption` covers.
    pub fn with_encryption(mut self, encryption: Encryption) -> Store {
        self.encryption = Some(Arc::new(encryption));
        self
    }

    /// Decode a stored value, filling in `metadata.resourceVersion` from the key's mod
    /// revision.
    pub fn decode(&self, kv: &KeyValue) -> StoreResult<Versioned> {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let plain = match &self.encryption {
            Some(e) => e.open(&key, kv.value())?,
            None => std::borrow::Cow::Borrowed(kv.value()),
        };
        let mut value: Value =
            serde_json::from_slice(&plain).map_err(|source| StoreError::Corrupt { key, source })?;
        set_resource_version(&mut value, kv.mod_revision());
        Ok(Versioned {
            value,
            revision: kv.mod_revision(),
        })
    }

    /// The bytes stored for `value` at `key`.
    fn encode(&self, key: &str, value: &Value) -> StoreResult<Vec<u8>> {
        let plain = encode(value);
        match &self.encryption {
            Some(e) => Ok(e.seal(key, plain)?),
            None => Ok(plain),
        }
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub async fn get(&self, key: &str) -> StoreResult<Option<Versioned>> {
        let resp = self.client.kv_client().get(key, None).await?;
        resp.kvs().first().map(|kv| self.decode(kv)).transpose()
    }

    /// The newest revision of the whole store.
    pub async fn current_revision(&self) -> StoreResult<i64> {
        let resp = self
            .client
            .kv_client()
            .get("/registry/", Some(GetOptions::new().with_count_only()))
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Create `key` if it does not exist, together with `side` keys.
    pub async fn create(
        &self,
        key: &str,
        value: &Value,
        side: &SideKeys,
    ) -> StoreResult<WriteOutcome> {
        let mut when = vec![Compare::create_revision(key, CompareOp::Equal, 0)];
        let mut ops = vec![TxnOp::put(key, self.encode(key, value)?, None)];
        self.add_side_keys(key, side, &mut when, &mut ops);
        self.commit(key, when, ops, side, true).await
    }

    /// Replace `key` if its mod revision is still `expected`.
    pub async fn update(
        &self,
        key: &str,
        expected: i64,
        value: &Value,
        side: &SideKeys,
    ) -> StoreResult<WriteOutcome> {
        let mut when = vec![Compare::mod_revision(key, CompareOp::Equal, expected)];
        let mut ops = vec![TxnOp::put(key, self.encode(key, value)?, None)];
        self.add_side_keys(key, side, &mut when, &mut ops);
        self.commit(key, when, ops, side, false).await
    }

    /// Delete `key` if its mod revision is still `expected`.
    pub async fn delete(
        &self,
        key: &str,
        expected: i64,
        side: &SideKeys,
    ) -> StoreResult<WriteOutcome> {
        let mut when = vec![Compare::mod_revision(key, CompareOp::Equal, expected)];
        let mut ops = vec![TxnOp::delete(key, None)];
        self.add_side_keys(key, side, &mut when, &mut ops);
        self.commit(key, when, ops, side, false).await
    }

    fn add_side_keys(
        &self,
        _key: &str,
        side: &SideKeys,
        when: &mut Vec<Compare>,
        ops: &mut Vec<TxnOp>,
    ) {
        for k in &side.create {
            when.push(Compare::create_revision(k.as_str(), CompareOp::Equal, 0));
            ops.push(TxnOp::put(k.as_str(), b"{}".to_vec(), None));
        }
        for k in &side.delete {
            ops.push(TxnOp::delete(k.as_str(), None));
        }
    }

    async fn commit(
        &self,
        key: &str,
        when: Vec<Compare>,
        ops: Vec<TxnOp>,
        side: &SideKeys,
        creating: bool,
    ) -> StoreResult<WriteOutcome> {
        let mut checks = vec![TxnOp::get(key, Some(GetOptions::new().with_keys_only()))];
        for k in &side.create {
            checks.push(TxnOp::get(
                k.as_str(),
                Some(GetOptions::new().with_keys_only()),
            ));
        }
        let txn = Txn::new().when(when).and_then(ops).or_else(checks);
        let resp = self.client.kv_client().txn(txn).await?;
        if resp.succeeded() {
            return Ok(WriteOutcome::Written(
                resp.header().map(|h| h.revision()).unwrap_or(0),
            ));
        }
        // Which guard failed: the object itself, or a side key that now exists.
        let responses = resp.op_responses();
        if creating {
            if let Some(TxnOpResponse::Get(get)) = responses.first() {
                if !get.kvs().is_empty() {
                    return Ok(WriteOutcome::Conflict);
                }
            }
        }
        for (i, op) in responses.into_iter().enumerate().skip(1) {
            if let TxnOpResponse::Get(get) = op {
                if !get.kvs().is_empty() {
                    return Ok(WriteOutcome::SideKeyTaken(side.create[i - 1].clone()));
                }
            }
        }
        Ok(WriteOutcome::Conflict)
    }

    /// Read up to `limit` objects (0: all) under `prefix`, starting at `start` (inclusive), as of
    /// `revision` (0: newest).
    pub async fn list(
        &self,
        prefix: &str,
        start: Option<&str>,
        revision: i64,
        limit: i64,
    ) -> StoreResult<Page> {
        let from = start.unwrap_or(prefix);
        let mut options = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_revision(revision);
        if limit > 0 {
            options = options.with_limit(limit);
        }
        let resp = match self.client.kv_client().get(from, Some(options)).await {
            Ok(resp) => resp,
            Err(e) if compacted(&e) => {
                return Err(StoreError::Compacted(format!(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list. ({e})"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        let mut items = Vec::with_capacity(resp.kvs().len());
        for kv in resp.kvs() {
            items.push((
                String::from_utf8_lossy(kv.key()).into_owned(),
                self.decode(kv)?,
            ));
        }
        let header_rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        let revision = if revision > 0 { revision } else { header_rev };
        let remaining = resp.count() - items.len() as i64;
        let next_key = if resp.more() {
            items.last().map(|(k, _)| format!("{k}\x00"))
        } else {
            None
        };
        Ok(Page {
            items,
            revision,
            next_key,
            remaining,
        })
    }

    /// Remove history before `revision`.
    pub async fn compact(&self, revision: i64) -> StoreResult<()> {
        self.client.kv_client().compact(revision, None).await?;
        Ok(())
    }

    /// Keys (without values) under `prefix`.
    pub async fn keys(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let resp = self
            .client
            .kv_client()
            .get(
                prefix,
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end("/registry/pods/"), b"/registry/pods0".to_vec());
    }

    #[test]
    fn resource_version_is_not_stored() {
        let v = serde_json::json!({"metadata": {"name": "a", "resourceVersion": "7"}});
        let stored: Value = serde_json::from_slice(&encode(&v)).unwrap();
        assert!(stored["metadata"].get("resourceVersion").is_none());
    }
}
