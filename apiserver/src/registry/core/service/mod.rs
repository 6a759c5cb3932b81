//! Service: DNS-label names, a ClusterIP and NodePorts allocated in the same transaction as
//! the object (`allocator.rs`), defaults for ports and traffic policies.

pub mod allocator;
pub mod printer;

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};
use skiff_common::strategic_merge::schema;
use skiff_common::validation::{is_dns1123_label, DNS1123_LABEL_MSG};

use crate::error::{ApiResult, Cause};
use crate::printers::Printer;
use crate::registry::defaults::set_str;
use crate::registry::strategy::{
    Allocation, DeletionRules, KindStrategy, NameRule, SubresourceDef, STATUS,
};
use crate::registry::typed::typed;
use crate::registry::validation::validate_port_number;
use crate::resource::ResourceInfo;
use allocator::Allocators;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Service",
    plural: "services",
    singular: "service",
    namespaced: true,
    short_names: &["svc"],
    categories: &["all"],
    tracks_generation: false,
};

static SUBRESOURCES: &[SubresourceDef] = &[STATUS];

fn defaults(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(Default::default);
    set_str(&mut spec.type_, "ClusterIP");
    set_str(&mut spec.session_affinity, "None");
    let ty = spec.type_.clone().unwrap_or_default();
    if ty != "ExternalName" {
        set_str(&mut spec.internal_traffic_policy, "Cluster");
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_str(&mut spec.external_traffic_policy, "Cluster");
    }
    for port in spec.ports.iter_mut().flatten() {
        set_str(&mut port.protocol, "TCP");
        if port.target_port.is_none() || port.target_port == Some(IntOrString::Int(0)) {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
}

fn validate_spec(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    let supported = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    if !supported.contains(&ty) {
        causes.push(Cause::unsupported("spec.type", ty, &supported));
    }
    let headless = spec["clusterIP"].as_str() == Some("None");
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" && !headless {
        causes.push(Cause::required("spec.ports"));
    }
    if ty == "ExternalName" && spec["externalName"].as_str().unwrap_or("").is_empty() {
        causes.push(Cause::required("spec.externalName"));
    }
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        validate_port_number(&p["port"], format!("{at}.port"), causes);
        let name = p["name"].as_str().unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            causes.push(Cause::required(format!("{at}.name")));
        }
        if !name.is_empty() {
            if !is_dns1123_label(name) {
                causes.push(Cause::invalid(
                    format!("{at}.name"),
                    name,
                    DNS1123_LABEL_MSG,
                ));
            }
            if !names.insert(name.to_string()) {
                causes.push(Cause::duplicate(format!("{at}.name"), name));
            }
        }
        if let Some(proto) = p["protocol"].as_str() {
            if !["TCP", "UDP", "SCTP"].contains(&proto) {
                causes.push(Cause::unsupported(
                    format!("{at}.protocol"),
                    proto,
                    &["SCTP", "TCP", "UDP"],
                ));
            }
        }
        if let Some(np) = p.get("nodePort").filter(|v| v.as_i64().unwrap_or(0) != 0) {
            if ty == "ClusterIP" {
                causes.push(Cause::forbidden(
                    format!("{at}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else {
                validate_port_number(np, format!("{at}.nodePort"), causes);
            }
        }
    }
    if let Some(aff) = spec["sessionAffinity"].as_str() {
        if !["None", "ClientIP"].contains(&aff) {
            causes.push(Cause::unsupported(
                "spec.sessionAffinity",
                aff,
                &["ClientIP", "None"],
            ));
        }
    }
}

/// The `kubernetes` Service in `default`, pointing at the API itself.
pub fn kubernetes_service(cluster_ip: &str, port: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": INFO.kind,
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": cluster_ip,
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
    })
}

pub struct ServiceStrategy {
    pub allocators: Allocators,
}

impl KindStrategy for ServiceStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed(&INFO, obj, defaults)
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_spec(obj, causes);
    }

    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        let ip = |v: &Value| {
            v.pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (old_ip, new_ip) = (ip(old), ip(new));
        if !old_ip.is_empty() && new_ip != old_ip {
            causes.push(Cause::immutable("spec.clusterIP"));
        }
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn printer(&self) -> &'static Printer {
        &printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Service>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::SERVICE
    }

    fn subresources(&self) -> &'static [SubresourceDef] {
        SUBRESOURCES
    }

    fn deletion(&self) -> DeletionRules {
        DeletionRules {
            returns_object: true,
            ..DeletionRules::default()
        }
    }

    fn allocation(&self) -> Option<&dyn Allocation> {
        Some(&self.allocators)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_target_port_defaults_to_port() {
        let mut svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}]}
        }))
        .unwrap();
        defaults(&mut svc);
        let port = &svc.spec.unwrap().ports.unwrap()[0];
        assert_eq!(port.target_port, Some(IntOrString::Int(80)));
        assert_eq!(port.protocol.as_deref(), Some("TCP"));
    }
}
