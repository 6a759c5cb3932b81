//! The service proxy: Services and EndpointSlices in, iptables nat rules out.
//!
//! [`ServiceCache`] keeps reflector stores of both kinds (shared with the cluster DNS server)
//! and counts changes. [`run`] waits for a change, lets a short debounce window collect the
//! ones that follow it, computes the whole ruleset with the pure [`rules`] functions and
//! applies it in one `iptables-restore --noflush`. Rules are re-checked on a resync interval
//! too, so a flushed table heals. [`cleanup`] removes every chain and jump of a prefix.

pub mod rules;

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tracing::{debug, info, warn};

use crate::network::iptables;
use crate::servicecache::ServiceCache;

pub use rules::{Existing, RuleConfig, ServicePort};

/// Settings of the service proxy.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Every chain is named `<prefix>-...` (at most 11 characters of `A-Z`, `0-9`); tests give
    /// each instance its own so they do not collide.
    pub chain_prefix: String,
    /// Mark bit asking for masquerade (kube-proxy uses 0x4000).
    pub masquerade_mark: u32,
    /// Cluster pod network: traffic to a ClusterIP from outside it is masqueraded.
    pub cluster_cidr: Option<String>,
    /// CIDRs NodePorts answer on; empty: every local address but loopback.
    pub nodeport_addresses: Vec<String>,
    /// After a change, wait this long for more before applying (keeps updates < 1 s).
    pub debounce: Duration,
    /// Re-apply at least this often even without changes (repairs outside edits).
    pub resync: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            chain_prefix: "SKIFF".into(),
            masquerade_mark: 0x4000,
            cluster_cidr: None,
            nodeport_addresses: vec![],
            debounce: Duration::from_millis(100),
            resync: Duration::from_secs(30),
        }
    }
}

impl ProxyConfig {
    pub fn rule_config(&self) -> RuleConfig {
        RuleConfig {
            prefix: self.chain_prefix.clone(),
            masquerade_mark: self.masquerade_mark,
            cluster_cidr: self.cluster_cidr.clone(),
            nodeport_addresses: self.nodeport_addresses.clone(),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        validate_prefix(&self.chain_prefix)
    }
}

/// A chain prefix must be short (chain names are at most 28 characters) and plain.
pub fn validate_prefix(prefix: &str) -> anyhow::Result<()> {
    if prefix.is_empty()
        || prefix.len() > rules::MAX_PREFIX_LEN
        || !prefix
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        bail!(
            "chain prefix {prefix:?} must be 1 to {} characters of A-Z and 0-9",
            rules::MAX_PREFIX_LEN
        );
    }
    Ok(())
}

/// Compute and apply the ruleset for `ports` in one restore. Returns whether anything was
/// written (`last` holds the previous payload; an unchanged one is not re-applied).
pub async fn sync(
    cfg: &RuleConfig,
    ports: &[ServicePort],
    last: &mut Option<String>,
) -> anyhow::Result<bool> {
    let existing = Existing::parse(&iptables::save().await?, &cfg.prefix);
    let payload = rules::render(cfg, ports, &existing);
    // Jump inserts and chain deletions only appear while iptables is not in the wanted state;
    // without them, the payload is the ruleset itself.
    let repairs = |l: &&str| l.starts_with("-I ") || l.starts_with("-X ");
    let steady = !payload.lines().any(|l| repairs(&l));
    let ruleset: String = payload
        .lines()
        .filter(|l| !repairs(l))
        .flat_map(|l| [l, "\n"])
        .collect();
    if steady && last.as_deref() == Some(ruleset.as_str()) {
        return Ok(false);
    }
    if let Err(e) = iptables::restore(&payload).await {
        *last = None;
        return Err(e.into());
    }
    *last = Some(ruleset);
    Ok(true)
}

/// Remove every chain named `<prefix>-...` and every rule jumping to one, in one restore.
pub async fn cleanup(prefix: &str) -> anyhow::Result<()> {
    validate_prefix(prefix)?;
    let existing = Existing::parse(&iptables::save().await?, prefix);
    if let Some(payload) = rules::render_cleanup(&existing) {
        iptables::restore(&payload).await?;
        info!(prefix, "service proxy rules removed");
    }
    Ok(())
}

/// [`cleanup`] without a runtime (for `Drop` guards in tests).
pub fn cleanup_blocking(prefix: &str) -> anyhow::Result<()> {
    validate_prefix(prefix)?;
    let existing = Existing::parse(&iptables::save_blocking()?, prefix);
    let Some(payload) = rules::render_cleanup(&existing) else {
        return Ok(());
    };
    iptables::restore_blocking(&payload).with_context(|| format!("removing the {prefix} chains"))
}

/// Keep the rules in line with `cache` until the task is dropped.
pub async fn run(cfg: ProxyConfig, cache: ServiceCache) -> anyhow::Result<()> {
    cfg.validate()?;
    let rule_cfg = cfg.rule_config();
    let mut changes = cache.changes.clone();
    // Programming rules from a half-filled store would drop live services.
    cache.ready().await;
    info!(prefix = %cfg.chain_prefix, "service proxy started");
    let mut last: Option<String> = None;
    let mut backoff = Duration::from_millis(200);
    loop {
        changes.borrow_and_update();
        let started = Instant::now();
        let ports = rules::service_ports(&cache.services.state(), &cache.slices.state());
        match sync(&rule_cfg, &ports, &mut last).await {
            Ok(applied) => {
                backoff = Duration::from_millis(200);
                if applied {
                    debug!(
                        service_ports = ports.len(),
                        took_ms = started.elapsed().as_millis() as u64,
                        "service rules applied"
                    );
                }
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), "applying service rules");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        }
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() {
                    bail!("the service cache stopped");
                }
                // Debounce: one apply for a burst of changes.
                tokio::time::sleep(cfg.debounce).await;
            }
            _ = tokio::time::sleep(cfg.resync) => {
                // A forced re-check: iptables may have been changed behind our back.
                last = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        assert!(validate_prefix("SKIFF").is_ok());
        assert!(validate_prefix("SKT12345A").is_ok());
        assert!(validate_prefix("").is_err());
        assert!(validate_prefix("skiff").is_err());
        assert!(validate_prefix("SKIFF-X").is_err());
        assert!(validate_prefix("ABCDEFGHIJKL").is_err());
    }
}
