//! ClusterIP and NodePort allocation. Each allocated address or port is an etcd key created in
//! the same transaction as the Service, so two creates (even on two apiservers) can never get
//! the same one: the loser's transaction fails and it picks again.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use ipnet::Ipv4Net;
use rand::Rng;
use serde_json::{json, Value};

use crate::error::Cause;
use crate::registry::strategy::{Allocation, AllocationPlan};

pub const SERVICE_IP_PREFIX: &str = "/registry/ranges/serviceips/";
pub const NODE_PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";

pub fn ip_key(ip: Ipv4Addr) -> String {
    format!("{SERVICE_IP_PREFIX}{ip}")
}

pub fn port_key(port: u16) -> String {
    format!("{NODE_PORT_PREFIX}{port}")
}

#[derive(Debug, Clone)]
pub struct Allocators {
    pub service_range: Ipv4Net,
    pub node_ports: RangeInclusive<u16>,
}

fn node_port_type(ty: &str) -> bool {
    ty == "NodePort" || ty == "LoadBalancer"
}

/// The IPs and ports a stored Service holds, as side keys.
pub fn held_keys(svc: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(ip) = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
    {
        keys.push(ip_key(ip));
    }
    for p in svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(np) = p["nodePort"].as_u64().filter(|&n| n > 0) {
            keys.push(port_key(np as u16));
        }
    }
    keys
}

impl Allocators {
    /// The first usable address, which Kubernetes gives to the `kubernetes` service.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.service_range.network()) + 1)
    }

    fn random_ip(&self, avoid: &HashSet<String>) -> Ipv4Addr {
        let base = u32::from(self.service_range.network());
        let size = 1u64 << (32 - self.service_range.prefix_len());
        let mut rng = rand::rng();
        loop {
            // Skip the network address, the first address (reserved) and the broadcast address.
            let offset = if size > 4 {
                rng.random_range(2..size - 1)
            } else {
                1
            };
            let ip = Ipv4Addr::from(base + offset as u32);
            if !avoid.contains(&ip_key(ip)) || size <= 4 {
                return ip;
            }
        }
    }

    fn random_port(&self, avoid: &HashSet<String>) -> u16 {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let port = rng.random_range(self.node_ports.clone());
            if !avoid.contains(&port_key(port)) {
                return port;
            }
        }
        *self.node_ports.start()
    }

    /// Fill in and reserve the Service's ClusterIP and NodePorts. `old` is the stored Service on
    /// update; `taken` are keys known to be in use (grows as transactions fail).
    fn plan_service(
        &self,
        svc: &mut Value,
        old: Option<&Value>,
        taken: &HashSet<String>,
    ) -> Result<AllocationPlan, Vec<Cause>> {
        let mut plan = AllocationPlan::default();
        let mut causes = Vec::new();
        let ty = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        let held: HashSet<String> = old.map(held_keys).unwrap_or_default().into_iter().collect();
        let spec = &mut svc["spec"];

        // ClusterIP: keep the old one on update; allocate on create unless headless/ExternalName.
        let old_ip = old
            .and_then(|o| o.pointer("/spec/clusterIP"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let requested_ip = spec["clusterIP"].as_str().unwrap_or("").to_string();
        if ty == "ExternalName" {
            if let Some(m) = spec.as_object_mut() {
                m.remove("clusterIP");
                m.remove("clusterIPs");
            }
        } else if requested_ip == "None" {
            spec["clusterIPs"] = json!(["None"]);
        } else if requested_ip.is_empty() && old_ip.as_deref().is_some_and(|ip| !ip.is_empty()) {
            let ip = old_ip.unwrap_or_default();
            spec["clusterIP"] = json!(ip);
            spec["clusterIPs"] = json!([ip]);
        } else if !held.contains(&requested_ip.parse().map(ip_key).unwrap_or_default()) {
            let ip = if requested_ip.is_empty() {
                self.random_ip(taken)
            } else {
                match requested_ip.parse::<Ipv4Addr>() {
                    Ok(ip) if self.service_range.contains(&ip) => {
                        plan.requested.insert(ip_key(ip));
                        ip
                    }
                    _ => {
                        causes.push(Cause::invalid(
                            "spec.clusterIPs",
                            format!("[]string{{\"{requested_ip}\"}}"),
                            &format!("failed to allocate IP {requested_ip}: the provided IP ({requested_ip}) is not in the valid range. The range of valid IPs is {}", self.service_range),
                        ));
                        return Err(causes);
                    }
                }
            };
            plan.side.create.push(ip_key(ip));
            spec["clusterIP"] = json!(ip.to_string());
            spec["clusterIPs"] = json!([ip.to_string()]);
        } else {
            spec["clusterIPs"] = json!([requested_ip]);
        }
        if ty != "ExternalName" {
            spec["ipFamilies"] = json!(["IPv4"]);
            spec["ipFamilyPolicy"] = json!("SingleStack");
        }

        // NodePorts: reuse the old port for the same service port, else allocate.
        let old_ports: Vec<Value> = old
            .and_then(|o| o.pointer("/spec/ports"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut in_use: HashSet<String> = taken.clone();
        let mut kept = HashSet::new();
        if let Some(ports) = spec["ports"].as_array_mut() {
            for (i, p) in ports.iter_mut().enumerate() {
                if !node_port_type(&ty) {
                    if let Some(m) = p.as_object_mut() {
                        m.remove("nodePort");
                    }
                    continue;
                }
                let mut port = p["nodePort"].as_u64().unwrap_or(0) as u16;
                if port == 0 {
                    port = old_ports
                        .iter()
                        .find(|o| o["port"] == p["port"] && o["protocol"] == p["protocol"])
                        .and_then(|o| o["nodePort"].as_u64())
                        .unwrap_or(0) as u16;
                }
                if port != 0 && !self.node_ports.contains(&port) {
                    causes.push(Cause::invalid(
                        format!("spec.ports[{i}].nodePort"),
                        port,
                        &format!("provided port is not in the valid range. The range of valid ports is {}-{}", self.node_ports.start(), self.node_ports.end()),
                    ));
                    continue;
                }
                let key = if port == 0 {
                    let port = self.random_port(&in_use);
                    p["nodePort"] = json!(port);
                    port_key(port)
                } else {
                    let key = port_key(port);
                    if !held.contains(&key) {
                        plan.requested.insert(key.clone());
                    }
                    key
                };
                in_use.insert(key.clone());
                if held.contains(&key) {
                    kept.insert(key);
                } else if !plan.side.create.contains(&key) {
                    plan.side.create.push(key);
                } else {
                    causes.push(Cause::duplicate(format!("spec.ports[{i}].nodePort"), port));
                }
            }
        }
        if !causes.is_empty() {
            return Err(causes);
        }
        let still_held: HashSet<String> = held_keys(svc).into_iter().collect();
        plan.side.delete = held
            .into_iter()
            .filter(|k| !still_held.contains(k))
            .collect();
        Ok(plan)
    }
}

impl Allocation for Allocators {
    fn plan(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        taken: &HashSet<String>,
    ) -> Result<AllocationPlan, Vec<Cause>> {
        self.plan_service(obj, old, taken)
    }

    fn held_keys(&self, obj: &Value) -> Vec<String> {
        held_keys(obj)
    }

    fn taken_cause(&self, key: &str, creating: bool) -> Cause {
        let value = key.rsplit('/').next().unwrap_or("");
        match (creating, key.starts_with(SERVICE_IP_PREFIX)) {
            (true, true) => Cause::invalid(
                "spec.clusterIPs",
                value,
                "provided IP or port is already allocated",
            ),
            (true, false) => Cause::invalid(
                "spec.ports[].nodePort",
                value,
                "provided IP or port is already allocated",
            ),
            (false, _) => Cause::invalid(
                "spec.ports[].nodePort",
                value,
                "provided port is already allocated",
            ),
        }
    }

    fn forget_taken(&self, obj: &mut Value, taken: &HashSet<String>) {
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports {
                let port_key = p["nodePort"].as_u64().map(|n| port_key(n as u16));
                if port_key.is_some_and(|pk| taken.contains(&pk)) {
                    if let Some(m) = p.as_object_mut() {
                        m.remove("nodePort");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocators() -> Allocators {
        Allocators {
            service_range: "10.96.0.0/12".parse().unwrap(),
            node_ports: 30000..=32767,
        }
    }

    #[test]
    fn create_allocates_an_ip_in_range_and_node_ports() {
        let mut svc =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}});
        let plan = allocators()
            .plan_service(&mut svc, None, &HashSet::new())
            .unwrap();
        let ip: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(allocators().service_range.contains(&ip));
        assert_ne!(ip, allocators().first_ip());
        let np = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
        assert!((30000..=32767).contains(&np));
        assert_eq!(plan.side.create, vec![ip_key(ip), port_key(np)]);
        assert!(plan.requested.is_empty());
    }

    #[test]
    fn update_keeps_allocations_and_releases_dropped_node_ports() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        let mut new = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        let plan = allocators()
            .plan_service(&mut new, Some(&old), &HashSet::new())
            .unwrap();
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.10");
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());
        assert!(plan.side.create.is_empty());
        assert_eq!(plan.side.delete, vec![port_key(30080)]);
    }

    #[test]
    fn requested_ip_outside_the_range_is_invalid() {
        let mut svc = json!({"spec": {"clusterIP": "192.168.1.1", "ports": [{"port": 80}]}});
        let causes = allocators()
            .plan_service(&mut svc, None, &HashSet::new())
            .unwrap_err();
        assert_eq!(causes[0].field, "spec.clusterIPs");
    }

    #[test]
    fn headless_services_get_no_ip() {
        let mut svc = json!({"spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
        let plan = allocators()
            .plan_service(&mut svc, None, &HashSet::new())
            .unwrap();
        assert!(plan.side.create.is_empty());
        assert_eq!(svc["spec"]["clusterIPs"], json!(["None"]));
    }
}
