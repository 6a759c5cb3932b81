//! The service proxy's ruleset as a pure function of Services and EndpointSlices.
//!
//! Design follows kube-proxy's iptables mode (written anew): in the nat table,
//! `<P>-SERVICES` (jumped to from PREROUTING and OUTPUT) matches each ClusterIP:port and
//! external IP:port, and at its end sends traffic for the node's own addresses to
//! `<P>-NODEPORTS`. Each service port has a `<P>-SVC-<hash>` chain that picks one
//! `<P>-SEP-<hash>` endpoint chain with `-m statistic --mode random` (probability 1/n, then
//! 1/(n-1), ... so the spread is even), after `-m recent` checks when sessionAffinity is
//! ClientIP. Endpoint chains DNAT to the pod and mark hairpin traffic (a pod reaching itself)
//! for masquerade. NodePort and external-IP traffic goes through `<P>-EXT-<hash>`, which marks
//! it for masquerade first. `<P>-POSTROUTING` masquerades marked packets. In the filter
//! table, `<P>-SERVICES` rejects connections to service ports that have no endpoints (instead
//! of letting them time out), and `<P>-FORWARD` accepts marked forwarded packets.
//!
//! [`render`] produces one `iptables-restore --noflush` payload that re-declares (flushes) every
//! chain of ours, fills it, inserts the jump rules that are missing and deletes our chains that
//! are no longer needed: one atomic update.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use sha2::{Digest, Sha256};

use crate::servicecache::SERVICE_NAME_LABEL;

/// The longest chain prefix: `<prefix>-SVC-<12 hex>` must fit iptables' 28 characters.
pub const MAX_PREFIX_LEN: usize = 11;

/// One port of one Service with the endpoints traffic may go to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// The service port's name ("" when unnamed).
    pub port_name: String,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub cluster_ips: Vec<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    pub external_ips: Vec<Ipv4Addr>,
    /// sessionAffinity ClientIP: how long a client sticks to its endpoint, in seconds.
    pub affinity_timeout: Option<u32>,
    /// Sorted, without duplicates.
    pub endpoints: Vec<SocketAddrV4>,
}

impl ServicePort {
    /// `namespace/name:port` (as kube-proxy names a service port).
    pub fn key(&self) -> String {
        format!(
            "{}/{}:{}/{}",
            self.namespace, self.name, self.port_name, self.protocol
        )
    }
}

/// Whether a Service gets proxy rules: not headless, not ExternalName.
fn proxied(svc: &Service) -> bool {
    let Some(spec) = svc.spec.as_ref() else {
        return false;
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return false;
    }
    matches!(spec.cluster_ip.as_deref(), Some(ip) if !ip.is_empty() && ip != "None")
}

/// The service ports the proxy programs, from the Services and EndpointSlices it knows.
/// Endpoints are those ready; when none is ready, those serving while terminating (as
/// kube-proxy falls back to them). Only IPv4 is handled.
pub fn service_ports(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Vec<ServicePort> {
    // (namespace, service) -> slices
    let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        if s.address_type != "IPv4" {
            continue;
        }
        let ns = s.metadata.namespace.as_deref().unwrap_or("default");
        if let Some(svc) = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        {
            by_service.entry((ns, svc.as_str())).or_default().push(s);
        }
    }
    let mut out = Vec::new();
    for svc in services {
        if !proxied(svc) {
            continue;
        }
        let spec = svc.spec.as_ref().expect("proxied services have a spec");
        let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        let mut cluster_ips: Vec<Ipv4Addr> = spec
            .cluster_ips
            .iter()
            .flatten()
            .chain(spec.cluster_ip.iter())
            .filter_map(|ip| ip.parse().ok())
            .collect();
        cluster_ips.sort();
        cluster_ips.dedup();
        if cluster_ips.is_empty() {
            continue;
        }
        let external_ips: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .map(|t| t.clamp(1, 86400) as u32)
                .unwrap_or(10800)
        });
        let with_node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        let svc_slices = by_service.get(&(ns, name)).cloned().unwrap_or_default();
        for p in spec.ports.iter().flatten() {
            let protocol = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
            let port_name = p.name.clone().unwrap_or_default();
            let mut ready = BTreeSet::new();
            let mut terminating = BTreeSet::new();
            for slice in &svc_slices {
                let Some(sp) = slice.ports.iter().flatten().find(|sp| {
                    sp.name.as_deref().unwrap_or("") == port_name
                        && sp.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase() == protocol
                }) else {
                    continue;
                };
                let Some(target) = sp.port.and_then(|p| u16::try_from(p).ok()) else {
                    continue;
                };
                for ep in &slice.endpoints {
                    let Some(ip) = ep
                        .addresses
                        .first()
                        .and_then(|a| a.parse::<Ipv4Addr>().ok())
                    else {
                        continue;
                    };
                    let c = ep.conditions.as_ref();
                    let is_ready = c.and_then(|c| c.ready).unwrap_or(true);
                    let serving = c.and_then(|c| c.serving).unwrap_or(is_ready);
                    let is_terminating = c.and_then(|c| c.terminating).unwrap_or(false);
                    let addr = SocketAddrV4::new(ip, target);
                    if is_ready && !is_terminating {
                        ready.insert(addr);
                    } else if serving && is_terminating {
                        terminating.insert(addr);
                    }
                }
            }
            let endpoints = if ready.is_empty() { terminating } else { ready };
            out.push(ServicePort {
                namespace: ns.to_string(),
                name: name.to_string(),
                port_name,
                protocol,
                cluster_ips: cluster_ips.clone(),
                port: p.port as u16,
                node_port: p
                    .node_port
                    .filter(|_| with_node_ports)
                    .and_then(|n| u16::try_from(n).ok()),
                external_ips: external_ips.clone(),
                affinity_timeout,
                endpoints: endpoints.into_iter().collect(),
            });
        }
    }
    out.sort_by_key(|sp| sp.key());
    out
}

/// How rules are rendered: names, the masquerade mark, and which traffic is masqueraded.
#[derive(Clone, Debug)]
pub struct RuleConfig {
    /// Every chain of ours starts with `<prefix>-`.
    pub prefix: String,
    /// The packet mark bit that asks `<prefix>-POSTROUTING` to masquerade.
    pub masquerade_mark: u32,
    /// Pod network of the cluster: traffic to a ClusterIP from outside it is masqueraded.
    pub cluster_cidr: Option<String>,
    /// Destinations (CIDRs) on which NodePorts answer; empty: every local address except
    /// loopback.
    pub nodeport_addresses: Vec<String>,
}

impl RuleConfig {
    pub fn chain(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }
}

/// What iptables holds now, as far as the proxy cares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Existing {
    /// table -> our chains in it.
    pub chains: BTreeMap<String, BTreeSet<String>>,
    /// table -> rules (as `iptables-save` prints them, `-A CHAIN ...`) in chains not ours that
    /// jump to one of ours.
    pub jumps: BTreeMap<String, Vec<String>>,
}

/// Whether `name` is one of the chains the proxy makes with `prefix`. Others may share the
/// prefix (the agent's pod network chains, `SKIFF-FWD-<bridge>` with the default prefix) and
/// must be left alone: claiming them would make a sync try to delete chains still in use.
pub fn is_proxy_chain(name: &str, prefix: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    matches!(
        rest,
        "SERVICES" | "POSTROUTING" | "FORWARD" | "NODEPORTS" | "MARK-MASQ"
    ) || ["SVC-", "EXT-", "SEP-"]
        .iter()
        .any(|per_port| rest.starts_with(per_port))
}

impl Existing {
    /// Parse `iptables-save` output, keeping what belongs to the proxy's chains.
    pub fn parse(save: &str, prefix: &str) -> Existing {
        let ours = |c: &str| is_proxy_chain(c, prefix);
        let mut ex = Existing::default();
        let mut table = String::new();
        for line in save.lines() {
            if let Some(t) = line.strip_prefix('*') {
                table = t.trim().to_string();
            } else if let Some(decl) = line.strip_prefix(':') {
                let name = decl.split_whitespace().next().unwrap_or_default();
                if ours(name) {
                    ex.chains
                        .entry(table.clone())
                        .or_default()
                        .insert(name.to_string());
                }
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let chain = rule.split_whitespace().next().unwrap_or_default();
                let target = jump_target(rule);
                if !ours(chain) && target.is_some_and(ours) {
                    ex.jumps
                        .entry(table.clone())
                        .or_default()
                        .push(line.to_string());
                }
            }
        }
        ex
    }

    fn has_jump(&self, table: &str, from: &str, to: &str) -> bool {
        self.jumps.get(table).is_some_and(|rules| {
            rules.iter().any(|r| {
                r.split_whitespace().nth(1) == Some(from)
                    && jump_target(r.strip_prefix("-A ").unwrap_or(r)) == Some(to)
            })
        })
    }
}

/// The `-j TARGET` of a rule.
fn jump_target(rule: &str) -> Option<&str> {
    let mut words = rule.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-j" || w == "--jump" {
            return words.next();
        }
    }
    None
}

/// 12 hex digits of SHA-256: short enough for chain names, long enough not to collide.
fn short_hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02X}")).collect()
}

/// The chain of a service port.
pub fn svc_chain(cfg: &RuleConfig, sp: &ServicePort) -> String {
    cfg.chain(&format!("SVC-{}", short_hash(&sp.key())))
}

fn ext_chain(cfg: &RuleConfig, sp: &ServicePort) -> String {
    cfg.chain(&format!("EXT-{}", short_hash(&sp.key())))
}

fn sep_chain(cfg: &RuleConfig, sp: &ServicePort, ep: &SocketAddrV4) -> String {
    cfg.chain(&format!(
        "SEP-{}",
        short_hash(&format!("{}>{ep}", sp.key()))
    ))
}

/// The built-in chains that jump to ours: (table, built-in chain, our chain, extra matches).
fn jump_rules(cfg: &RuleConfig) -> Vec<(&'static str, &'static str, String, &'static str)> {
    let nat_services = cfg.chain("SERVICES");
    vec![
        ("nat", "PREROUTING", nat_services.clone(), ""),
        ("nat", "OUTPUT", nat_services, ""),
        ("nat", "POSTROUTING", cfg.chain("POSTROUTING"), ""),
        (
            "filter",
            "INPUT",
            cfg.chain("SERVICES"),
            "-m conntrack --ctstate NEW ",
        ),
        (
            "filter",
            "FORWARD",
            cfg.chain("SERVICES"),
            "-m conntrack --ctstate NEW ",
        ),
        (
            "filter",
            "OUTPUT",
            cfg.chain("SERVICES"),
            "-m conntrack --ctstate NEW ",
        ),
        ("filter", "FORWARD", cfg.chain("FORWARD"), ""),
    ]
}

fn proto_match(sp: &ServicePort, port: u16) -> String {
    format!("-p {p} -m {p} --dport {port}", p = sp.protocol)
}

/// The full `iptables-restore --noflush` payload for `ports`, given what exists now.
pub fn render(cfg: &RuleConfig, ports: &[ServicePort], existing: &Existing) -> String {
    let mark = format!("{:#x}", cfg.masquerade_mark);
    let mut nat_chains: Vec<String> = ["SERVICES", "NODEPORTS", "POSTROUTING", "MARK-MASQ"]
        .iter()
        .map(|c| cfg.chain(c))
        .collect();
    let filter_chains: Vec<String> = vec![cfg.chain("SERVICES"), cfg.chain("FORWARD")];
    let mut nat = String::new();
    let mut filter = String::new();
    let services = cfg.chain("SERVICES");
    let nodeports = cfg.chain("NODEPORTS");
    let masq = cfg.chain("MARK-MASQ");

    let _ = writeln!(nat, "-A {masq} -j MARK --or-mark {mark}");
    let post = cfg.chain("POSTROUTING");
    let _ = writeln!(
        nat,
        "-A {post} -m mark ! --mark {mark}/{mark} -j RETURN\n\
         -A {post} -j MARK --xor-mark {mark}\n\
         -A {post} -m comment --comment \"skiff service traffic requiring SNAT\" -j MASQUERADE"
    );
    let _ = writeln!(
        filter,
        "-A {} -m mark --mark {mark}/{mark} -j ACCEPT",
        cfg.chain("FORWARD")
    );

    for sp in ports {
        let key = sp.key();
        let comment = format!("-m comment --comment \"{key}\"");
        let svc = svc_chain(cfg, sp);
        let ext = ext_chain(cfg, sp);
        let external = sp.node_port.is_some() || !sp.external_ips.is_empty();
        if sp.endpoints.is_empty() {
            for ip in &sp.cluster_ips {
                let _ = writeln!(
                    filter,
                    "-A {services} {comment} -d {ip}/32 {} -j REJECT --reject-with icmp-port-unreachable",
                    proto_match(sp, sp.port)
                );
            }
            for ip in &sp.external_ips {
                let _ = writeln!(
                    filter,
                    "-A {services} {comment} -d {ip}/32 {} -j REJECT --reject-with icmp-port-unreachable",
                    proto_match(sp, sp.port)
                );
            }
            if let Some(np) = sp.node_port {
                let _ = writeln!(
                    filter,
                    "-A {services} {comment} -m addrtype --dst-type LOCAL {} -j REJECT --reject-with icmp-port-unreachable",
                    proto_match(sp, np)
                );
            }
            continue;
        }
        nat_chains.push(svc.clone());
        for ip in &sp.cluster_ips {
            let _ = writeln!(
                nat,
                "-A {services} {comment} -d {ip}/32 {} -j {svc}",
                proto_match(sp, sp.port)
            );
        }
        if external {
            nat_chains.push(ext.clone());
            for ip in &sp.external_ips {
                let _ = writeln!(
                    nat,
                    "-A {services} {comment} -d {ip}/32 {} -j {ext}",
                    proto_match(sp, sp.port)
                );
            }
            if let Some(np) = sp.node_port {
                let _ = writeln!(
                    nat,
                    "-A {nodeports} {comment} {} -j {ext}",
                    proto_match(sp, np)
                );
            }
            let _ = writeln!(nat, "-A {ext} -j {masq}\n-A {ext} -j {svc}");
        }
        if let Some(cidr) = &cfg.cluster_cidr {
            for ip in &sp.cluster_ips {
                let _ = writeln!(
                    nat,
                    "-A {svc} ! -s {cidr} -d {ip}/32 {} -j {masq}",
                    proto_match(sp, sp.port)
                );
            }
        }
        let seps: Vec<String> = sp
            .endpoints
            .iter()
            .map(|ep| sep_chain(cfg, sp, ep))
            .collect();
        if let Some(timeout) = sp.affinity_timeout {
            for sep in &seps {
                let _ = writeln!(
                    nat,
                    "-A {svc} -m recent --name {sep} --mask 255.255.255.255 --rsource --rcheck --seconds {timeout} --reap -j {sep}"
                );
            }
        }
        let n = seps.len();
        for (i, (sep, ep)) in seps.iter().zip(&sp.endpoints).enumerate() {
            if i + 1 < n {
                let _ = writeln!(
                    nat,
                    "-A {svc} -m comment --comment \"{key} -> {ep}\" -m statistic --mode random --probability {:.10} -j {sep}",
                    1.0 / (n - i) as f64
                );
            } else {
                let _ = writeln!(
                    nat,
                    "-A {svc} -m comment --comment \"{key} -> {ep}\" -j {sep}"
                );
            }
            nat_chains.push(sep.clone());
            let _ = writeln!(nat, "-A {sep} -s {}/32 -j {masq}", ep.ip());
            let recent = if sp.affinity_timeout.is_some() {
                format!("-m recent --name {sep} --mask 255.255.255.255 --rsource --set ")
            } else {
                String::new()
            };
            let _ = writeln!(
                nat,
                "-A {sep} -p {p} -m {p} {recent}-j DNAT --to-destination {ep}",
                p = sp.protocol
            );
        }
    }
    // Last in SERVICES: traffic for this node's own addresses may be for a NodePort.
    if cfg.nodeport_addresses.is_empty() {
        let _ = writeln!(
            nat,
            "-A {services} -m comment --comment \"skiff service nodeports\" ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j {nodeports}"
        );
    } else {
        for cidr in &cfg.nodeport_addresses {
            let _ = writeln!(
                nat,
                "-A {services} -m comment --comment \"skiff service nodeports\" -d {cidr} -j {nodeports}"
            );
        }
    }

    let mut out = String::new();
    for (table, chains, body) in [
        ("nat", &nat_chains, &nat),
        ("filter", &filter_chains, &filter),
    ] {
        let wanted: BTreeSet<&String> = chains.iter().collect();
        let stale: Vec<&String> = existing
            .chains
            .get(table)
            .map(|c| c.iter().filter(|c| !wanted.contains(c)).collect())
            .unwrap_or_default();
        let _ = writeln!(out, "*{table}");
        for c in chains.iter().chain(stale.iter().copied()) {
            let _ = writeln!(out, ":{c} - [0:0]");
        }
        for (t, from, to, matches) in jump_rules(cfg) {
            if t == table && !existing.has_jump(table, from, &to) {
                let _ = writeln!(
                    out,
                    "-I {from} 1 {matches}-m comment --comment \"skiff service proxy\" -j {to}"
                );
            }
        }
        out.push_str(body);
        for c in stale {
            let _ = writeln!(out, "-X {c}");
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// The payload that removes everything of ours `existing` shows: jump rules first, then the
/// chains (flushed, then deleted). `None` when there is nothing to remove.
pub fn render_cleanup(existing: &Existing) -> Option<String> {
    let tables: BTreeSet<&String> = existing
        .chains
        .keys()
        .chain(existing.jumps.keys())
        .collect();
    if tables.is_empty() {
        return None;
    }
    let mut out = String::new();
    for table in tables {
        let _ = writeln!(out, "*{table}");
        let chains = existing.chains.get(table).cloned().unwrap_or_default();
        for c in &chains {
            let _ = writeln!(out, ":{c} - [0:0]");
        }
        for rule in existing.jumps.get(table).into_iter().flatten() {
            if let Some(spec) = rule.strip_prefix("-A ") {
                let _ = writeln!(out, "-D {spec}");
            }
        }
        for c in &chains {
            let _ = writeln!(out, "-X {c}");
        }
        out.push_str("COMMIT\n");
    }
    Some(out)
}

/// The endpoints each service port sends traffic to, read back from `iptables-save` output: the
/// `<prefix>-SVC-...` rules carry the comment `"<service port key> -> <endpoint>"` (see
/// [`render`]). Tests and tools use it to know what the proxy has really applied, not what it
/// was asked to apply.
pub fn programmed_endpoints(save: &str, prefix: &str) -> BTreeMap<String, BTreeSet<SocketAddrV4>> {
    let svc_rule = format!("-A {prefix}-SVC-");
    let mut out: BTreeMap<String, BTreeSet<SocketAddrV4>> = BTreeMap::new();
    let mut in_nat = false;
    for line in save.lines() {
        if let Some(t) = line.strip_prefix('*') {
            in_nat = t.trim() == "nat";
            continue;
        }
        if !in_nat || !line.starts_with(&svc_rule) {
            continue;
        }
        let Some((_, rest)) = line.split_once("--comment \"") else {
            continue;
        };
        let Some((comment, _)) = rest.split_once('"') else {
            continue;
        };
        if let Some((key, ep)) = comment.split_once(" -> ") {
            if let Ok(ep) = ep.parse() {
                out.entry(key.to_string()).or_default().insert(ep);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn slice(v: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn web() -> Arc<Service> {
        svc(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}]}
        }))
    }

    fn web_slice(eps: &[(&str, bool, bool)]) -> Arc<EndpointSlice> {
        let endpoints: Vec<_> = eps
            .iter()
            .map(|(ip, ready, terminating)| {
                json!({"addresses": [ip], "conditions": {"ready": ready, "serving": *ready || *terminating, "terminating": terminating}})
            })
            .collect();
        slice(json!({
            "metadata": {"name": "web-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }))
    }

    fn cfg() -> RuleConfig {
        RuleConfig {
            prefix: "SKIFF".into(),
            masquerade_mark: 0x4000,
            cluster_cidr: Some("10.244.0.0/16".into()),
            nodeport_addresses: vec![],
        }
    }

    #[test]
    fn ready_endpoints_with_fallback_to_terminating() {
        let ports = service_ports(
            &[web()],
            &[web_slice(&[
                ("10.244.0.3", true, false),
                ("10.244.0.2", true, false),
                ("10.244.0.4", false, false),
                ("10.244.0.5", false, true),
            ])],
        );
        assert_eq!(ports.len(), 1);
        let p = &ports[0];
        assert_eq!(p.key(), "default/web:http/tcp");
        assert_eq!(p.port, 80);
        assert_eq!(p.node_port, Some(30080));
        assert_eq!(
            p.endpoints,
            [
                "10.244.0.2:8080".parse().unwrap(),
                "10.244.0.3:8080".parse().unwrap()
            ]
        );
        let only_terminating =
            service_ports(&[web()], &[web_slice(&[("10.244.0.5", false, true)])]);
        assert_eq!(
            only_terminating[0].endpoints,
            ["10.244.0.5:8080".parse::<SocketAddrV4>().unwrap()]
        );
        let headless = svc(json!({"metadata": {"name": "h", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}));
        assert!(service_ports(&[headless], &[]).is_empty());
        // A ClusterIP service ignores a stray nodePort.
        let plain = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.11", "ports": [{"name": "http", "port": 80, "nodePort": 30001}]}}));
        assert_eq!(service_ports(&[plain], &[])[0].node_port, None);
    }

    #[test]
    fn even_spread_hairpin_and_nodeport() {
        let ports = service_ports(
            &[web()],
            &[web_slice(&[
                ("10.244.0.2", true, false),
                ("10.244.0.3", true, false),
                ("10.244.0.4", true, false),
            ])],
        );
        let out = render(&cfg(), &ports, &Existing::default());
        let svc = svc_chain(&cfg(), &ports[0]);
        assert!(svc.len() <= 28, "{svc}");
        let rules: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with(&format!("-A {svc} ")))
            .collect();
        assert_eq!(rules.len(), 4, "{out}");
        assert!(rules[0].contains(
            "! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j SKIFF-MARK-MASQ"
        ));
        assert!(rules[1].contains("--probability 0.3333333333 -j SKIFF-SEP-"));
        assert!(rules[2].contains("--probability 0.5000000000 -j SKIFF-SEP-"));
        assert!(!rules[3].contains("statistic"));
        assert!(out.contains("-s 10.244.0.2/32 -j SKIFF-MARK-MASQ"));
        assert!(out.contains("-p tcp -m tcp -j DNAT --to-destination 10.244.0.4:8080"));
        assert!(out.contains(&format!(
            "-A SKIFF-SERVICES -m comment --comment \"default/web:http/tcp\" -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j {svc}"
        )));
        assert!(out.contains("-A SKIFF-NODEPORTS -m comment --comment \"default/web:http/tcp\" -p tcp -m tcp --dport 30080 -j SKIFF-EXT-"));
        assert!(out.contains("--dst-type LOCAL -j SKIFF-NODEPORTS"));
        // Every chain the ruleset declares is one the proxy knows as its own (for cleanup).
        for decl in out.lines().filter_map(|l| l.strip_prefix(':')) {
            let name = decl.split_whitespace().next().unwrap();
            assert!(is_proxy_chain(name, "SKIFF"), "{name}");
        }
        // Jumps are inserted because none exists; the filter table accepts marked forwards.
        assert!(out.contains(
            "-I PREROUTING 1 -m comment --comment \"skiff service proxy\" -j SKIFF-SERVICES"
        ));
        assert!(out.contains(
            "-I OUTPUT 1 -m comment --comment \"skiff service proxy\" -j SKIFF-SERVICES"
        ));
        assert!(out.contains("-A SKIFF-FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT"));
        assert!(
            out.contains("-A SKIFF-POSTROUTING -j MASQUERADE") || out.contains("-j MASQUERADE")
        );
        assert_eq!(out.matches("COMMIT").count(), 2);
    }

    #[test]
    fn affinity_uses_recent_and_no_endpoints_rejects() {
        let mut s: Service = (*web()).clone();
        let spec = s.spec.as_mut().unwrap();
        spec.session_affinity = Some("ClientIP".into());
        let ports = service_ports(
            &[Arc::new(s)],
            &[web_slice(&[
                ("10.244.0.2", true, false),
                ("10.244.0.3", true, false),
            ])],
        );
        assert_eq!(ports[0].affinity_timeout, Some(10800));
        let out = render(&cfg(), &ports, &Existing::default());
        assert_eq!(out.matches("--rcheck --seconds 10800 --reap").count(), 2);
        assert_eq!(out.matches("--rsource --set -j DNAT").count(), 2);

        let empty = service_ports(&[web()], &[]);
        let out = render(&cfg(), &empty, &Existing::default());
        assert!(!out.contains("SKIFF-SVC-"));
        assert!(out.contains("-A SKIFF-SERVICES -m comment --comment \"default/web:http/tcp\" -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j REJECT"));
        assert!(out.contains("--dst-type LOCAL -p tcp -m tcp --dport 30080 -j REJECT"));
    }

    #[test]
    fn existing_jumps_are_kept_and_stale_chains_deleted() {
        let save = "\
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:SKIFF-SERVICES - [0:0]
:SKIFF-SVC-OLD - [0:0]
:SKIFFY-OTHER - [0:0]
:SKIFF-MASQ-skiff0 - [0:0]
-A PREROUTING -m comment --comment \"skiff service proxy\" -j SKIFF-SERVICES
-A OUTPUT -m comment --comment \"skiff service proxy\" -j SKIFF-SERVICES
-A OUTPUT -j SKIFFY-OTHER
-A POSTROUTING -m comment --comment \"skiff pod network\" -j SKIFF-MASQ-skiff0
-A SKIFF-SERVICES -j SKIFF-SVC-OLD
-A SKIFF-MASQ-skiff0 -j MASQUERADE
COMMIT
";
        let ex = Existing::parse(save, "SKIFF");
        assert_eq!(
            ex.chains["nat"],
            BTreeSet::from(["SKIFF-SERVICES".to_string(), "SKIFF-SVC-OLD".to_string()])
        );
        assert_eq!(ex.jumps["nat"].len(), 2);
        let out = render(&cfg(), &[], &ex);
        assert!(!out.contains("-I PREROUTING"));
        // nat OUTPUT has its jump; filter OUTPUT (conntrack NEW) does not yet.
        assert!(!out.contains("-I OUTPUT 1 -m comment"));
        assert!(out.contains("-I OUTPUT 1 -m conntrack --ctstate NEW -m comment"));
        assert!(out.contains("-I POSTROUTING 1"));
        assert!(out.contains(":SKIFF-SVC-OLD - [0:0]"));
        assert!(out.contains("-X SKIFF-SVC-OLD"));

        let clean = render_cleanup(&ex).unwrap();
        assert!(clean.contains(
            "-D PREROUTING -m comment --comment \"skiff service proxy\" -j SKIFF-SERVICES"
        ));
        assert!(clean.contains("-X SKIFF-SERVICES\n-X SKIFF-SVC-OLD\n"));
        assert!(!clean.contains("SKIFFY"));
        // The pod network's chain shares the default prefix but is not the proxy's.
        assert!(!out.contains("SKIFF-MASQ-skiff0") && !clean.contains("SKIFF-MASQ-skiff0"));
        assert_eq!(render_cleanup(&Existing::default()), None);
    }

    #[test]
    fn programmed_endpoints_read_back_what_render_wrote() {
        let ports = service_ports(
            &[web()],
            &[web_slice(&[
                ("10.244.0.2", true, false),
                ("10.244.0.3", true, false),
                ("10.244.0.4", false, false),
            ])],
        );
        // iptables-save prints rules as they were appended, with the table header first.
        let save = render(&cfg(), &ports, &Existing::default());
        let got = programmed_endpoints(&save, "SKIFF");
        assert_eq!(got.len(), 1);
        assert_eq!(
            got["default/web:http/tcp"],
            BTreeSet::from([
                "10.244.0.2:8080".parse().unwrap(),
                "10.244.0.3:8080".parse().unwrap()
            ])
        );
        // Another prefix's rules are not ours; no endpoints means no entry.
        assert!(programmed_endpoints(&save, "SKT1").is_empty());
        let empty = render(&cfg(), &service_ports(&[web()], &[]), &Existing::default());
        assert!(programmed_endpoints(&empty, "SKIFF").is_empty());
    }

    #[test]
    fn nodeport_addresses_restrict_the_nodeport_jump() {
        let mut c = cfg();
        c.nodeport_addresses = vec!["192.168.1.5/32".into()];
        c.prefix = "SKT12345A".into();
        let out = render(&c, &[], &Existing::default());
        assert!(out.contains("-A SKT12345A-SERVICES -m comment --comment \"skiff service nodeports\" -d 192.168.1.5/32 -j SKT12345A-NODEPORTS"));
        assert!(!out.contains("addrtype"));
    }
}
