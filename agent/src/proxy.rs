//! The service proxy: Services and EndpointSlices in, iptables nat rules out.
//!
//! [`ServiceCache`] keeps reflector stores of both kinds (shared with the cluster DNS server)
//! and counts changes. [`run`] waits for a change, lets a short debounce window collect the
//! ones that follow it, computes the whole ruleset with the pure [`rules`] functions and
//! applies it in one `iptables-restore --noflush`. Rules are re-checked on a resync interval
//! too, so a flushed table heals. [`cleanup`] removes every chain and jump of a prefix.

pub mod rules;

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, warn};

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

/// Reflector stores of all Services and EndpointSlices, and a counter of changes to them.
#[derive(Clone)]
pub struct ServiceCache {
    pub services: Store<Service>,
    pub slices: Store<EndpointSlice>,
    pub changes: tokio::sync::watch::Receiver<u64>,
}

impl ServiceCache {
    /// The cache and the future that keeps it filled (run it for as long as the cache is used).
    pub fn new(
        client: kube::Client,
    ) -> (ServiceCache, impl std::future::Future<Output = ()> + Send) {
        let (services, svc_writer) = reflector::store();
        let (slices, slice_writer) = reflector::store();
        let (tx, changes) = tokio::sync::watch::channel(0u64);
        let svc_stream = reflector::reflector(
            svc_writer,
            watcher(
                kube::Api::<Service>::all(client.clone()),
                Default::default(),
            ),
        )
        .default_backoff()
        .map(|r| r.map(|_| ()))
        .boxed();
        let slice_stream = reflector::reflector(
            slice_writer,
            watcher(kube::Api::<EndpointSlice>::all(client), Default::default()),
        )
        .default_backoff()
        .map(|r| r.map(|_| ()))
        .boxed();
        let drive = async move {
            let mut both = futures::stream::select(svc_stream, slice_stream);
            while let Some(ev) = both.next().await {
                match ev {
                    Ok(()) => tx.send_modify(|n| *n += 1),
                    Err(e) => warn!(error = %e, "service/endpointslice watch error"),
                }
            }
        };
        (
            ServiceCache {
                services,
                slices,
                changes,
            },
            drive,
        )
    }

    /// Wait until both stores hold a full list.
    pub async fn ready(&self) {
        let _ = self.services.wait_until_ready().await;
        let _ = self.slices.wait_until_ready().await;
    }

    /// The service ports to program now.
    pub fn service_ports(&self) -> Vec<ServicePort> {
        rules::service_ports(&self.services.state(), &self.slices.state())
    }
}

/// Output of `iptables-save` (all tables).
pub async fn iptables_save() -> anyhow::Result<String> {
    let out = tokio::process::Command::new("iptables-save")
        .stdin(Stdio::null())
        .output()
        .await
        .context("running iptables-save")?;
    if !out.status.success() {
        bail!(
            "iptables-save failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `iptables-restore --noflush` with `payload` on stdin: all or nothing.
pub async fn iptables_restore(payload: &str) -> anyhow::Result<()> {
    let mut child = tokio::process::Command::new("iptables-restore")
        .args(["--noflush", "--wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running iptables-restore")?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(payload.as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "iptables-restore failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
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
    let existing = Existing::parse(&iptables_save().await?, &cfg.prefix);
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
    if let Err(e) = iptables_restore(&payload).await {
        *last = None;
        return Err(e);
    }
    *last = Some(ruleset);
    Ok(true)
}

/// Remove every chain named `<prefix>-...` and every rule jumping to one, in one restore.
pub async fn cleanup(prefix: &str) -> anyhow::Result<()> {
    validate_prefix(prefix)?;
    let existing = Existing::parse(&iptables_save().await?, prefix);
    if let Some(payload) = rules::render_cleanup(&existing) {
        iptables_restore(&payload).await?;
        info!(prefix, "service proxy rules removed");
    }
    Ok(())
}

/// [`cleanup`] without a runtime (for `Drop` guards in tests).
pub fn cleanup_blocking(prefix: &str) -> anyhow::Result<()> {
    use std::io::Write;
    validate_prefix(prefix)?;
    let out = std::process::Command::new("iptables-save")
        .output()
        .context("running iptables-save")?;
    let existing = Existing::parse(&String::from_utf8_lossy(&out.stdout), prefix);
    let Some(payload) = rules::render_cleanup(&existing) else {
        return Ok(());
    };
    let mut child = std::process::Command::new("iptables-restore")
        .args(["--noflush", "--wait"])
        .stdin(Stdio::piped())
        .spawn()
        .context("running iptables-restore")?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(payload.as_bytes())?;
    if !child.wait()?.success() {
        bail!("iptables-restore failed removing the {prefix} chains");
    }
    Ok(())
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
        let ports = cache.service_ports();
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
