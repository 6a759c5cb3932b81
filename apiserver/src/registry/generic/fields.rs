//! `fieldValidation`: fields a request sent that its kind does not have, and keys sent twice.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

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

/// `fieldValidation`: Strict rejects fields the kind does not have, Warn (the default) reports
/// them in `Warning` headers, Ignore drops them silently.
pub fn field_validation(
    directive: Option<&str>,
    sent: &Value,
    decoded: &Value,
    duplicates: &[String],
) -> ApiResult<Vec<String>> {
    let directive = directive.unwrap_or("Warn");
    if directive == "Ignore" {
        return Ok(Vec::new());
    }
    let unknown: Vec<String> = duplicates
        .iter()
        .map(|p| format!("json: duplicate field \"{p}\""))
        .chain(
            unknown_fields(sent, decoded)
                .into_iter()
                .filter(|p| p != "metadata.resourceVersion" && !p.starts_with("status"))
                .map(|p| format!("unknown field \"{p}\"")),
        )
        .collect();
    match directive {
        "Strict" if !unknown.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            unknown.join(", ")
        ))),
        "Strict" | "Warn" => Ok(unknown),
        other => Err(ApiError::bad_request(format!(
            "fieldValidation must be one of Ignore, Warn or Strict, got {other:?}"
        ))),
    }
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
    use crate::registry::apps::deployment::DeploymentStrategy;
    use crate::registry::core::configmap::ConfigMapStrategy;
    use crate::registry::core::pod::PodStrategy;
    use crate::registry::KindStrategy;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found_by_path() {
        let sent = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "imagePolicy": "x"}], "bogus": 1}});
        let decoded = PodStrategy.decode_and_default(sent.clone(), true).unwrap();
        let unknown = unknown_fields(&sent, &decoded);
        assert_eq!(
            unknown,
            vec!["spec.containers[0].imagePolicy", "spec.bogus"]
        );
    }

    #[test]
    fn wrong_types_are_bad_requests() {
        let err = ConfigMapStrategy
            .decode_and_default(json!({"metadata": {"name": "x"}, "data": {"a": 1}}), true)
            .unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn a_wrong_type_is_reported_with_the_path_to_its_field() {
        let err = DeploymentStrategy
            .decode_and_default(
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
