//! Server-side `meta.k8s.io/v1` Table rendering.
//!
//! When kubectl sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`
//! kube-apiserver answers with a `Table` whose columns and cells are produced
//! by its built-in printers. This module reproduces those printers for the
//! kinds skiff serves, so `kubectl get` (and `-o wide`, `--show-labels`, `-L`,
//! `-A`) look exactly as they do against a real cluster.
//!
//! As kube-apiserver does, every row carries all cells, wide ones included;
//! kubectl hides the columns with `priority > 0` unless `-o wide` is given.

pub mod format;
#[cfg(test)]
mod tests;
pub mod unserved;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use format::{age, arr, get, is_empty, name};

/// `?includeObject=` parameter: None | Metadata (default) | Object
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter; anything unrecognised or
    /// absent gives the default, `Metadata`.
    pub fn parse(s: Option<&str>) -> IncludeObject {
        match s.map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("none") => IncludeObject::None,
            Some(v) if v.eq_ignore_ascii_case("object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// True when the Accept header asks for a meta.k8s.io Table (v1 or v1beta1).
pub fn wants_table_accept(accept: &str) -> bool {
    accept.split(',').any(media_range_is_table)
}

pub fn media_range_is_table(range: &str) -> bool {
    let mut parts = range.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    if !matches!(
        media.as_str(),
        "application/json" | "application/*" | "*/*" | "*"
    ) {
        return false;
    }
    let (mut as_table, mut group_ok, mut version_ok, mut q_ok) = (false, false, false, true);
    for param in parts {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim().trim_matches('"');
        match key.as_str() {
            "as" => as_table = value == "Table",
            "g" => group_ok = value == "meta.k8s.io",
            "v" => version_ok = value == "v1" || value == "v1beta1",
            "q" => q_ok = value.parse::<f64>().map(|q| q > 0.0).unwrap_or(true),
            _ => {}
        }
    }
    as_table && group_ok && version_ok && q_ok
}

/// Table for a list response (`{"kind": "PodList", "metadata": {...}, "items": [...]}`) of the
/// kind `kind` that `printer` renders.
pub fn table_for_list(
    printer: &Printer,
    kind: &str,
    list: &Value,
    include_object: IncludeObject,
) -> Value {
    table_for_list_at(printer, kind, list, include_object, Timestamp::now())
}

/// Table with one row for a single object.
pub fn table_for_object(
    printer: &Printer,
    kind: &str,
    obj: &Value,
    include_object: IncludeObject,
) -> Value {
    table_for_object_at(printer, kind, obj, include_object, Timestamp::now())
}

/// [`table_for_list`] with an explicit "now", for deterministic ages.
pub(crate) fn table_for_list_at(
    printer: &Printer,
    kind: &str,
    list: &Value,
    include_object: IncludeObject,
    now: Timestamp,
) -> Value {
    let item_api_version = list.get("apiVersion").and_then(Value::as_str);
    let rows: Vec<Value> = arr(list, &["items"])
        .iter()
        .map(|item| build_row(printer, kind, item, item_api_version, include_object, now))
        .collect();
    let mut meta = Map::new();
    if let Some(rv) = get(list, &["metadata", "resourceVersion"]) {
        meta.insert("resourceVersion".into(), rv.clone());
    }
    if let Some(c) = get(list, &["metadata", "continue"]).filter(|c| !is_empty(c)) {
        meta.insert("continue".into(), c.clone());
    }
    if let Some(n) = get(list, &["metadata", "remainingItemCount"]).filter(|n| !n.is_null()) {
        meta.insert("remainingItemCount".into(), n.clone());
    }
    table_value(printer, meta, rows)
}

/// [`table_for_object`] with an explicit "now", for deterministic ages.
pub(crate) fn table_for_object_at(
    printer: &Printer,
    kind: &str,
    obj: &Value,
    include_object: IncludeObject,
    now: Timestamp,
) -> Value {
    let mut meta = Map::new();
    if let Some(rv) = get(obj, &["metadata", "resourceVersion"]) {
        meta.insert("resourceVersion".into(), rv.clone());
    }
    let row = build_row(printer, kind, obj, None, include_object, now);
    table_value(printer, meta, vec![row])
}

pub fn table_value(printer: &Printer, meta: Map<String, Value>, rows: Vec<Value>) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": Value::Object(meta),
        "columnDefinitions": printer.columns.iter().map(Col::to_json).collect::<Vec<_>>(),
        "rows": rows,
    })
}

pub fn build_row(
    printer: &Printer,
    kind: &str,
    obj: &Value,
    api_version: Option<&str>,
    include_object: IncludeObject,
    now: Timestamp,
) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array((printer.cells)(obj, now)));
    if let Some(conditions) = printer.conditions.and_then(|f| f(obj)) {
        row.insert("conditions".into(), conditions);
    }
    match include_object {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            let metadata = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
            row.insert(
                "object".into(),
                json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": metadata,
                }),
            );
        }
        IncludeObject::Object => {
            let mut full = obj.clone();
            if let Value::Object(m) = &mut full {
                // Items of a list usually come without kind/apiVersion; the
                // embedded object must be self-describing for the client.
                if !m.contains_key("apiVersion") {
                    if let Some(av) = api_version {
                        m.insert("apiVersion".into(), Value::String(av.to_string()));
                    }
                }
                if !m.contains_key("kind") {
                    m.insert("kind".into(), Value::String(kind.to_string()));
                }
            }
            row.insert("object".into(), full);
        }
    }
    Value::Object(row)
}

// ---------------------------------------------------------------------------
// Columns
// ---------------------------------------------------------------------------

pub struct Col {
    pub name: &'static str,
    pub ty: &'static str,
    pub format: &'static str,
    pub priority: i32,
    pub description: &'static str,
}

impl Col {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

pub const fn c(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        priority: 0,
        description,
    }
}

pub const fn w(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        priority: 1,
        description,
    }
}

pub const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

pub const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

pub const CONTAINERS_DESC: &str = "Names of each container in the template.";

pub const IMAGES_DESC: &str = "Images referenced by each container in the template.";

pub const SELECTOR_DESC: &str = "Label query over pods that should match the replica count.";

pub const NAME: Col = Col {
    name: "Name",
    ty: "string",
    format: "name",
    priority: 0,
    description: NAME_DESC,
};

pub const AGE: Col = c("Age", "string", AGE_DESC);

pub const DEFAULT_COLUMNS: &[Col] = &[NAME, AGE];

// ---------------------------------------------------------------------------
// Printers
// ---------------------------------------------------------------------------

pub type CellsFn = fn(&Value, Timestamp) -> Vec<Value>;

pub type ConditionsFn = fn(&Value) -> Option<Value>;

pub struct Printer {
    pub columns: &'static [Col],
    pub cells: CellsFn,
    pub conditions: Option<ConditionsFn>,
}

pub const fn printer(columns: &'static [Col], cells: CellsFn) -> Printer {
    Printer {
        columns,
        cells,
        conditions: None,
    }
}

pub fn default_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), age(obj, now)]
}

pub static DEFAULT: Printer = printer(DEFAULT_COLUMNS, default_cells);
