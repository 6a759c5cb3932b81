//! Field ownership for server-side apply: which manager set which field, recorded in
//! `metadata.managedFields` in Kubernetes' FieldsV1 form (`f:name`, `k:{"name":"c"}`, `v:80`).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};
use skiff_common::{ListStrategy, SchemaNode};

/// One step of a field path, rendered as FieldsV1 renders it.
pub type Path = Vec<String>;

/// A set of owned field paths. A path is a leaf field, a keyed list element (`k:`), or a set
/// member (`v:`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(pub BTreeSet<Path>);

/// Fields nobody owns: identity and server-managed metadata, and the status.
fn excluded(path: &[String]) -> bool {
    match path {
        [one] => matches!(one.as_str(), "f:apiVersion" | "f:kind" | "f:status"),
        [meta, field] if meta == "f:metadata" => matches!(
            field.as_str(),
            "f:name"
                | "f:namespace"
                | "f:uid"
                | "f:resourceVersion"
                | "f:generation"
                | "f:creationTimestamp"
                | "f:deletionTimestamp"
                | "f:deletionGracePeriodSeconds"
                | "f:managedFields"
                | "f:selfLink"
        ),
        _ => false,
    }
}

fn key_element(key: &str, element: &Value) -> String {
    let mut m = Map::new();
    m.insert(
        key.to_string(),
        element.get(key).cloned().unwrap_or(Value::Null),
    );
    format!("k:{}", Value::Object(m))
}

impl FieldSet {
    /// The fields an object sets, following the kind's list strategies.
    pub fn of(obj: &Value, schema: Option<&SchemaNode>) -> FieldSet {
        let mut set = BTreeSet::new();
        walk(obj, schema, &mut Vec::new(), &mut set);
        FieldSet(set)
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.0.contains(path)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// FieldsV1 JSON: a tree of path steps, `.` marking a member that also has children.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for step in path {
                node = node
                    .entry(step.clone())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("FieldsV1 nodes are objects");
            }
        }
        // Members with children get an explicit "." entry.
        fn mark(node: &mut Map<String, Value>, set: &BTreeSet<Path>, prefix: &mut Path) {
            for (k, v) in node.iter_mut() {
                prefix.push(k.clone());
                if let Some(child) = v.as_object_mut() {
                    if !child.is_empty() {
                        mark(child, set, prefix);
                        if set.contains(prefix) {
                            child.insert(".".into(), json!({}));
                        }
                    }
                }
                prefix.pop();
            }
        }
        mark(&mut root, &self.0, &mut Vec::new());
        Value::Object(root)
    }

    pub fn from_fields_v1(v: &Value) -> FieldSet {
        fn walk(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
            let Some(map) = v.as_object() else { return };
            if (map.is_empty() || map.contains_key(".")) && !prefix.is_empty() {
                out.insert(prefix.clone());
            }
            for (k, child) in map {
                if k == "." {
                    continue;
                }
                prefix.push(k.clone());
                walk(child, prefix, out);
                prefix.pop();
            }
        }
        let mut out = BTreeSet::new();
        walk(v, &mut Vec::new(), &mut out);
        FieldSet(out)
    }
}

fn walk(v: &Value, schema: Option<&SchemaNode>, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(map) = v.as_object() else { return };
    for (k, child) in map {
        prefix.push(format!("f:{k}"));
        if excluded(prefix) {
            prefix.pop();
            continue;
        }
        let meta = schema.and_then(|s| s.field(k));
        let node = meta.and_then(|m| m.node);
        match child {
            Value::Object(m) if !m.is_empty() => walk(child, node, prefix, out),
            Value::Array(items) => match meta.map(|m| m.list).unwrap_or(ListStrategy::Atomic) {
                ListStrategy::MergeByKey(key) => {
                    for item in items {
                        prefix.push(key_element(key, item));
                        out.insert(prefix.clone());
                        walk(item, node, prefix, out);
                        prefix.pop();
                    }
                }
                ListStrategy::MergePrimitives => {
                    for item in items {
                        prefix.push(format!("v:{item}"));
                        out.insert(prefix.clone());
                        prefix.pop();
                    }
                }
                ListStrategy::Atomic => {
                    out.insert(prefix.clone());
                }
            },
            _ => {
                out.insert(prefix.clone());
            }
        }
        prefix.pop();
    }
}

fn step_matches_element(step: &str, element: &Value) -> bool {
    if let Some(key) = step.strip_prefix("k:") {
        let Ok(Value::Object(want)) = serde_json::from_str::<Value>(key) else {
            return false;
        };
        return want.iter().all(|(k, v)| element.get(k) == Some(v));
    }
    if let Some(val) = step.strip_prefix("v:") {
        return serde_json::from_str::<Value>(val).is_ok_and(|v| &v == element);
    }
    false
}

/// The value a path names in an object, if present.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for step in path {
        cur = if let Some(name) = step.strip_prefix("f:") {
            cur.get(name)?
        } else {
            cur.as_array()?
                .iter()
                .find(|e| step_matches_element(step, e))?
        };
    }
    Some(cur)
}

/// Remove what a path names from an object; missing paths are ignored.
pub fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for step in parent_path {
        let next = if let Some(name) = step.strip_prefix("f:") {
            cur.get_mut(name)
        } else {
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|e| step_matches_element(step, e)))
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(name);
        }
    } else if let Some(items) = cur.as_array_mut() {
        items.retain(|e| !step_matches_element(last, e));
    }
}

/// `.spec.template.spec.containers[name="c"].image`, as Kubernetes prints conflicting fields.
pub fn render_path(path: &[String]) -> String {
    let mut out = String::new();
    for step in path {
        if let Some(name) = step.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = step.strip_prefix("k:") {
            let rendered = serde_json::from_str::<Value>(key)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            out.push_str(&format!("[{rendered}]"));
        } else if let Some(v) = step.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        }
    }
    out
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
}

impl Entry {
    fn to_json(&self) -> Value {
        json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        })
    }
}

pub fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or("").to_string(),
            operation: e["operation"].as_str().unwrap_or("Update").to_string(),
            api_version: e["apiVersion"].as_str().unwrap_or("").to_string(),
            time: e["time"].as_str().unwrap_or("").to_string(),
            fields: FieldSet::from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

pub fn store_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// A conflict: another manager owns a field the applier sets to a different value.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: Path,
}

/// Server-side apply of `applied` by `manager` onto `current` (None: the object is new).
/// Returns the merged object with its managedFields, or the conflicts that stop it.
pub fn apply(
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    api_version: &str,
    schema: Option<&SchemaNode>,
    force: bool,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let applied_set = FieldSet::of(applied, schema);
    let Some(current) = current else {
        let mut obj = applied.clone();
        store_entries(
            &mut obj,
            &[Entry {
                manager: manager.into(),
                operation: "Apply".into(),
                api_version: api_version.into(),
                time: now.into(),
                fields: applied_set,
            }],
        );
        return Ok(obj);
    };
    let mut owners = entries(current);
    let is_me = |e: &Entry| e.manager == manager && e.operation == "Apply";

    let mut conflicts = Vec::new();
    for path in &applied_set.0 {
        let (Some(now_value), Some(want)) = (value_at(current, path), value_at(applied, path))
        else {
            continue;
        };
        if now_value == want || now_value.is_object() {
            continue;
        }
        for e in owners
            .iter()
            .filter(|e| !is_me(e) && e.fields.contains(path))
        {
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                api_version: e.api_version.clone(),
                path: path.clone(),
            });
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for c in &conflicts {
        for e in owners.iter_mut().filter(|e| e.manager == c.manager) {
            e.fields.0.remove(&c.path);
        }
    }

    let mut merged =
        skiff_common::apply_patch(current, applied, schema).unwrap_or_else(|_| applied.clone());
    let previous = owners
        .iter()
        .find(|e| is_me(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for path in previous.0.difference(&applied_set.0) {
        let owned_elsewhere = owners
            .iter()
            .any(|e| !is_me(e) && e.fields.0.iter().any(|p| p.starts_with(path)));
        if !owned_elsewhere {
            remove_path(&mut merged, path);
        }
    }
    owners.retain(|e| !is_me(e));
    owners.push(Entry {
        manager: manager.into(),
        operation: "Apply".into(),
        api_version: api_version.into(),
        time: now.into(),
        fields: applied_set,
    });
    store_entries(&mut merged, &owners);
    Ok(merged)
}

/// Record an ordinary write (create, update, non-apply patch) by `manager`: the fields it
/// changed become its own and stop belonging to anyone else.
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    schema: Option<&SchemaNode>,
    now: &str,
) {
    let mut owners = old.map(entries).unwrap_or_default();
    let new_set = FieldSet::of(new, schema);
    let changed: BTreeSet<Path> = new_set
        .0
        .iter()
        .filter(|p| old.and_then(|o| value_at(o, p)) != value_at(new, p))
        .cloned()
        .collect();
    for e in owners.iter_mut() {
        // Fields that no longer exist are owned by nobody; changed ones move to this manager.
        e.fields
            .0
            .retain(|p| new_set.contains(p) && !(changed.contains(p) && e.manager != manager));
    }
    if !changed.is_empty() {
        match owners
            .iter_mut()
            .find(|e| e.manager == manager && e.operation == "Update")
        {
            Some(e) => {
                e.fields.0.extend(changed);
                e.time = now.into();
            }
            None => owners.push(Entry {
                manager: manager.into(),
                operation: "Update".into(),
                api_version: api_version.into(),
                time: now.into(),
                fields: FieldSet(changed),
            }),
        }
    }
    store_entries(new, &owners);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Option<&'static SchemaNode> {
        skiff_common::schema_for("apps/v1", "Deployment")
    }

    fn deployment(image: &str, ports: Value, replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "c", "image": image, "ports": ports}]}}}})
    }

    #[test]
    fn fields_v1_round_trips_with_keyed_elements() {
        let d = deployment("i", json!([{"containerPort": 80}]), 1);
        let set = FieldSet::of(&d, schema());
        assert!(set.contains(&vec!["f:spec".into(), "f:replicas".into()]));
        let container: Path = vec![
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"c\"}",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert!(set.contains(&container));
        assert!(!set.contains(&vec!["f:metadata".into(), "f:name".into()]));
        let v1 = set.to_fields_v1();
        assert!(v1
            .pointer("/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"c\"}/.")
            .is_some());
        assert_eq!(FieldSet::from_fields_v1(&v1), set);
    }

    #[test]
    fn reapplying_without_a_field_removes_it() {
        let first = deployment(
            "i",
            json!([{"containerPort": 80}, {"containerPort": 81}]),
            1,
        );
        let created = apply(None, &first, "me", "apps/v1", schema(), false, "t").unwrap();
        let second = deployment("i", json!([{"containerPort": 80}]), 1);
        let merged = apply(
            Some(&created),
            &second,
            "me",
            "apps/v1",
            schema(),
            false,
            "t",
        )
        .unwrap();
        let ports = merged
            .pointer("/spec/template/spec/containers/0/ports")
            .unwrap();
        assert_eq!(ports, &json!([{"containerPort": 80}]));
    }

    #[test]
    fn other_managers_fields_conflict_unless_forced() {
        let created = apply(
            None,
            &deployment("i", json!([]), 1),
            "me",
            "apps/v1",
            schema(),
            false,
            "t",
        )
        .unwrap();
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(5);
        track_update(
            Some(&created),
            &mut scaled,
            "kubectl-scale",
            "apps/v1",
            schema(),
            "t",
        );
        let conflicts = apply(
            Some(&scaled),
            &deployment("i", json!([]), 3),
            "me",
            "apps/v1",
            schema(),
            false,
            "t",
        )
        .unwrap_err();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].manager, "kubectl-scale");
        assert_eq!(render_path(&conflicts[0].path), ".spec.replicas");
        let forced = apply(
            Some(&scaled),
            &deployment("i", json!([]), 3),
            "me",
            "apps/v1",
            schema(),
            true,
            "t",
        )
        .unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        // Same value is no conflict.
        assert!(apply(
            Some(&scaled),
            &deployment("i", json!([]), 5),
            "me",
            "apps/v1",
            schema(),
            false,
            "t"
        )
        .is_ok());
    }

    #[test]
    fn a_field_owned_by_someone_else_survives_its_removal_from_my_config() {
        let created = apply(
            None,
            &deployment("i", json!([]), 1),
            "me",
            "apps/v1",
            schema(),
            false,
            "t",
        )
        .unwrap();
        let mut labelled = created.clone();
        labelled["metadata"]["labels"]["app"] = json!("web");
        track_update(
            Some(&created),
            &mut labelled,
            "other",
            "apps/v1",
            schema(),
            "t",
        );
        // "other" set the label to the same value: no change, so it does not own it.
        let mut relabelled = labelled.clone();
        relabelled["metadata"]["labels"]["team"] = json!("a");
        track_update(
            Some(&labelled),
            &mut relabelled,
            "other",
            "apps/v1",
            schema(),
            "t",
        );
        let mut mine = deployment("i", json!([]), 1);
        mine["metadata"]["labels"] = json!({"app": "web"});
        let merged = apply(
            Some(&relabelled),
            &mine,
            "me",
            "apps/v1",
            schema(),
            false,
            "t",
        )
        .unwrap();
        assert_eq!(merged["metadata"]["labels"]["team"], "a");
    }

    #[test]
    fn paths_render_like_kubernetes() {
        let p: Path = vec![
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"c\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(render_path(&p), ".spec.containers[name=\"c\"].image");
    }
}
