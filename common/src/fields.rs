//! Field selectors (`?fieldSelector=`) with the syntax and escaping of k8s.io/apimachinery's
//! fields package: comma-separated `field=value`, `field==value` or `field!=value` terms.

use std::fmt;

/// Why a field selector was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term has no `=`, `==` or `!=` operator.
    #[error(
        "invalid selector: {selector:?}; can't understand {term:?} \
         (field selectors support only the operators =, == and !=)"
    )]
    Syntax { selector: String, term: String },
    /// A value contains a backslash sequence other than `\\`, `\,` or `\=`.
    #[error("invalid escape sequence {sequence:?} in field selector value {value:?}")]
    InvalidEscape { value: String, sequence: String },
    /// A value contains a bare `,` or `=` that should have been escaped.
    #[error("invalid field selector value {value:?}: unescaped {character:?} must be written as \\{character}")]
    UnescapedCharacter { value: String, character: char },
}

/// How a field is compared with the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOp {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One `field op value` term, with the value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dotted field path, e.g. `spec.nodeName`.
    pub field: String,
    /// The comparison.
    pub op: FieldOp,
    /// The unescaped value.
    pub value: String,
}

/// A conjunction of field requirements; the default selects everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldRequirement {
    /// Whether the field's value (absent = empty string) satisfies the term.
    pub fn matches(&self, actual: Option<&str>) -> bool {
        let equal = actual.unwrap_or("") == self.value;
        match self.op {
            FieldOp::Equals => equal,
            FieldOp::NotEquals => !equal,
        }
    }
}

impl FieldSelector {
    /// Parses a field selector string; the empty string selects everything.
    pub fn parse(s: &str) -> Result<FieldSelector, FieldSelectorError> {
        let mut terms = split_terms(s);
        // Sorting gives the same canonical order Kubernetes uses, so equal selectors compare equal.
        terms.sort_unstable();
        let requirements = terms
            .into_iter()
            .filter(|t| !t.is_empty())
            .map(|term| parse_term(s, term))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FieldSelector { requirements })
    }

    /// A selector with a single `field=value` term.
    pub fn equals(field: &str, value: &str) -> FieldSelector {
        FieldSelector {
            requirements: vec![FieldRequirement {
                field: field.to_string(),
                op: FieldOp::Equals,
                value: value.to_string(),
            }],
        }
    }

    /// The parsed terms, so callers can reject fields their kind does not support.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// True when no term constrains anything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value of an `=`/`==` term on `field`, e.g. to index pods by `spec.nodeName`.
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.op == FieldOp::Equals)
            .map(|r| r.value.as_str())
    }

    /// Whether an object whose fields are read through `get` satisfies every term.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(get(&r.field).as_deref()))
    }
}

/// Prints the selector with values escaped, so it parses back to an equal selector.
impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match r.op {
                FieldOp::Equals => "=",
                FieldOp::NotEquals => "!=",
            };
            write!(f, "{}{op}{}", r.field, escape_value(&r.value))?;
        }
        Ok(())
    }
}

/// Escapes `\`, `,` and `=` in a value for use in a field selector string.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits on commas that are not escaped; escapes stay in place for [`unescape_value`].
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// The field name cannot be escaped, so the first operator found splits the term;
/// `!=` and `==` are tried before `=` so that no `=` is left on the value.
fn parse_term(selector: &str, term: &str) -> Result<FieldRequirement, FieldSelectorError> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        let found = [
            ("!=", FieldOp::NotEquals),
            ("==", FieldOp::Equals),
            ("=", FieldOp::Equals),
        ]
        .into_iter()
        .find(|(text, _)| rest.starts_with(text));
        if let Some((text, op)) = found {
            return Ok(FieldRequirement {
                field: term[..i].to_string(),
                op,
                value: unescape_value(&rest[text.len()..])?,
            });
        }
    }
    Err(FieldSelectorError::Syntax {
        selector: selector.to_string(),
        term: term.to_string(),
    })
}

/// Undoes [`escape_value`], rejecting unknown escapes and bare `,`/`=`.
pub fn unescape_value(s: &str) -> Result<String, FieldSelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                other => {
                    return Err(FieldSelectorError::InvalidEscape {
                        value: s.to_string(),
                        sequence: other.map_or("\\".to_string(), |o| format!("\\{o}")),
                    })
                }
            },
            ',' | '=' => {
                return Err(FieldSelectorError::UnescapedCharacter {
                    value: s.to_string(),
                    character: c,
                })
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn getter(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |f| map.get(f).cloned()
    }

    #[test]
    fn parses_all_three_operators() {
        let s =
            FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed,metadata.name==p").unwrap();
        let reqs = s.requirements();
        assert_eq!(reqs.len(), 3);
        assert_eq!(
            reqs[0],
            FieldRequirement {
                field: "metadata.name".into(),
                op: FieldOp::Equals,
                value: "p".into()
            }
        );
        assert_eq!(reqs[1].field, "spec.nodeName");
        assert_eq!(reqs[2].op, FieldOp::NotEquals);
        assert_eq!(reqs[2].value, "Failed");
        assert_eq!(s.exact_value("spec.nodeName"), Some("n1"));
        assert_eq!(
            s.exact_value("status.phase"),
            None,
            "!= is not an exact value"
        );
        assert_eq!(s.exact_value("other"), None);
    }

    #[test]
    fn empty_selects_everything() {
        let s = FieldSelector::parse("").unwrap();
        assert!(s.is_empty());
        assert!(s.matches(|_| None));
        assert_eq!(FieldSelector::default(), s);
        assert!(FieldSelector::parse(",").unwrap().is_empty());
    }

    #[test]
    fn missing_fields_compare_as_empty() {
        let get = getter(&[("spec.nodeName", "n1")]);
        assert!(FieldSelector::parse("spec.nodeName=n1")
            .unwrap()
            .matches(&get));
        assert!(!FieldSelector::parse("spec.nodeName=n2")
            .unwrap()
            .matches(&get));
        assert!(FieldSelector::parse("status.phase!=Running")
            .unwrap()
            .matches(&get));
        assert!(FieldSelector::parse("status.phase=").unwrap().matches(&get));
        assert!(!FieldSelector::parse("status.phase!=")
            .unwrap()
            .matches(&get));
        assert!(
            !FieldSelector::parse("spec.nodeName=n1,status.phase=Running")
                .unwrap()
                .matches(&get)
        );
    }

    #[test]
    fn escapes_are_honoured() {
        let s = FieldSelector::parse(r"metadata.name=a\,b\=c\\d,x=y").unwrap();
        assert_eq!(s.exact_value("metadata.name"), Some(r"a,b=c\d"));
        assert_eq!(s.exact_value("x"), Some("y"));
        assert_eq!(FieldSelector::parse(&s.to_string()).unwrap(), s);
        assert_eq!(escape_value(r"a,b=c\d"), r"a\,b\=c\\d");
        assert_eq!(unescape_value(&escape_value(r"\,=")).unwrap(), r"\,=");
    }

    #[test]
    fn bad_escapes_and_bare_specials_are_rejected() {
        assert!(matches!(
            FieldSelector::parse(r"a=b\n"),
            Err(FieldSelectorError::InvalidEscape { sequence, .. }) if sequence == r"\n"
        ));
        assert!(matches!(
            FieldSelector::parse(r"a=b\"),
            Err(FieldSelectorError::InvalidEscape { sequence, .. }) if sequence == r"\"
        ));
        assert!(matches!(
            FieldSelector::parse("a=b=c"),
            Err(FieldSelectorError::UnescapedCharacter { character: '=', .. })
        ));
    }

    #[test]
    fn other_operators_are_rejected_clearly() {
        for bad in ["a>b", "a in (x)", "a", "status.phase=Running,spec.nodeName"] {
            let err = FieldSelector::parse(bad).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, FieldSelectorError::Syntax { .. }), "{bad}");
            assert!(msg.contains("=, == and !="), "{msg}");
        }
        let msg = FieldSelector::parse("x=1,a<b").unwrap_err().to_string();
        assert!(msg.contains("\"a<b\""), "{msg}");
    }

    #[test]
    fn display_round_trips_and_is_sorted() {
        let s = FieldSelector::parse("b!=2,a==1").unwrap();
        assert_eq!(s.to_string(), "a=1,b!=2");
        assert_eq!(
            FieldSelector::equals("spec.nodeName", "n=1").to_string(),
            r"spec.nodeName=n\=1"
        );
    }
}
