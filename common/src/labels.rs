//! Label selectors: the `?labelSelector=` string syntax and metav1.LabelSelector objects,
//! with the parsing, validation, matching and printing rules of k8s.io/apimachinery.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::validation::{label_value_problems, qualified_name_problem};

/// Why a label selector was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The selector string does not follow the grammar.
    #[error("found '{found}', expected: {expected} (in label selector {selector:?})")]
    Syntax {
        selector: String,
        found: String,
        expected: String,
    },
    /// A key is not a qualified name.
    #[error("invalid label key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    /// A value is not a valid label value.
    #[error("invalid label value {value:?} for key {key:?}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    /// The operator does not fit the number or kind of values.
    #[error("invalid requirement on key {key:?}: {reason}")]
    InvalidRequirement { key: String, reason: String },
    /// A metav1.LabelSelector object is malformed.
    #[error("invalid label selector object: {0}")]
    Malformed(String),
}

/// How a requirement compares a label with its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// `key=value` or `key==value`.
    Equals,
    /// `key!=value`; also true when the label is absent.
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)`; also true when the label is absent.
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>n`, comparing integers.
    Gt,
    /// `key<n`, comparing integers.
    Lt,
}

/// One condition on one label key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    op: Operator,
    values: Vec<String>,
}

/// A conjunction of requirements; the default selects everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// Set for a nil metav1.LabelSelector, which Kubernetes treats as selecting nothing.
    nothing: bool,
}

impl Requirement {
    /// Builds a validated requirement; values are sorted and deduplicated as Kubernetes' set does.
    pub fn new(key: &str, op: Operator, values: Vec<String>) -> Result<Requirement, SelectorError> {
        if let Some(reason) = qualified_name_problem(key) {
            return Err(SelectorError::InvalidKey {
                key: key.to_string(),
                reason,
            });
        }
        let invalid = |reason: &str| SelectorError::InvalidRequirement {
            key: key.to_string(),
            reason: reason.to_string(),
        };
        match op {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(invalid(
                    "for 'in', 'notin' operators, values set can't be empty",
                ))
            }
            Operator::Equals | Operator::NotEquals if values.len() != 1 => {
                return Err(invalid(
                    "exact-match compatibility requires one single value",
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(invalid(
                    "values set must be empty for exists and does not exist",
                ))
            }
            Operator::Gt | Operator::Lt => {
                if values.len() != 1 {
                    return Err(invalid(
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                if values[0].parse::<i64>().is_err() {
                    return Err(invalid(&format!(
                        "for 'Gt', 'Lt' operators, the value must be an integer (got {:?})",
                        values[0]
                    )));
                }
            }
            _ => {}
        }
        for value in &values {
            let problems = label_value_problems(value);
            if !problems.is_empty() {
                return Err(SelectorError::InvalidValue {
                    key: key.to_string(),
                    value: value.clone(),
                    reason: problems.join("; "),
                });
            }
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement {
            key: key.to_string(),
            op,
            values,
        })
    }

    /// The label key this requirement looks at.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The comparison operator.
    pub fn operator(&self) -> Operator {
        self.op
    }

    /// The values compared against, sorted.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a label set satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.key).map(String::as_str))
    }

    fn matches_value(&self, value: Option<&str>) -> bool {
        let listed = |v: &str| self.values.iter().any(|x| x == v);
        match (self.op, value) {
            (Operator::Equals | Operator::In, Some(v)) => listed(v),
            (Operator::Equals | Operator::In, None) => false,
            (Operator::NotEquals | Operator::NotIn, Some(v)) => !listed(v),
            (Operator::NotEquals | Operator::NotIn, None) => true,
            (Operator::Exists, v) => v.is_some(),
            (Operator::DoesNotExist, v) => v.is_none(),
            (Operator::Gt | Operator::Lt, v) => self.compare_integer(v),
        }
    }

    /// Non-integer labels never satisfy Gt/Lt, as in Kubernetes.
    fn compare_integer(&self, value: Option<&str>) -> bool {
        let (Some(have), Some(want)) = (
            value.and_then(|v| v.parse::<i64>().ok()),
            self.values.first().and_then(|v| v.parse::<i64>().ok()),
        ) else {
            return false;
        };
        if self.op == Operator::Gt {
            have > want
        } else {
            have < want
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let single = self.values.first().map(String::as_str).unwrap_or("");
        match self.op {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::Equals => write!(f, "{}={single}", self.key),
            Operator::NotEquals => write!(f, "{}!={single}", self.key),
            Operator::Gt => write!(f, "{}>{single}", self.key),
            Operator::Lt => write!(f, "{}<{single}", self.key),
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
        }
    }
}

impl LabelSelector {
    /// A selector that matches no object (what a nil metav1.LabelSelector means).
    pub fn matches_nothing() -> LabelSelector {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Builds a selector from requirements, ordering them by key as Kubernetes does.
    pub fn new(mut requirements: Vec<Requirement>) -> LabelSelector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements,
            nothing: false,
        }
    }

    /// Equality requirements for every pair of a label map (e.g. a Service's spec.selector).
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Result<LabelSelector, SelectorError> {
        labels
            .iter()
            .map(|(k, v)| Requirement::new(k, Operator::Equals, vec![v.clone()]))
            .collect::<Result<Vec<_>, _>>()
            .map(LabelSelector::new)
    }

    /// Parses the `?labelSelector=` string syntax; the empty string selects everything.
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let tokens = lex(s);
        let mut parser = Parser {
            selector: s,
            tokens: &tokens,
            pos: 0,
        };
        parser.parse_selector().map(LabelSelector::new)
    }

    /// Converts a metav1.LabelSelector object; `null` selects nothing, `{}` everything.
    pub fn from_json(sel: &Value) -> Result<LabelSelector, SelectorError> {
        let obj = match sel {
            Value::Null => return Ok(LabelSelector::matches_nothing()),
            Value::Object(obj) => obj,
            other => {
                return Err(SelectorError::Malformed(format!(
                    "expected an object, got {other}"
                )))
            }
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let value = value.as_str().ok_or_else(|| {
                        SelectorError::Malformed(format!("matchLabels[{key:?}] must be a string"))
                    })?;
                    requirements.push(Requirement::new(
                        key,
                        Operator::Equals,
                        vec![value.to_string()],
                    )?);
                }
            }
            Some(_) => {
                return Err(SelectorError::Malformed(
                    "matchLabels must be an object".into(),
                ))
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for expr in exprs {
                    requirements.push(expression_requirement(expr)?);
                }
            }
            Some(_) => {
                return Err(SelectorError::Malformed(
                    "matchExpressions must be a list".into(),
                ))
            }
        }
        Ok(LabelSelector::new(requirements))
    }

    /// The requirements, ordered by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True when the selector places no constraint (selects everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty() && !self.nothing
    }

    /// True for the selector built by [`LabelSelector::matches_nothing`].
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// Whether a label set satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Like [`LabelSelector::matches`] for a `metadata.labels` JSON object; absent means no labels.
    pub fn matches_json(&self, labels: Option<&Value>) -> bool {
        let map = labels.and_then(Value::as_object);
        !self.nothing
            && self
                .requirements
                .iter()
                .all(|r| r.matches_value(map.and_then(|m| m.get(&r.key)).and_then(Value::as_str)))
    }
}

/// Prints the canonical string form; a selects-nothing selector prints as the empty string
/// (as Kubernetes prints it), which is the one value that does not re-parse to itself.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn expression_requirement(expr: &Value) -> Result<Requirement, SelectorError> {
    let malformed = |m: &str| SelectorError::Malformed(m.to_string());
    let key = expr
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("matchExpressions[].key must be a string"))?;
    let op = match expr.get("operator").and_then(Value::as_str) {
        Some("In") => Operator::In,
        Some("NotIn") => Operator::NotIn,
        Some("Exists") => Operator::Exists,
        Some("DoesNotExist") => Operator::DoesNotExist,
        Some(other) => {
            return Err(SelectorError::InvalidRequirement {
                key: key.to_string(),
                reason: format!("{other:?} is not a valid label selector operator"),
            })
        }
        None => return Err(malformed("matchExpressions[].operator must be a string")),
    };
    let values = match expr.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vs)) => vs
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("matchExpressions[].values must be strings"))?,
        Some(_) => return Err(malformed("matchExpressions[].values must be a list")),
    };
    Requirement::new(key, op, values)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Bang,
    Equals,
    DoubleEquals,
    NotEquals,
    Gt,
    Lt,
    Comma,
    OpenPar,
    ClosedPar,
    End,
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::Ident(s) => s,
            Token::Bang => "!",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::Gt => ">",
            Token::Lt => "<",
            Token::Comma => ",",
            Token::OpenPar => "(",
            Token::ClosedPar => ")",
            Token::End => "",
        }
    }
}

fn is_symbol(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn symbol_token(c: char) -> Token {
    match c {
        '!' => Token::Bang,
        '=' => Token::Equals,
        '>' => Token::Gt,
        '<' => Token::Lt,
        ',' => Token::Comma,
        '(' => Token::OpenPar,
        _ => Token::ClosedPar,
    }
}

/// Splits a selector into tokens; `in`/`notin` stay identifiers and the parser decides
/// from position whether they are keywords, so `in` can still be a key or value.
fn lex(s: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if is_symbol(c) {
            // `!=` and `==` are the only two-symbol operators; anything else splits.
            let token = match (c, chars.peek()) {
                ('!', Some('=')) => Some(Token::NotEquals),
                ('=', Some('=')) => Some(Token::DoubleEquals),
                _ => None,
            };
            match token {
                Some(t) => {
                    chars.next();
                    tokens.push(t);
                }
                None => tokens.push(symbol_token(c)),
            }
            continue;
        }
        let mut ident = String::from(c);
        while let Some(&next) = chars.peek() {
            if next.is_whitespace() || is_symbol(next) {
                break;
            }
            ident.push(next);
            chars.next();
        }
        tokens.push(Token::Ident(ident));
    }
    tokens.push(Token::End);
    tokens
}

struct Parser<'a> {
    selector: &'a str,
    tokens: &'a [Token],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }

    fn syntax(&self, found: &Token, expected: &str) -> SelectorError {
        SelectorError::Syntax {
            selector: self.selector.to_string(),
            found: found.text().to_string(),
            expected: expected.to_string(),
        }
    }

    fn parse_selector(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        if *self.peek() == Token::End {
            return Ok(requirements);
        }
        loop {
            match self.peek() {
                Token::Ident(_) | Token::Bang => requirements.push(self.parse_requirement()?),
                other => {
                    return Err(self.syntax(other, "!, identifier, or 'end of string'"));
                }
            }
            match self.next() {
                Token::End => return Ok(requirements),
                Token::Comma => match self.peek() {
                    Token::Ident(_) | Token::Bang => {}
                    other => return Err(self.syntax(other, "identifier after ','")),
                },
                other => return Err(self.syntax(&other, "',' or 'end of string'")),
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let negated = *self.peek() == Token::Bang;
        if negated {
            self.next();
        }
        let key = match self.next() {
            Token::Ident(key) => key,
            other => return Err(self.syntax(&other, "identifier")),
        };
        if negated {
            return Requirement::new(&key, Operator::DoesNotExist, Vec::new());
        }
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Requirement::new(&key, Operator::Exists, Vec::new());
        }
        let (op, values) = match self.next() {
            Token::Equals | Token::DoubleEquals => (Operator::Equals, self.parse_exact_value()?),
            Token::NotEquals => (Operator::NotEquals, self.parse_exact_value()?),
            Token::Gt => (Operator::Gt, self.parse_exact_value()?),
            Token::Lt => (Operator::Lt, self.parse_exact_value()?),
            Token::Ident(word) if word == "in" => (Operator::In, self.parse_value_set()?),
            Token::Ident(word) if word == "notin" => (Operator::NotIn, self.parse_value_set()?),
            other => return Err(self.syntax(&other, "=, !=, ==, in, notin, >, <")),
        };
        Requirement::new(&key, op, values)
    }

    /// A missing value (`a=` at a comma or the end) means the empty value.
    fn parse_exact_value(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.peek() {
            Token::End | Token::Comma => Ok(vec![String::new()]),
            Token::Ident(_) => match self.next() {
                Token::Ident(v) => Ok(vec![v]),
                _ => unreachable!("peeked an identifier"),
            },
            other => Err(self.syntax(other, "identifier")),
        }
    }

    /// `(a,b)`; empty slots such as `()` or `(a,,b)` stand for the empty value, as in Kubernetes.
    fn parse_value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Token::OpenPar => {}
            other => return Err(self.syntax(&other, "'('")),
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next() {
                Token::Ident(v) if expect_value => {
                    values.push(v);
                    expect_value = false;
                }
                Token::Comma => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Token::ClosedPar => {
                    if expect_value {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                other if expect_value => return Err(self.syntax(&other, "',', ')' or identifier")),
                other => return Err(self.syntax(&other, "',' or ')'")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn empty_selector_matches_everything() {
        let s = sel("");
        assert!(s.is_empty());
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("a", "b")])));
        assert!(sel("   ").is_empty());
        assert_eq!(s.to_string(), "");
    }

    #[test]
    fn equality_operators() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(sel("app=web").matches(&l));
        assert!(sel("app==web").matches(&l));
        assert!(!sel("app=db").matches(&l));
        assert!(sel("app!=db").matches(&l));
        assert!(!sel("app!=web").matches(&l));
        assert!(sel("missing!=x").matches(&l), "!= matches absent keys");
        assert!(!sel("missing=x").matches(&l));
        assert!(sel("app=web,tier=front").matches(&l));
        assert!(!sel("app=web,tier=back").matches(&l));
    }

    #[test]
    fn set_operators_and_existence() {
        let l = labels(&[("env", "prod"), ("x", "")]);
        assert!(sel("env in (prod, qa)").matches(&l));
        assert!(!sel("env in (dev,qa)").matches(&l));
        assert!(sel("env notin (dev,qa)").matches(&l));
        assert!(!sel("env notin (prod)").matches(&l));
        assert!(sel("other notin (a)").matches(&l));
        assert!(!sel("other in (a)").matches(&l));
        assert!(sel("env").matches(&l));
        assert!(!sel("nope").matches(&l));
        assert!(sel("!nope").matches(&l));
        assert!(!sel("!env").matches(&l));
        assert!(sel("x=").matches(&l), "empty value matches an empty label");
        assert!(sel("x in ()").matches(&l));
    }

    #[test]
    fn gt_and_lt_compare_integers() {
        let l = labels(&[("n", "10"), ("s", "abc")]);
        assert!(sel("n>5").matches(&l));
        assert!(!sel("n>10").matches(&l));
        assert!(sel("n<11").matches(&l));
        assert!(!sel("s<11").matches(&l));
        assert!(!sel("missing>1").matches(&l));
        assert!(LabelSelector::parse("n>x").is_err());
    }

    #[test]
    fn whitespace_is_tolerated() {
        let a = sel("  app = web ,  tier   in(a ,b) , ! gone ");
        assert_eq!(a, sel("app=web,tier in (a,b),!gone"));
        assert_eq!(a.requirements().len(), 3);
    }

    #[test]
    fn keywords_may_be_keys_and_values() {
        let s = sel("in=notin,notin in (in)");
        assert!(s.matches(&labels(&[("in", "notin"), ("notin", "in")])));
    }

    #[test]
    fn display_is_canonical_and_reparses() {
        let cases = [
            ("tier in (b,a),app=web", "app=web,tier in (a,b)"),
            ("!key", "!key"),
            ("a==b", "a=b"),
            (
                "z,y!=1,x notin ( q , p ),w>3,v<4",
                "v<4,w>3,x notin (p,q),y!=1,z",
            ),
            ("example.com/app=web", "example.com/app=web"),
            ("a in (x,x,y)", "a in (x,y)"),
        ];
        for (input, canonical) in cases {
            let parsed = sel(input);
            assert_eq!(parsed.to_string(), canonical, "{input}");
            assert_eq!(sel(canonical), parsed, "{canonical} re-parses");
        }
    }

    #[test]
    fn syntax_errors_name_the_offending_token() {
        let cases = [
            ("a=b,", "identifier after ','"),
            ("a in b", "'('"),
            ("a in (b", "','"),
            ("a=b c", "',' or 'end of string'"),
            (",a", "!, identifier"),
            ("a b", "=, !=, ==, in, notin"),
            ("a=(", "identifier"),
            ("!a=b", "',' or 'end of string'"),
            ("a=>b", "found '>', expected: identifier"),
        ];
        for (input, expected) in cases {
            let err = LabelSelector::parse(input).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(expected), "{input:?}: {msg}");
            assert!(msg.contains(input), "{input:?}: {msg}");
        }
    }

    #[test]
    fn invalid_keys_and_values_are_named() {
        let err = LabelSelector::parse("app=web,-bad=x").unwrap_err();
        assert!(
            matches!(&err, SelectorError::InvalidKey { key, .. } if key == "-bad"),
            "{err}"
        );
        let err = LabelSelector::parse("app=we/b").unwrap_err();
        assert!(
            matches!(&err, SelectorError::InvalidValue { value, .. } if value == "we/b"),
            "{err}"
        );
        assert!(err.to_string().contains("we/b"));
        let long = format!("a={}", "v".repeat(64));
        assert!(LabelSelector::parse(&long).is_err());
        assert!(LabelSelector::parse("Bad.Prefix/x=y").is_err());
    }

    #[test]
    fn from_json_converts_match_labels_and_expressions() {
        let s = LabelSelector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "Exists", "values": []}
            ]
        }))
        .unwrap();
        assert_eq!(s.to_string(), "app=web,!canary,env,tier in (a,b)");
        assert!(s.matches_json(Some(&json!({"app": "web", "tier": "a", "env": "x"}))));
        assert!(!s.matches_json(Some(&json!({"app": "web", "tier": "a"}))));
        assert!(!s.matches_json(Some(
            &json!({"app": "web", "tier": "a", "env": "", "canary": "1"})
        )));
        assert_eq!(sel(&s.to_string()), s);
    }

    #[test]
    fn from_json_empty_selects_all_and_null_selects_nothing() {
        let all = LabelSelector::from_json(&json!({})).unwrap();
        assert!(all.is_empty());
        assert!(all.matches_json(None));
        let none = LabelSelector::from_json(&Value::Null).unwrap();
        assert!(none.is_nothing());
        assert!(!none.is_empty());
        assert!(!none.matches_json(None));
        assert!(!none.matches(&labels(&[("a", "b")])));
        assert_eq!(none, LabelSelector::matches_nothing());
        assert_ne!(none, all);
    }

    #[test]
    fn from_json_rejects_bad_expressions() {
        let bad = [
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "NotIn"}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
            json!({"matchExpressions": [{"operator": "Exists"}]}),
            json!({"matchLabels": {"a": 1}}),
            json!({"matchLabels": {"a b": "c"}}),
            json!([]),
        ];
        for b in bad {
            assert!(LabelSelector::from_json(&b).is_err(), "{b} accepted");
        }
        let err = LabelSelector::from_json(
            &json!({"matchExpressions": [{"key": "a", "operator": "Between"}]}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("Between"));
    }

    #[test]
    fn matches_json_ignores_non_string_labels() {
        let s = sel("a");
        assert!(!s.matches_json(Some(&json!({"a": 1}))));
        assert!(s.matches_json(Some(&json!({"a": "1"}))));
        assert!(sel("!a").matches_json(None));
    }

    #[test]
    fn from_labels_builds_equalities() {
        let s = LabelSelector::from_labels(&labels(&[("b", "2"), ("a", "1")])).unwrap();
        assert_eq!(s.to_string(), "a=1,b=2");
        assert!(LabelSelector::from_labels(&labels(&[("a", "bad value")])).is_err());
    }
}
