//! Name checks shared by label keys, label values and field selectors, worded like the
//! messages of k8s.io/apimachinery/pkg/util/validation so users see familiar errors.

const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
const DNS_SUBDOMAIN_MAX: usize = 253;

const QUALIFIED_NAME_FORMAT: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
     and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or \
     '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

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

/// RFC 1123 subdomain: dot-separated lowercase labels.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= DNS_SUBDOMAIN_MAX
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            match (b.first(), b.last()) {
                (Some(f), Some(l)) => {
                    (f.is_ascii_lowercase() || f.is_ascii_digit())
                        && (l.is_ascii_lowercase() || l.is_ascii_digit())
                        && b.iter()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                }
                _ => false,
            }
        })
}

/// Checks a label key: a name with an optional DNS subdomain prefix (`example.com/name`).
pub(crate) fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        None => (None, key),
        Some((p, n)) if !n.contains('/') => (Some(p), n),
        Some(_) => {
            return Err(format!(
                "a qualified name {QUALIFIED_NAME_FORMAT} with an optional DNS subdomain prefix \
                 and '/' (e.g. 'example.com/MyName')"
            ))
        }
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix part must be non-empty".into());
        }
        if !is_dns_subdomain(prefix) {
            return Err(format!(
                "prefix part {prefix:?} must be a lowercase RFC 1123 subdomain of at most \
                 {DNS_SUBDOMAIN_MAX} characters (e.g. 'example.com')"
            ));
        }
    }
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > QUALIFIED_NAME_MAX {
        return Err(format!(
            "name part must be no more than {QUALIFIED_NAME_MAX} characters"
        ));
    }
    if !is_name_token(name) {
        return Err(format!("name part {QUALIFIED_NAME_FORMAT}"));
    }
    Ok(())
}

/// Checks a label value: empty, or a name token of at most 63 characters.
pub(crate) fn check_label_value(value: &str) -> Result<(), String> {
    if value.len() > LABEL_VALUE_MAX {
        return Err(format!("must be no more than {LABEL_VALUE_MAX} characters"));
    }
    if !value.is_empty() && !is_name_token(value) {
        return Err(format!(
            "a valid label {}",
            QUALIFIED_NAME_FORMAT.replacen("must consist", "must be an empty string or consist", 1)
        ));
    }
    Ok(())
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
            assert_eq!(check_label_key(ok), Ok(()), "{ok}");
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
            assert!(check_label_key(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_label_key(&format!("{}/a", "a".repeat(254))).is_err());
        assert!(check_label_key(&"y".repeat(63)).is_ok());
    }

    #[test]
    fn values_may_be_empty_but_not_malformed() {
        for ok in ["", "v", "1.2.3", "a_b-c", &"z".repeat(63)] {
            assert_eq!(check_label_value(ok), Ok(()), "{ok}");
        }
        for bad in ["-v", "v.", "a/b", "a b", &"z".repeat(64)] {
            assert!(check_label_value(bad).is_err(), "{bad:?} accepted");
        }
    }
}
