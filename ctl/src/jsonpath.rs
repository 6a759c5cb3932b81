//! The subset of kubectl's JSONPath templates people use: `{.a.b}`, `{.items[*].metadata.name}`,
//! `[n]`, `['key.with.dots']`, `{range ...}...{end}` and quoted literals like `{"\n"}`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
}

/// Renders `template` against `data`.
pub fn render(template: &str, data: &Value) -> Result<String, String> {
    let nodes = parse(template)?;
    let mut out = String::new();
    eval(&nodes, data, &mut out)?;
    Ok(out)
}

fn parse(template: &str) -> Result<Vec<Node>, String> {
    let mut tokens = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find('{') {
            Some(start) => {
                if start > 0 {
                    tokens.push(Tok::Text(rest[..start].to_string()));
                }
                let end = rest[start..]
                    .find('}')
                    .map(|e| e + start)
                    .ok_or_else(|| format!("unclosed action in jsonpath template {template:?}"))?;
                tokens.push(Tok::Action(rest[start + 1..end].trim().to_string()));
                rest = &rest[end + 1..];
            }
            None => {
                tokens.push(Tok::Text(rest.to_string()));
                rest = "";
            }
        }
    }
    let mut iter = tokens.into_iter();
    let nodes = parse_nodes(&mut iter, false)?;
    Ok(nodes)
}

enum Tok {
    Text(String),
    Action(String),
}

fn parse_nodes(iter: &mut impl Iterator<Item = Tok>, in_range: bool) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    while let Some(tok) = iter.next() {
        match tok {
            Tok::Text(t) => nodes.push(Node::Text(t)),
            Tok::Action(a) if a == "end" => {
                if in_range {
                    return Ok(nodes);
                }
                return Err("{end} without {range}".into());
            }
            Tok::Action(a) => {
                if let Some(path) = a.strip_prefix("range ") {
                    let body = parse_nodes(iter, true)?;
                    nodes.push(Node::Range(parse_path(path.trim())?, body));
                } else if a.starts_with('"') || a.starts_with('\'') {
                    nodes.push(Node::Text(unquote(&a)?));
                } else {
                    nodes.push(Node::Path(parse_path(&a)?));
                }
            }
        }
    }
    if in_range {
        return Err("{range} without {end}".into());
    }
    Ok(nodes)
}

fn unquote(s: &str) -> Result<String, String> {
    let inner = &s[1..s.len().saturating_sub(1).max(1)];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => return Err(format!("bad escape in {s}")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_path(p: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut rest = p.strip_prefix('$').unwrap_or(p);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("unterminated [ in jsonpath {p:?}"))?;
            let inner = r[..end].trim();
            if inner == "*" {
                steps.push(Step::All);
            } else if inner.starts_with('\'') || inner.starts_with('"') {
                steps.push(Step::Field(unquote(inner)?));
            } else {
                let n = inner
                    .parse()
                    .map_err(|_| format!("unsupported index [{inner}] in jsonpath {p:?}"))?;
                steps.push(Step::Index(n));
            }
            rest = &r[end + 1..];
        } else {
            // A bare first field, as in `{metadata.name}`.
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            steps.push(Step::Field(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    Ok(steps)
}

fn select<'a>(data: &'a Value, steps: &[Step]) -> Vec<&'a Value> {
    let mut current = vec![data];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(f) => {
                    if let Some(x) = v.get(f.as_str()) {
                        next.push(x);
                    }
                }
                Step::Index(i) => {
                    if let Some(a) = v.as_array() {
                        let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                        if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                            next.push(x);
                        }
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
            }
        }
        current = next;
    }
    current
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn eval(nodes: &[Node], data: &Value, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Path(steps) => {
                let values: Vec<String> = select(data, steps).into_iter().map(text_of).collect();
                out.push_str(&values.join(" "));
            }
            Node::Range(steps, body) => {
                for item in select(data, steps) {
                    eval(body, item, out)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_indexes_wildcards_and_ranges() {
        let list = json!({"items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}}, "spec": {"replicas": 2}},
            {"metadata": {"name": "b"}, "spec": {"replicas": 3}},
        ]});
        assert_eq!(render("{.items[*].metadata.name}", &list).unwrap(), "a b");
        assert_eq!(render("{.items[0].spec.replicas}", &list).unwrap(), "2");
        assert_eq!(render("{.items[-1].metadata.name}", &list).unwrap(), "b");
        assert_eq!(
            render(
                "{.items[0].metadata.labels['app.kubernetes.io/name']}",
                &list
            )
            .unwrap(),
            "x"
        );
        assert_eq!(
            render(
                r#"{range .items[*]}{.metadata.name}={.spec.replicas}{"\n"}{end}"#,
                &list
            )
            .unwrap(),
            "a=2\nb=3\n"
        );
        assert_eq!(
            render("name: {.items[1].metadata.name}!", &list).unwrap(),
            "name: b!"
        );
        assert!(render("{.items", &list).is_err());
    }
}
