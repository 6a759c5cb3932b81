//! Output formats: the server's Table rendered as kubectl renders it (aligned with Go's
//! tabwriter settings: minimum width 6, padding 3), and JSON/YAML/name printing.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// How a Table is rendered.
#[derive(Clone, Debug, Default)]
pub struct TableOptions {
    /// Show `priority > 0` columns (`-o wide`).
    pub wide: bool,
    /// Prepend a NAMESPACE column (`-A`).
    pub namespace_column: bool,
    /// Append a LABELS column (`--show-labels`).
    pub show_labels: bool,
    pub no_headers: bool,
    /// Prefix for the NAME cells (`deployment.apps/`), used when several types are printed.
    pub name_prefix: Option<String>,
}

/// Header and row cells of a `meta.k8s.io/v1` Table, as kubectl would print them.
pub fn table_cells(table: &Value, opts: &TableOptions) -> Vec<Vec<String>> {
    let columns = table["columnDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let shown: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| opts.wide || c["priority"].as_i64().unwrap_or(0) == 0)
        .map(|(i, _)| i)
        .collect();
    let name_index = columns
        .iter()
        .position(|c| c["name"].as_str() == Some("Name"));
    let mut lines = Vec::new();
    if !opts.no_headers {
        let mut header = Vec::new();
        if opts.namespace_column {
            header.push("NAMESPACE".to_string());
        }
        for &i in &shown {
            header.push(
                columns[i]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_uppercase(),
            );
        }
        if opts.show_labels {
            header.push("LABELS".to_string());
        }
        lines.push(header);
    }
    for row in table["rows"].as_array().into_iter().flatten() {
        let cells = row["cells"].as_array().cloned().unwrap_or_default();
        let meta = &row["object"]["metadata"];
        let mut line = Vec::new();
        if opts.namespace_column {
            line.push(meta["namespace"].as_str().unwrap_or_default().to_string());
        }
        for &i in &shown {
            let mut cell = cells.get(i).map(format_cell).unwrap_or_default();
            if Some(i) == name_index {
                if let Some(prefix) = &opts.name_prefix {
                    cell = format!("{prefix}{cell}");
                }
            }
            line.push(cell);
        }
        if opts.show_labels {
            line.push(format_labels(&meta["labels"]));
        }
        lines.push(line);
    }
    lines
}

/// One Table cell as kubectl prints it: strings cut at the first line break (with `...`),
/// numbers and booleans as Go's `%v` would.
pub fn format_cell(v: &Value) -> String {
    match v {
        Value::String(s) => match s.find(['\n', '\r', '\x0c']) {
            Some(i) => format!("{}...", &s[..i]),
            None => s.clone(),
        },
        Value::Null => "<nil>".into(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// `a=b,c=d` in key order, or `<none>`.
pub fn format_labels(labels: &Value) -> String {
    let map: BTreeMap<&str, &str> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
        .collect();
    if map.is_empty() {
        return "<none>".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Aligns cells into columns like Go's `tabwriter.NewWriter(w, 6, 4, 3, ' ', 0)` with every
/// cell but the last of a line tab-terminated: each column is as wide as its widest cell plus
/// 3, and at least 6; the last cell of each line is not padded.
pub fn align(lines: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for line in lines {
        for (i, cell) in line.iter().enumerate().take(line.len().saturating_sub(1)) {
            let w = (cell.chars().count() + 3).max(6);
            if widths.len() <= i {
                widths.push(w);
            } else if widths[i] < w {
                widths[i] = w;
            }
        }
    }
    let mut out = String::new();
    for line in lines {
        for (i, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < line.len() {
                let pad = widths[i] - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// A copy with every object's keys sorted, as Go's encoding of maps orders them.
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// `kubectl -o json`: keys sorted, four-space indent, `<`, `>` and `&` escaped as Go does.
pub fn to_json(v: &Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    sorted(v)
        .serialize(&mut ser)
        .expect("a JSON value serialises");
    let text = String::from_utf8(buf).expect("serde_json writes UTF-8");
    let mut out = go_escape(&text);
    out.push('\n');
    out
}

/// Compact JSON with sorted keys (and Go's HTML escaping), as kubectl stores the
/// last-applied-configuration annotation (with its trailing newline).
pub fn to_compact_json(v: &Value) -> String {
    go_escape(&sorted(v).to_string())
}

fn go_escape(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// `kubectl -o yaml`: keys sorted.
pub fn to_yaml(v: &Value) -> String {
    skiff_common::yaml::to_string(&sorted(v)).unwrap_or_default()
}

/// What `-o json|yaml` prints for several objects: a `v1` `List`.
pub fn list_of(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Value {
        json!({
            "columnDefinitions": [
                {"name": "Name", "type": "string", "priority": 0},
                {"name": "Ready", "type": "string", "priority": 0},
                {"name": "Containers", "type": "string", "priority": 1},
                {"name": "Age", "type": "string", "priority": 0},
            ],
            "rows": [
                {"cells": ["web", "3/3", "httpd", "5m3s"], "object": {"metadata": {"name": "web", "namespace": "default", "labels": {"b": "2", "a": "1"}}}},
                {"cells": ["a-much-longer-name", "0/1", "x", "2d4h"], "object": {"metadata": {"name": "a-much-longer-name", "namespace": "kube-system"}}},
            ]
        })
    }

    #[test]
    fn aligned_like_kubectl() {
        let out = align(&table_cells(&table(), &TableOptions::default()));
        assert_eq!(
            out,
            "NAME                 READY   AGE\nweb                  3/3     5m3s\na-much-longer-name   0/1     2d4h\n"
        );
    }

    #[test]
    fn wide_namespaces_labels_and_prefix() {
        let opts = TableOptions {
            wide: true,
            namespace_column: true,
            show_labels: true,
            name_prefix: Some("deployment.apps/".into()),
            ..Default::default()
        };
        let cells = table_cells(&table(), &opts);
        assert_eq!(
            cells[0],
            ["NAMESPACE", "NAME", "READY", "CONTAINERS", "AGE", "LABELS"]
        );
        assert_eq!(
            cells[1],
            [
                "default",
                "deployment.apps/web",
                "3/3",
                "httpd",
                "5m3s",
                "a=1,b=2"
            ]
        );
        assert_eq!(cells[2][5], "<none>");
    }

    #[test]
    fn minimum_width_is_six() {
        let lines = vec![
            vec!["A".to_string(), "B".to_string()],
            vec!["x".into(), "y".into()],
        ];
        assert_eq!(align(&lines), "A     B\nx     y\n");
    }

    #[test]
    fn cells_cut_at_newlines() {
        assert_eq!(format_cell(&json!("one\ntwo")), "one...");
        assert_eq!(format_cell(&json!(3)), "3");
        assert_eq!(format_cell(&json!(true)), "true");
    }

    #[test]
    fn json_is_sorted_and_indented_by_four() {
        let v = json!({"b": 1, "a": {"d": "<x>", "c": [1]}});
        assert_eq!(
            to_json(&v),
            "{\n    \"a\": {\n        \"c\": [\n            1\n        ],\n        \"d\": \"\\u003cx\\u003e\"\n    },\n    \"b\": 1\n}\n"
        );
        assert_eq!(
            to_compact_json(&v),
            "{\"a\":{\"c\":[1],\"d\":\"\\u003cx\\u003e\"},\"b\":1}"
        );
    }
}
