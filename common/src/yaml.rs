//! The workspace's YAML: serde-saphyr, set to the YAML 1.2 core schema that manifests have
//! always been read with here (`y`, `yes`, `on` stay strings; `1_000` stays a string), and
//! kubectl's `-o yaml` layout (list items not indented under their key).

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use serde_saphyr::Error;

fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.underscored_numbers_as_strings = true;
    options
}

pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_saphyr::from_str_with_options(text, options())
}

pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_saphyr::from_slice_with_options(bytes, options())
}

pub fn to_string<T: Serialize>(value: &T) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(value)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn yaml_1_1_words_stay_strings() {
        let v: Value = from_str("app: y\non: yes\nn: 1_000\nreal: true\ncount: 3\n").unwrap();
        assert_eq!(
            v,
            json!({"app": "y", "on": "yes", "n": "1_000", "real": true, "count": 3})
        );
    }

    #[test]
    fn lists_are_written_as_kubectl_writes_them() {
        let text = to_string(&json!({"items": ["a", "b"], "m": {"k": "v"}})).unwrap();
        assert!(text.contains("items:\n- a\n- b\n"), "{text}");
        assert!(text.contains("m:\n  k: v\n"), "{text}");
    }
}
