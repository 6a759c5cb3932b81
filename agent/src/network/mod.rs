//! Pod sandboxes: one network, IPC and UTS namespace per pod, wired by the standard CNI plugins.
//!
//! Each namespace is created by a short-lived thread that `unshare(2)`s it and bind-mounts its
//! `/proc/<pid>/task/<tid>/ns/*` file under `<root>/sandboxes/<pod-uid>/`; the mount keeps the
//! namespace alive after the thread exits, and every container of the pod joins it by path.
//!
//! The network namespace is wired by executing the plugins per the CNI spec (`CNI_COMMAND`,
//! `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_PATH` in the environment, the network
//! configuration as JSON on stdin, the result or error as JSON on stdout): `loopback` for `lo`,
//! `bridge` with `host-local` IPAM over the node's pod CIDR for `eth0`, and `portmap` for
//! hostPorts, chained with `prevResult`. The configurations used for ADD are saved in the
//! sandbox directory (as libcni caches them), so DEL gets exactly the same ones, even from a
//! restarted agent; the ADD result there records the pod IP.
//!
//! The bridge plugin adds no filter rules, so where the FORWARD policy is DROP (Docker sets it)
//! pods could not reach anything beyond their bridge; and its `ipMasq` masquerades everything
//! that leaves the node's subnet, pods of other nodes included. So, like the CNI firewall
//! plugin and kube-proxy, the agent keeps its own chains: filter `SKIFF-FWD-<bridge>` (from
//! FORWARD) accepts what the node's pods send and the replies to it; nat `SKIFF-MASQ-<bridge>`
//! (from POSTROUTING) masquerades what they send outside the cluster's pod network. They are
//! set up with the first sandbox and removed by [`remove_pod_network_rules`]
//! (`skiff-agent --cleanup`). Every iptables call goes through [`iptables`], the wrapper the
//! service proxy uses too.

pub mod iptables;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, warn};

use iptables::iptables;

/// CNI spec version the agent speaks (Debian's plugins support 0.1.0 to 1.0.0).
pub const CNI_VERSION: &str = "1.0.0";
/// Name of the pod network in CNI configurations (also names host-local's allocation dir).
pub const NETWORK_NAME: &str = "skiff";
const NS_KINDS: [&str; 3] = ["net", "ipc", "uts"];
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings of the pod network on this node.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// Directory of the CNI plugin binaries.
    pub cni_bin_dir: PathBuf,
    /// Name of the Linux bridge pods attach to.
    pub bridge: String,
    /// Where sandboxes (namespace mounts, CNI state, host-local allocations) live.
    pub state_dir: PathBuf,
    /// The cluster's whole pod network: what pods send there is not masqueraded. `None`: only
    /// traffic within this node's pod CIDR keeps its source address.
    pub cluster_cidr: Option<String>,
}

/// A pod's namespaces and address.
#[derive(Clone, Debug, PartialEq)]
pub struct Sandbox {
    pub dir: PathBuf,
    pub ip: Option<String>,
}

impl Sandbox {
    pub fn ns_path(&self, kind: &str) -> PathBuf {
        self.dir.join(kind)
    }
}

/// A hostPort mapping for the portmap plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct PortMapping {
    pub host_port: i32,
    pub container_port: i32,
    pub protocol: String,
    pub host_ip: Option<String>,
}

/// The pod network of one agent. CNI operations are serialized (the plugins lock their own
/// state too; this keeps iptables and bridge creation free of races between pods).
pub struct Network {
    pub config: NetworkConfig,
    /// Held for CNI operations; the flag says whether the pod network rules are in place.
    lock: tokio::sync::Mutex<bool>,
}

/// The filter chain that lets the pods of `bridge` through FORWARD (iptables allows 28
/// characters: the prefix leaves 17 for the bridge name, which Linux caps at 15).
pub fn forward_chain(bridge: &str) -> String {
    format!("SKIFF-FWD-{bridge}")
}

/// The nat chain that masquerades what the pods of `bridge` send out of the cluster.
pub fn masquerade_chain(bridge: &str) -> String {
    format!("SKIFF-MASQ-{bridge}")
}

const JUMP_COMMENT: &str = "skiff pod network";

/// The built-in chains that jump to ours: (table, built-in chain, our chain).
fn pod_network_jumps(bridge: &str) -> [(&'static str, &'static str, String); 2] {
    [
        ("filter", "FORWARD", forward_chain(bridge)),
        ("nat", "POSTROUTING", masquerade_chain(bridge)),
    ]
}

/// The rules of the two chains of `bridge`, as one `iptables-restore --noflush` payload that
/// declares (creates, or flushes) and fills both atomically.
fn pod_network_payload(bridge: &str, pod_cidr: &str, cluster_cidr: Option<&str>) -> String {
    let (fwd, masq) = (forward_chain(bridge), masquerade_chain(bridge));
    let mut out = format!(
        "*filter\n:{fwd} - [0:0]\n\
         -A {fwd} -i {bridge} -m comment --comment \"from the pods of {bridge}\" -j ACCEPT\n\
         -A {fwd} -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"replies to the pods of {bridge}\" -j ACCEPT\n\
         COMMIT\n\
         *nat\n:{masq} - [0:0]\n\
         -A {masq} ! -s {pod_cidr} -j RETURN\n\
         -A {masq} -d {pod_cidr} -m comment --comment \"within the pods of {bridge}\" -j RETURN\n"
    );
    if let Some(cidr) = cluster_cidr {
        // Pods see each other's real addresses across nodes (Kubernetes' network model).
        out.push_str(&format!(
            "-A {masq} -d {cidr} -m comment --comment \"to the other pods of the cluster\" -j RETURN\n"
        ));
    }
    out.push_str(&format!(
        "-A {masq} ! -d 224.0.0.0/4 -m comment --comment \"from the pods of {bridge} to elsewhere\" -j MASQUERADE\n\
         COMMIT\n"
    ));
    out
}

/// Create (or refill) the chains of `bridge` and the jumps to them: FORWARD accepts what the
/// pods send and the replies to it; POSTROUTING masquerades what they send outside
/// `pod_cidr` and `cluster_cidr` (RETURN, not ACCEPT, for the rest, so the service proxy's
/// masquerading of hairpin traffic still happens).
pub async fn ensure_pod_network_rules(
    bridge: &str,
    pod_cidr: &str,
    cluster_cidr: Option<&str>,
) -> anyhow::Result<()> {
    iptables::restore(&pod_network_payload(bridge, pod_cidr, cluster_cidr)).await?;
    for (table, from, to) in pod_network_jumps(bridge) {
        let jump = ["-m", "comment", "--comment", JUMP_COMMENT, "-j", &to];
        let check = iptables(&[&["-t", table, "-C", from][..], &jump].concat()).await?;
        if !check.status.success() {
            let out = iptables(&[&["-t", table, "-I", from, "1"][..], &jump].concat()).await?;
            if !out.status.success() {
                bail!(
                    "inserting the {table} {from} jump to {to}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
    }
    Ok(())
}

/// Remove the jumps and chains of `bridge` (nothing to do when they do not exist).
pub async fn remove_pod_network_rules(bridge: &str) -> anyhow::Result<()> {
    for (table, from, chain) in pod_network_jumps(bridge) {
        let jump = ["-m", "comment", "--comment", JUMP_COMMENT, "-j", &chain];
        // `-D` removes one copy per call; a jump inserted twice by racing agents goes too.
        while iptables(&[&["-t", table, "-D", from][..], &jump].concat())
            .await?
            .status
            .success()
        {}
        let exists = iptables(&["-t", table, "-n", "-L", &chain])
            .await?
            .status
            .success();
        if exists {
            for op in ["-F", "-X"] {
                let out = iptables(&["-t", table, op, &chain]).await?;
                if !out.status.success() {
                    bail!(
                        "iptables -t {table} {op} {chain}: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
            }
        }
    }
    Ok(())
}

/// The plugin configurations of one sandbox, in ADD order, each with its interface name.
fn plugin_configs(
    cfg: &NetworkConfig,
    pod_cidr: &str,
    ports: &[PortMapping],
) -> Vec<(String, Value)> {
    let mut out = vec![
        (
            "lo".to_string(),
            json!({"cniVersion": CNI_VERSION, "name": format!("{NETWORK_NAME}-lo"), "type": "loopback"}),
        ),
        (
            "eth0".to_string(),
            json!({
                "cniVersion": CNI_VERSION,
                "name": NETWORK_NAME,
                "type": "bridge",
                "bridge": cfg.bridge,
                "isGateway": true,
                // The agent masquerades itself, sparing traffic to the cluster's other pods
                // (the plugin would masquerade everything leaving the node's own subnet).
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": cfg.state_dir.join("ipam").display().to_string(),
                },
            }),
        ),
    ];
    if !ports.is_empty() {
        let mappings: Vec<Value> = ports
            .iter()
            .map(|p| {
                let mut m = json!({
                    "hostPort": p.host_port,
                    "containerPort": p.container_port,
                    "protocol": p.protocol.to_lowercase(),
                });
                if let Some(ip) = &p.host_ip {
                    m["hostIP"] = json!(ip);
                }
                m
            })
            .collect();
        out.push((
            "eth0".to_string(),
            json!({
                "cniVersion": CNI_VERSION,
                "name": NETWORK_NAME,
                "type": "portmap",
                "capabilities": {"portMappings": true},
                "snat": true,
                "runtimeConfig": {"portMappings": mappings},
            }),
        ));
    }
    out
}

/// The first IPv4 address of a CNI result (`ips[].address` is `a.b.c.d/len`).
pub fn result_ipv4(result: &Value) -> Option<String> {
    result["ips"].as_array()?.iter().find_map(|ip| {
        let addr = ip["address"].as_str()?;
        let host = addr.split('/').next()?;
        host.parse::<std::net::Ipv4Addr>()
            .ok()
            .map(|a| a.to_string())
    })
}

impl Network {
    pub fn new(config: NetworkConfig) -> Network {
        Network {
            config,
            lock: tokio::sync::Mutex::new(false),
        }
    }

    pub fn sandbox_dir(&self, pod_uid: &str) -> PathBuf {
        self.config.state_dir.join("sandboxes").join(pod_uid)
    }

    /// Pod UIDs that have a sandbox on this node.
    pub fn sandboxes(&self) -> Vec<String> {
        std::fs::read_dir(self.config.state_dir.join("sandboxes"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Tear down every sandbox left in the state dir (CNI DEL, namespace unmounted), e.g. by
    /// an agent that was killed with pods still on the node; the errors of those that failed.
    pub async fn remove_all(&self) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        for uid in self.sandboxes() {
            if let Err(e) = self.remove(&uid).await {
                errors.push(e.context(format!("removing the sandbox of pod {uid}")));
            }
        }
        errors
    }

    /// The pod's sandbox: the existing one (after an agent restart too), or a new one.
    pub async fn ensure(
        &self,
        pod_uid: &str,
        pod_cidr: &str,
        ports: &[PortMapping],
    ) -> anyhow::Result<Sandbox> {
        let mut rules_set = self.lock.lock().await;
        let dir = self.sandbox_dir(pod_uid);
        let result_file = dir.join("result.json");
        if let Ok(text) = std::fs::read_to_string(&result_file) {
            if let Ok(result) = serde_json::from_str::<Value>(&text) {
                return Ok(Sandbox {
                    ip: result_ipv4(&result),
                    dir,
                });
            }
        }
        // Anything half made by an interrupted attempt goes first.
        if dir.exists() {
            self.remove_locked(pod_uid).await?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let made = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || create_namespaces(&dir)).await?
        };
        if let Err(e) = made {
            let _ = unmount_namespaces(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        if !*rules_set {
            // Before the first pod starts, so none of its traffic is dropped or left unmasked.
            let cluster = self.config.cluster_cidr.as_deref();
            match ensure_pod_network_rules(&self.config.bridge, pod_cidr, cluster).await {
                Ok(()) => *rules_set = true,
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "setting up iptables rules for the pods")
                }
            }
        }
        let configs = plugin_configs(&self.config, pod_cidr, ports);
        std::fs::write(
            dir.join("configs.json"),
            serde_json::to_vec_pretty(&json!(configs
                .iter()
                .map(|(ifname, c)| json!({"ifname": ifname, "config": c}))
                .collect::<Vec<_>>()))?,
        )?;
        let netns = dir.join("net");
        let mut prev: Option<Value> = None;
        let mut eth0_result = None;
        for (ifname, config) in &configs {
            let mut config = config.clone();
            if let Some(p) = &prev {
                if ifname != "lo" {
                    config["prevResult"] = p.clone();
                }
            }
            let out = self
                .exec_plugin("ADD", pod_uid, &netns, ifname, &config)
                .await;
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    let _ = self.remove_locked(pod_uid).await;
                    return Err(e);
                }
            };
            if ifname != "lo" {
                prev = Some(out.clone());
                eth0_result = Some(out);
            }
        }
        let result = eth0_result.unwrap_or(json!({}));
        let ip = result_ipv4(&result);
        // Written last: its presence marks a complete sandbox.
        let tmp = dir.join("result.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&result)?)?;
        std::fs::rename(&tmp, &result_file)?;
        info!(pod_uid, ip = ?ip, "pod sandbox ready");
        Ok(Sandbox { dir, ip })
    }

    /// CNI DEL for every plugin (reverse order), unmount the namespaces, remove the directory.
    pub async fn remove(&self, pod_uid: &str) -> anyhow::Result<()> {
        let _guard = self.lock.lock().await;
        self.remove_locked(pod_uid).await
    }

    async fn remove_locked(&self, pod_uid: &str) -> anyhow::Result<()> {
        let dir = self.sandbox_dir(pod_uid);
        if !dir.exists() {
            return Ok(());
        }
        let configs: Vec<Value> = std::fs::read(dir.join("configs.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let prev: Option<Value> = std::fs::read(dir.join("result.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let netns = dir.join("net");
        let mut first_error = None;
        for entry in configs.iter().rev() {
            let ifname = entry["ifname"].as_str().unwrap_or("eth0");
            let mut config = entry["config"].clone();
            if let (Some(p), true) = (&prev, ifname != "lo") {
                config["prevResult"] = p.clone();
            }
            if let Err(e) = self
                .exec_plugin("DEL", pod_uid, &netns, ifname, &config)
                .await
            {
                warn!(pod_uid, error = %format!("{e:#}"), "CNI DEL failed");
                first_error.get_or_insert(e);
            }
        }
        unmount_namespaces(&dir)?;
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        debug!(pod_uid, "pod sandbox removed");
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Run one plugin per the CNI spec; returns its result (ADD) or `null`.
    async fn exec_plugin(
        &self,
        command: &str,
        container_id: &str,
        netns: &Path,
        ifname: &str,
        config: &Value,
    ) -> anyhow::Result<Value> {
        let kind = config["type"].as_str().unwrap_or_default().to_string();
        let binary = self.config.cni_bin_dir.join(&kind);
        // DEL must succeed when the namespace is already gone (CNI spec): pass no path then.
        let netns_env = if netns.exists() {
            netns.display().to_string()
        } else {
            String::new()
        };
        let mut child = tokio::process::Command::new(&binary)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container_id)
            .env("CNI_NETNS", netns_env)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", &self.config.cni_bin_dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("running CNI plugin {}", binary.display()))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(&serde_json::to_vec(config)?).await?;
        drop(stdin);
        let out = tokio::time::timeout(PLUGIN_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| anyhow!("CNI plugin {kind} {command} timed out"))??;
        let parsed: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if !out.status.success() {
            let msg = parsed
                .as_ref()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["msg"].as_str().unwrap_or_default(),
                        e["details"].as_str().unwrap_or_default()
                    )
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned());
            bail!("CNI plugin {kind} {command} failed: {}", msg.trim());
        }
        Ok(parsed.unwrap_or(Value::Null))
    }
}

/// Create new net, IPC and UTS namespaces and pin each with a bind mount in `dir`.
fn create_namespaces(dir: &Path) -> anyhow::Result<()> {
    let dir = dir.to_path_buf();
    // A dedicated thread: unshare(2) affects only the calling thread's namespaces.
    std::thread::spawn(move || -> anyhow::Result<()> {
        // SAFETY: unshare on this thread only; it exits right after pinning the namespaces.
        let rc =
            unsafe { libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("unshare(net, ipc, uts)");
        }
        // SAFETY: no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        for kind in NS_KINDS {
            let target = dir.join(kind);
            std::fs::File::create(&target)
                .with_context(|| format!("creating {}", target.display()))?;
            let source = format!("/proc/{}/task/{tid}/ns/{kind}", std::process::id());
            bind_mount(Path::new(&source), &target)?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| anyhow!("namespace thread panicked"))?
}

fn cstring(p: &Path) -> anyhow::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    Ok(std::ffi::CString::new(p.as_os_str().as_bytes())?)
}

fn bind_mount(source: &Path, target: &Path) -> anyhow::Result<()> {
    let (s, t) = (cstring(source)?, cstring(target)?);
    // SAFETY: valid NUL-terminated paths; a bind mount has no data argument.
    let rc = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!("bind-mounting {} on {}", source.display(), target.display())
        });
    }
    Ok(())
}

/// Unmount the namespace files of a sandbox (those that are mounted).
fn unmount_namespaces(dir: &Path) -> anyhow::Result<()> {
    for kind in NS_KINDS {
        let target = dir.join(kind);
        if !target.exists() {
            continue;
        }
        let t = cstring(&target)?;
        // SAFETY: valid NUL-terminated path.
        let rc = unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            // EINVAL: not a mount point (never mounted, or already unmounted).
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err).with_context(|| format!("unmounting {}", target.display()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NetworkConfig {
        NetworkConfig {
            cni_bin_dir: "/usr/lib/cni".into(),
            bridge: "skiff7".into(),
            state_dir: "/var/lib/skiff-agent/network".into(),
            cluster_cidr: None,
        }
    }

    #[test]
    fn configs_chain_loopback_bridge_and_portmap() {
        let none = plugin_configs(&cfg(), "10.244.7.0/24", &[]);
        assert_eq!(none.len(), 2);
        assert_eq!(none[0].0, "lo");
        assert_eq!(none[0].1["type"], "loopback");
        let bridge = &none[1].1;
        assert_eq!(none[1].0, "eth0");
        assert_eq!(bridge["bridge"], "skiff7");
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["ipam"]["type"], "host-local");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.7.0/24");
        assert_eq!(
            bridge["ipam"]["dataDir"],
            "/var/lib/skiff-agent/network/ipam"
        );
        let ports = [PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "TCP".into(),
            host_ip: None,
        }];
        let with = plugin_configs(&cfg(), "10.244.7.0/24", &ports);
        assert_eq!(with.len(), 3);
        assert_eq!(with[2].1["type"], "portmap");
        assert_eq!(
            with[2].1["runtimeConfig"]["portMappings"][0],
            json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp"})
        );
    }

    #[test]
    fn pod_network_rules_accept_forwarding_and_spare_cluster_traffic_from_masquerade() {
        let p = pod_network_payload("skiff7", "10.244.7.0/24", Some("10.244.0.0/16"));
        assert!(p.starts_with("*filter\n:SKIFF-FWD-skiff7 - [0:0]\n"));
        assert!(p.contains("-A SKIFF-FWD-skiff7 -i skiff7 "));
        assert!(
            p.contains("-A SKIFF-FWD-skiff7 -o skiff7 -m conntrack --ctstate RELATED,ESTABLISHED ")
        );
        let nat: Vec<&str> = p
            .lines()
            .skip_while(|l| *l != "*nat")
            .filter(|l| l.starts_with("-A "))
            .collect();
        assert_eq!(nat.len(), 4, "{p}");
        assert!(nat[0].ends_with("! -s 10.244.7.0/24 -j RETURN"));
        assert!(nat[1].contains("-d 10.244.7.0/24 ") && nat[1].ends_with("-j RETURN"));
        assert!(nat[2].contains("-d 10.244.0.0/16 ") && nat[2].ends_with("-j RETURN"));
        assert!(nat[3].ends_with("-j MASQUERADE"));
        assert_eq!(p.matches("COMMIT").count(), 2);
        // Without a cluster CIDR only the node's own subnet is spared.
        let p = pod_network_payload("skiff7", "10.244.7.0/24", None);
        assert_eq!(p.matches("-j RETURN").count(), 2);
        assert!(forward_chain("skt99999x255").len() <= 28);
        assert!(masquerade_chain("abcdefghijklmno").len() <= 28);
    }

    #[test]
    fn result_gives_the_ipv4_address() {
        let r = json!({"cniVersion": "1.0.0", "ips": [
            {"address": "fd00::5/64", "interface": 2},
            {"address": "10.244.7.5/24", "gateway": "10.244.7.1", "interface": 2}
        ]});
        assert_eq!(result_ipv4(&r).as_deref(), Some("10.244.7.5"));
        assert_eq!(result_ipv4(&json!({})), None);
    }
}
