//! The one name and label validator of the workspace, worded exactly like
//! k8s.io/apimachinery/pkg/util/validation so users see the messages they know. The apiserver
//! uses it for object metadata, the selector parser for label keys and values.

pub const DNS1123_LABEL_MAX: usize = 63;
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
pub const QUALIFIED_NAME_MAX: usize = 63;
pub const LABEL_VALUE_MAX: usize = 63;

pub const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
pub const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
pub const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
pub const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= DNS1123_LABEL_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Dot-separated DNS labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= DNS1123_SUBDOMAIN_MAX && s.split('.').all(is_dns1123_label)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, the shape of label names and values.
fn is_name_token(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(first), Some(last)) = (b.first(), b.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Empty, or a name token of at most 63 characters.
pub fn is_label_value(s: &str) -> bool {
    label_value_problems(s).is_empty()
}

/// What is wrong with a label or annotation key (`prefix/name` or `name`), as
/// `validation.IsQualifiedName` reports it; `None` when it is valid.
pub fn qualified_name_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !is_dns1123_subdomain(p) {
            return Some(format!("prefix part {DNS1123_SUBDOMAIN_MSG}"));
        }
    }
    if name.len() > QUALIFIED_NAME_MAX {
        return Some(format!(
            "name part must be no more than {QUALIFIED_NAME_MAX} characters"
        ));
    }
    if !is_name_token(name) {
        return Some(QUALIFIED_NAME_MSG.into());
    }
    None
}

/// What is wrong with a label value, as `validation.IsValidLabelValue` reports it.
pub fn label_value_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        problems.push(format!("must be no more than {LABEL_VALUE_MAX} characters"));
    }
    if !value.is_empty() && !is_name_token(value) {
        problems.push(LABEL_VALUE_MSG.into());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_qualified_name_rules() {
        for ok in [
            "app",
            "a",
            "A.b-c_d9",
            "example.com/name",
            "k8s.io/x",
            "1-2/a",
        ] {
            assert_eq!(qualified_name_problem(ok), None, "{ok}");
        }
        let long = "x".repeat(64);
        for bad in [
            "",
            "-a",
            "a-",
            "a b",
            "/name",
            "Example.com/name",
            "a/b/c",
            "example.com/",
            "ex_ample.com/a",
            long.as_str(),
        ] {
            assert!(qualified_name_problem(bad).is_some(), "{bad:?} accepted");
        }
        assert!(qualified_name_problem(&format!("{}/a", "a".repeat(254))).is_some());
        assert!(qualified_name_problem(&"y".repeat(63)).is_none());
    }

    #[test]
    fn values_may_be_empty_but_not_malformed() {
        for ok in ["", "v", "1.2.3", "a_b-c", &"z".repeat(63)] {
            assert!(is_label_value(ok), "{ok}");
        }
        for bad in ["-v", "v.", "a/b", "a b", &"z".repeat(64)] {
            assert!(!is_label_value(bad), "{bad:?} accepted");
        }
        assert_eq!(
            label_value_problems(&"z".repeat(64)),
            vec!["must be no more than 63 characters".to_string()]
        );
    }

    #[test]
    fn dns_names() {
        assert!(is_dns1123_label("web-1"));
        assert!(!is_dns1123_label("Web"));
        assert!(!is_dns1123_label("a.b"));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
    }
}
