//! Admission: everything between decoding a request body and writing it. Decoding into the
//! k8s-openapi type (which also drops fields the kind does not have), defaulting, validation,
//! and allocation of cluster-unique values.

pub mod allocator;
pub mod defaults;
pub mod validation;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceInfo;

use k8s_openapi::api::{coordination, core};

fn typed<T: DeserializeOwned + Serialize>(
    info: &ResourceInfo,
    obj: Value,
    default: impl FnOnce(&mut T),
) -> ApiResult<Value> {
    // The path to the offending field goes into the message, as the Go decoder's does.
    let mut typed: T = serde_path_to_error::deserialize(obj).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let detail = if field == "." {
            inner.to_string()
        } else {
            format!("{field}: {inner}")
        };
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {detail}",
            info.kind, info.version, info.kind
        ))
    })?;
    default(&mut typed);
    serde_json::to_value(&typed).map_err(ApiError::internal)
}

/// Decode `obj` as `info`'s kind and apply Kubernetes defaults. `creating` adds the defaults
/// only a new object gets (a pod's initial status, default tolerations).
pub fn decode_and_default(info: &ResourceInfo, obj: Value, creating: bool) -> ApiResult<Value> {
    match info.kind {
        "Pod" => typed(info, obj, |p: &mut core::v1::Pod| {
            defaults::pod(p, creating)
        }),
        "Deployment" => typed(info, obj, defaults::deployment),
        "ReplicaSet" => typed(info, obj, defaults::replica_set),
        "Job" => typed(info, obj, defaults::job),
        "Service" => typed(info, obj, defaults::service),
        "Namespace" => typed(info, obj, defaults::namespace),
        "Secret" => typed(info, obj, defaults::secret),
        "Endpoints" => typed(info, obj, defaults::endpoints),
        "EndpointSlice" => typed(info, obj, defaults::endpoint_slice),
        "Node" => typed(info, obj, |_: &mut core::v1::Node| {}),
        "ConfigMap" => typed(info, obj, |_: &mut core::v1::ConfigMap| {}),
        "Event" => typed(info, obj, |_: &mut core::v1::Event| {}),
        "Lease" => typed(info, obj, |_: &mut coordination::v1::Lease| {}),
        other => Err(ApiError::internal(format!("no admission for kind {other}"))),
    }
}

/// Paths present in `sent` but absent after decoding: fields the kind does not have.
pub fn unknown_fields(sent: &Value, decoded: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_unknown(sent, decoded, String::new(), &mut out);
    out
}

fn collect_unknown(sent: &Value, decoded: &Value, path: String, out: &mut Vec<String>) {
    match (sent, decoded) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(d) => collect_unknown(v, d, p, out),
                    // Null and empty values are dropped by the typed round trip without being unknown.
                    None if v.is_null() => {}
                    None if is_known_empty(v) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                collect_unknown(x, y, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_known_empty(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty())
}

/// Keys that appear twice in one JSON object of the body (`spec.replicas`), which a plain decode
/// would silently resolve by keeping the last.
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;

    struct Walk<'a> {
        path: String,
        out: &'a RefCell<Vec<String>>,
    }

    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let path = if self.path.is_empty() {
                    key.clone()
                } else {
                    format!("{}.{key}", self.path)
                };
                if !seen.insert(key) {
                    self.out.borrow_mut().push(path.clone());
                }
                map.next_value_seed(Walk {
                    path,
                    out: self.out,
                })?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            while seq
                .next_element_seed(Walk {
                    path: format!("{}[{i}]", self.path),
                    out: self.out,
                })?
                .is_some()
            {
                i += 1;
            }
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }

    let out = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = Walk {
        path: String::new(),
        out: &out,
    }
    .deserialize(&mut de);
    out.into_inner()
}

#[cfg(test)]
mod tests {
    #[test]
    fn duplicate_keys_are_found_by_path() {
        let body = br#"{"spec": {"replicas": 1, "replicas": 2, "list": [{"a": 1, "a": 2}]}}"#;
        assert_eq!(
            duplicate_fields(body),
            vec!["spec.replicas", "spec.list[0].a"]
        );
        assert!(duplicate_fields(br#"{"a": {"b": 1}, "c": {"b": 2}}"#).is_empty());
    }

    use super::*;
    use crate::registry::find;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found_by_path() {
        let pods = find("", "v1", "pods").unwrap();
        let sent = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "imagePolicy": "x"}], "bogus": 1}});
        let decoded = decode_and_default(pods, sent.clone(), true).unwrap();
        let unknown = unknown_fields(&sent, &decoded);
        assert_eq!(
            unknown,
            vec!["spec.containers[0].imagePolicy", "spec.bogus"]
        );
    }

    #[test]
    fn wrong_types_are_bad_requests() {
        let cms = find("", "v1", "configmaps").unwrap();
        let err = decode_and_default(
            cms,
            json!({"metadata": {"name": "x"}, "data": {"a": 1}}),
            true,
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn a_wrong_type_is_reported_with_the_path_to_its_field() {
        let deployments = find("apps", "v1", "deployments").unwrap();
        let err = decode_and_default(
            deployments,
            json!({"metadata": {"name": "x"}, "spec": {"selector": {}, "template": {"spec": {
                "containers": [{"name": "c", "args": [{"greeting": "hi"}]}]}}}}),
            true,
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .contains("cannot be handled as a Deployment: spec.template.spec.containers[0].args[0]: invalid type: map"),
            "{}",
            err.message
        );
    }
}
