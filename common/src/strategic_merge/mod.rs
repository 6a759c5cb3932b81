//! Strategic merge patch for the built-in kinds skiff serves: applying a patch (apiserver) and
//! computing the three-way patch `kubectl apply` sends (CLI).
//!
//! Behaviour follows k8s.io/apimachinery/pkg/util/strategicpatch, including its ordering rules,
//! so that patches produced by real kubectl apply here as they do against Kubernetes.

use serde_json::{Map, Value};

pub mod schema;
pub use schema::schema_for;

const PATCH_DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder/";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList/";

/// Why a patch could not be applied or computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch, original, modified or current document is not a JSON object.
    #[error("the {0} document must be a JSON object")]
    NotAnObject(&'static str),
    /// A `$patch`, `$retainKeys`, `$setElementOrder` or `$deleteFromPrimitiveList` directive is malformed.
    #[error("invalid patch directive at {path}: {reason}")]
    Directive { path: String, reason: String },
    /// An element of a list merged by key lacks that key.
    #[error("element {element} of list {path} has no merge key {key:?}")]
    MissingMergeKey {
        path: String,
        key: String,
        element: String,
    },
    /// A merged list holds elements of the wrong shape for its strategy.
    #[error("list {path}: {reason}")]
    BadElement { path: String, reason: String },
}

/// How a list field combines with a patch, from its `patchStrategy`/`patchMergeKey` tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// No merge strategy: the patch's list replaces the whole list.
    Atomic,
    /// `patchStrategy:"merge"` on a list of scalars: set union.
    MergePrimitives,
    /// `patchStrategy:"merge"` with `patchMergeKey`: elements matched by this key.
    MergeByKey(&'static str),
}

/// Patch metadata of one field of a struct type.
#[derive(Debug)]
pub struct Field {
    /// JSON name of the field.
    pub name: &'static str,
    /// Type of the field (or of its list elements), when it has fields with strategies.
    pub node: Option<&'static SchemaNode>,
    /// Strategy when the field is a list.
    pub list: ListStrategy,
    /// `retainKeys` strategy: the map (or each list element) is cleared of keys not listed.
    pub retain_keys: bool,
}

/// A struct type: the fields that need more than plain recursive map merging.
#[derive(Debug)]
pub struct SchemaNode {
    /// Go type name, for debugging.
    pub name: &'static str,
    /// Fields with a strategy or leading to one; unlisted fields merge as plain JSON.
    pub fields: &'static [Field],
}

impl SchemaNode {
    /// Patch metadata of a field, if the schema knows it.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[derive(Clone, Copy)]
struct Meta {
    node: Option<&'static SchemaNode>,
    list: ListStrategy,
    retain_keys: bool,
}

/// Unknown fields (and unknown kinds) behave like JSON merge patch: maps merge, lists replace.
fn lookup(node: Option<&SchemaNode>, name: &str) -> Meta {
    match node.and_then(|n| n.field(name)) {
        Some(f) => Meta {
            node: f.node,
            list: f.list,
            retain_keys: f.retain_keys,
        },
        None => Meta {
            node: None,
            list: ListStrategy::Atomic,
            retain_keys: false,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Applying a patch.

/// Applies a strategic merge patch to an object; with no schema, lists are replaced.
pub fn apply_patch(
    original: &Value,
    patch: &Value,
    schema: Option<&SchemaNode>,
) -> Result<Value, PatchError> {
    let patch = patch.as_object().ok_or(PatchError::NotAnObject("patch"))?;
    let original = match original {
        Value::Object(o) => o.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::NotAnObject("original")),
    };
    merge_map(original, patch, schema, "").map(Value::Object)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn directive_error(path: &str, reason: impl Into<String>) -> PatchError {
    PatchError::Directive {
        path: if path.is_empty() {
            "<root>".into()
        } else {
            path.into()
        },
        reason: reason.into(),
    }
}

fn is_directive_key(key: &str) -> bool {
    key == PATCH_DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ORDER_PREFIX)
        || key.starts_with(DELETE_PRIMITIVE_PREFIX)
}

fn merge_map(
    original: Map<String, Value>,
    patch: &Map<String, Value>,
    node: Option<&SchemaNode>,
    path: &str,
) -> Result<Map<String, Value>, PatchError> {
    match patch.get(PATCH_DIRECTIVE) {
        None => merge_fields(original, patch, node, path),
        Some(d) => match d.as_str() {
            // The rest of the patch becomes the whole map, minus nulls and directives.
            Some("replace") => merge_fields(Map::new(), patch, node, path),
            Some("delete") => Ok(Map::new()),
            _ => Err(directive_error(
                path,
                format!("$patch in a map must be \"replace\" or \"delete\", not {d}"),
            )),
        },
    }
}

/// A `$setElementOrder` directive with the list as it was before merging, whose order
/// decides where elements the patch does not mention end up.
struct OrderDirective<'p> {
    field: &'p str,
    order: &'p [Value],
    before: Vec<Value>,
}

fn merge_fields(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    node: Option<&SchemaNode>,
    path: &str,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(keys) = patch.get(RETAIN_KEYS) {
        apply_retain_keys(&mut original, keys, patch, path)?;
    }
    let mut orders = Vec::new();
    let mut deletions = Vec::new();
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(SET_ORDER_PREFIX) {
            let order = directive_list(value, key, path)?;
            let before = match original.get(field) {
                Some(Value::Array(list)) => list.clone(),
                _ => Vec::new(),
            };
            orders.push(OrderDirective {
                field,
                order,
                before,
            });
        } else if let Some(field) = key.strip_prefix(DELETE_PRIMITIVE_PREFIX) {
            deletions.push((field, directive_list(value, key, path)?));
        }
    }

    for (key, value) in patch {
        if is_directive_key(key) {
            continue;
        }
        let meta = lookup(node, key);
        let child_path = join(path, key);
        let merged = match original.get_mut(key) {
            _ if value.is_null() => None,
            Some(existing) => merge_value(existing.take(), value, meta, &child_path)?,
            None => fresh_value(value, meta, &child_path)?,
        };
        match merged {
            Some(v) => {
                original.insert(key.clone(), v);
            }
            None => {
                original.shift_remove(key);
            }
        }
    }

    for (field, remove) in deletions {
        if let Some(Value::Array(list)) = original.get_mut(field) {
            list.retain(|v| !remove.iter().any(|r| json_eq(r, v)));
        }
    }
    for directive in orders {
        apply_element_order(&mut original, patch, &directive, node, path)?;
    }
    Ok(original)
}

fn directive_list<'p>(value: &'p Value, key: &str, path: &str) -> Result<&'p [Value], PatchError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| directive_error(path, format!("{key} must be a list, not {value}")))
}

/// Merges a patch value into an existing one; `None` means the key goes away.
fn merge_value(
    existing: Value,
    patch: &Value,
    meta: Meta,
    path: &str,
) -> Result<Option<Value>, PatchError> {
    match (existing, patch) {
        (Value::Object(o), Value::Object(p)) => {
            merge_map(o, p, meta.node, path).map(|m| Some(Value::Object(m)))
        }
        (Value::Array(o), Value::Array(p)) if meta.list != ListStrategy::Atomic => {
            merge_list(o, p, meta, path).map(|l| Some(Value::Array(l)))
        }
        (_, p) => fresh_value(p, meta, path),
    }
}

/// The value a patch puts where the original had nothing (or something of another type):
/// the patch itself with nulls and directives removed.
fn fresh_value(patch: &Value, meta: Meta, path: &str) -> Result<Option<Value>, PatchError> {
    match patch {
        Value::Null => Ok(None),
        Value::Object(p) if p.get(PATCH_DIRECTIVE).and_then(Value::as_str) == Some("delete") => {
            Ok(None)
        }
        Value::Object(p) => {
            merge_map(Map::new(), p, meta.node, path).map(|m| Some(Value::Object(m)))
        }
        Value::Array(p) if meta.list != ListStrategy::Atomic => {
            merge_list(Vec::new(), p, meta, path).map(|l| Some(Value::Array(l)))
        }
        other => Ok(Some(other.clone())),
    }
}

fn apply_retain_keys(
    original: &mut Map<String, Value>,
    keys: &Value,
    patch: &Map<String, Value>,
    path: &str,
) -> Result<(), PatchError> {
    let keys: Vec<&str> = keys
        .as_array()
        .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
        .ok_or_else(|| {
            directive_error(
                path,
                format!("$retainKeys must be a list of strings, not {keys}"),
            )
        })?;
    // A patch that sets a key it does not retain contradicts itself.
    if let Some(key) = patch
        .iter()
        .find(|(k, v)| !v.is_null() && !is_directive_key(k) && !keys.contains(&k.as_str()))
        .map(|(k, _)| k)
    {
        return Err(directive_error(
            path,
            format!("$retainKeys {keys:?} does not list {key:?}, which the patch sets"),
        ));
    }
    original.retain(|k, _| keys.contains(&k.as_str()));
    Ok(())
}

/// The identity of a list element: its merge key value, or the element itself for scalars.
fn identity<'v>(element: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(k) => element.as_object().and_then(|m| m.get(k)),
        None => Some(element),
    }
}

fn position_of(list: &[Value], element: &Value, key: Option<&str>) -> Option<usize> {
    let id = identity(element, key)?;
    list.iter()
        .position(|e| identity(e, key).is_some_and(|x| json_eq(x, id)))
}

fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    meta: Meta,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    match meta.list {
        ListStrategy::MergeByKey(key) => merge_keyed_list(original, patch, key, meta.node, path),
        _ => merge_primitive_list(original, patch, path),
    }
}

fn merge_primitive_list(
    original: Vec<Value>,
    patch: &[Value],
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    if let Some(bad) = patch.iter().find(|v| v.is_object() || v.is_array()) {
        return Err(PatchError::BadElement {
            path: path.to_string(),
            reason: format!("a merged list of scalars cannot take {bad}"),
        });
    }
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for v in original.iter().chain(patch) {
        if position_of(&merged, v, None).is_none() {
            merged.push(v.clone());
        }
    }
    Ok(order_like_patch(merged, patch, &original, None))
}

fn merge_keyed_list(
    original: Vec<Value>,
    patch: &[Value],
    key: &str,
    node: Option<&SchemaNode>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let mut original = original;
    let mut elements = Vec::with_capacity(patch.len());
    let mut replace = false;
    for p in patch {
        let pm = p.as_object().ok_or_else(|| PatchError::BadElement {
            path: path.to_string(),
            reason: format!("a list merged by {key:?} cannot take {p}"),
        })?;
        let Some(directive) = pm.get(PATCH_DIRECTIVE) else {
            elements.push(pm);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let id = pm.get(key).ok_or_else(|| missing_key(path, key, p))?;
                original.retain(|o| identity(o, Some(key)).is_none_or(|x| !json_eq(x, id)));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(directive_error(
                    path,
                    "$patch: merge is not supported in a list",
                ))
            }
            _ => {
                let reason =
                    format!("$patch in a list element must be delete or replace, not {directive}");
                return Err(directive_error(path, reason));
            }
        }
    }
    if replace {
        return elements
            .into_iter()
            .map(|p| merge_fields(Map::new(), p, node, path).map(Value::Object))
            .collect();
    }

    let mut merged = original.clone();
    for p in &elements {
        let id = p
            .get(key)
            .ok_or_else(|| missing_key(path, key, &Value::Object((*p).clone())))?;
        let found = merged
            .iter()
            .position(|o| identity(o, Some(key)).is_some_and(|x| json_eq(x, id)));
        match found {
            Some(i) => {
                let base = match merged[i].take() {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                merged[i] = Value::Object(merge_fields(base, p, node, path)?);
            }
            None => merged.push(Value::Object(merge_fields(Map::new(), p, node, path)?)),
        }
    }
    let patch_order: Vec<Value> = elements
        .iter()
        .map(|p| Value::Object((*p).clone()))
        .collect();
    Ok(order_like_patch(merged, &patch_order, &original, Some(key)))
}

fn missing_key(path: &str, key: &str, element: &Value) -> PatchError {
    PatchError::MissingMergeKey {
        path: path.to_string(),
        key: key.to_string(),
        element: element.to_string(),
    }
}

/// Orders a merged list as Kubernetes does: elements named by `patch_order` follow it, and
/// the others keep their places relative to `server_order` (the list before the patch).
/// A quirk kept for compatibility: elements new to the list go before server-only elements
/// they cannot be compared with, so a plain patch prepends new elements.
fn order_like_patch(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let (mut ours, mut theirs): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| position_of(patch_order, v, key).is_some());
    ours.sort_by_key(|v| position_of(patch_order, v, key));
    theirs.sort_by_key(|v| position_of(server_order, v, key).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(ours.len() + theirs.len());
    let mut ours = ours.into_iter().peekable();
    let mut theirs = theirs.into_iter().peekable();
    loop {
        let take_theirs = match (theirs.peek(), ours.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(t), Some(o)) => matches!(
                (position_of(server_order, t, key), position_of(server_order, o, key)),
                (Some(ti), Some(oi)) if ti < oi
            ),
        };
        let next = if take_theirs {
            theirs.next()
        } else {
            ours.next()
        };
        out.extend(next);
    }
    out
}

fn apply_element_order(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    directive: &OrderDirective<'_>,
    node: Option<&SchemaNode>,
    path: &str,
) -> Result<(), PatchError> {
    let key = match lookup(node, directive.field).list {
        ListStrategy::MergeByKey(k) => Some(k),
        ListStrategy::MergePrimitives => None,
        // The list was replaced wholesale, so its order is already the patch's.
        ListStrategy::Atomic => return Ok(()),
    };
    let list_path = join(path, directive.field);
    if let Some(bad) = directive.order.iter().find(|e| identity(e, key).is_none()) {
        return Err(directive_error(
            &list_path,
            format!("$setElementOrder entry {bad} lacks the merge key"),
        ));
    }
    // Every element the patch lists must appear, in the same relative order.
    if let Some(Value::Array(items)) = patch.get(directive.field) {
        let mut last = None;
        for item in items.iter().filter(|i| identity(i, key).is_some()) {
            if item.get(PATCH_DIRECTIVE).is_some() {
                continue;
            }
            let at = position_of(directive.order, item, key);
            if at.is_none() || at < last {
                return Err(directive_error(
                    &list_path,
                    format!("the patch list element {item} does not follow $setElementOrder"),
                ));
            }
            last = at;
        }
    }
    if let Some(Value::Array(list)) = original.get_mut(directive.field) {
        let merged = std::mem::take(list);
        *list = order_like_patch(merged, directive.order, &directive.before, key);
    }
    Ok(())
}

/// JSON equality where numbers compare by value, as Go's decoding into float64 makes them.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------------
// Computing the three-way patch of `kubectl apply`.

/// The patch `kubectl apply` sends: changes from `current` to `modified`, plus deletions of
/// what `original` (the last-applied configuration) had and `modified` dropped.
pub fn create_three_way_patch(
    original: Option<&Value>,
    modified: &Value,
    current: &Value,
    schema: Option<&SchemaNode>,
) -> Result<Value, PatchError> {
    let modified = modified
        .as_object()
        .ok_or(PatchError::NotAnObject("modified"))?;
    let empty = Map::new();
    let current = match current {
        Value::Object(c) => c,
        Value::Null => &empty,
        _ => return Err(PatchError::NotAnObject("current")),
    };
    let original = match original {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o),
        Some(_) => return Err(PatchError::NotAnObject("original")),
    };
    diff_map(original, modified, current, schema, false, "").map(Value::Object)
}

fn diff_map(
    original: Option<&Map<String, Value>>,
    modified: &Map<String, Value>,
    current: &Map<String, Value>,
    node: Option<&SchemaNode>,
    retain_keys: bool,
    path: &str,
) -> Result<Map<String, Value>, PatchError> {
    let mut patch = Map::new();
    for (key, m) in modified {
        let meta = lookup(node, key);
        let o = original.and_then(|o| o.get(key));
        let Some(c) = current.get(key) else {
            patch.insert(key.clone(), m.clone());
            continue;
        };
        let child_path = join(path, key);
        match (m, c) {
            (Value::Object(mm), Value::Object(cm)) => {
                let om = o.and_then(Value::as_object);
                let sub = diff_map(om, mm, cm, meta.node, meta.retain_keys, &child_path)?;
                if !sub.is_empty() {
                    patch.insert(key.clone(), Value::Object(sub));
                }
            }
            (Value::Array(ml), Value::Array(cl)) if meta.list != ListStrategy::Atomic => {
                let ol = o.and_then(Value::as_array).map(Vec::as_slice);
                let lists = Lists {
                    original: ol,
                    modified: ml,
                    current: cl,
                };
                diff_list(key, lists, meta, &mut patch, &child_path)?;
            }
            _ if !json_eq(m, c) => {
                patch.insert(key.clone(), m.clone());
            }
            _ => {}
        }
    }
    if let Some(original) = original {
        for key in original.keys() {
            if !modified.contains_key(key) {
                patch.insert(key.clone(), Value::Null);
            }
        }
    }
    if retain_keys {
        add_retain_keys(&mut patch, original, modified, current);
    }
    Ok(patch)
}

/// kubectl lists the kept keys of a retainKeys map whenever something changes or either the
/// live or the last-applied map has keys the new configuration lacks.
fn add_retain_keys(
    patch: &mut Map<String, Value>,
    original: Option<&Map<String, Value>>,
    modified: &Map<String, Value>,
    current: &Map<String, Value>,
) {
    let mut keys: Vec<&String> = modified
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k)
        .collect();
    if keys.is_empty() {
        return;
    }
    let has_extra = |m: &Map<String, Value>| {
        m.iter()
            .any(|(k, v)| !v.is_null() && !modified.contains_key(k))
    };
    if patch.is_empty() && !has_extra(current) && !original.is_some_and(has_extra) {
        return;
    }
    keys.sort();
    let keys = keys.into_iter().map(|k| Value::String(k.clone())).collect();
    patch.insert(RETAIN_KEYS.to_string(), Value::Array(keys));
}

struct Lists<'a> {
    original: Option<&'a [Value]>,
    modified: &'a [Value],
    current: &'a [Value],
}

fn diff_list(
    field: &str,
    lists: Lists<'_>,
    meta: Meta,
    patch: &mut Map<String, Value>,
    path: &str,
) -> Result<(), PatchError> {
    match meta.list {
        ListStrategy::MergeByKey(key) => diff_keyed_list(field, lists, key, meta, patch, path),
        _ => {
            diff_primitive_list(field, lists, patch);
            Ok(())
        }
    }
}

fn diff_primitive_list(field: &str, lists: Lists<'_>, patch: &mut Map<String, Value>) {
    let missing_from = |list: &[Value], from: &[Value]| {
        let mut out: Vec<Value> = Vec::new();
        for v in list {
            if position_of(from, v, None).is_none() && position_of(&out, v, None).is_none() {
                out.push(v.clone());
            }
        }
        out
    };
    let additions = missing_from(lists.modified, lists.current);
    let removals = lists
        .original
        .map(|o| missing_from(o, lists.modified))
        .unwrap_or_default();
    let reorder = !removals.is_empty()
        || !json_eq(
            &Value::Array(lists.current.to_vec()),
            &Value::Array(lists.modified.to_vec()),
        );
    if !additions.is_empty() {
        patch.insert(field.to_string(), Value::Array(additions));
    }
    if !removals.is_empty() {
        patch.insert(
            format!("{DELETE_PRIMITIVE_PREFIX}{field}"),
            Value::Array(removals),
        );
    }
    if reorder {
        patch.insert(
            format!("{SET_ORDER_PREFIX}{field}"),
            Value::Array(lists.modified.to_vec()),
        );
    }
}

fn find_keyed<'a>(list: &'a [Value], key: &str, id: &Value) -> Option<&'a Map<String, Value>> {
    list.iter()
        .find(|e| identity(e, Some(key)).is_some_and(|x| json_eq(x, id)))
        .and_then(Value::as_object)
}

fn diff_keyed_list<'a>(
    field: &str,
    lists: Lists<'a>,
    key: &str,
    meta: Meta,
    patch: &mut Map<String, Value>,
    path: &str,
) -> Result<(), PatchError> {
    let id_of = |v: &Value| {
        identity(v, Some(key))
            .cloned()
            .ok_or_else(|| missing_key(path, key, v))
    };
    let find = |list: &'a [Value], id: &Value| find_keyed(list, key, id);

    let mut items = Vec::new();
    let mut order = Vec::with_capacity(lists.modified.len());
    for m in lists.modified {
        let id = id_of(m)?;
        let mm = m
            .as_object()
            .expect("identity() found the merge key in a map");
        match find(lists.current, &id) {
            Some(cm) => {
                let om = lists.original.and_then(|o| find(o, &id));
                let sub = diff_map(om, mm, cm, meta.node, meta.retain_keys, path)?;
                if !sub.is_empty() {
                    let mut element = Map::new();
                    element.insert(key.to_string(), id.clone());
                    element.extend(sub);
                    items.push(Value::Object(element));
                }
            }
            None => items.push(m.clone()),
        }
        let mut entry = Map::new();
        entry.insert(key.to_string(), id);
        order.push(Value::Object(entry));
    }

    let mut deletions = Vec::new();
    for o in lists.original.unwrap_or_default() {
        let id = id_of(o)?;
        if position_of(lists.modified, o, Some(key)).is_none() {
            let mut element = Map::new();
            element.insert(PATCH_DIRECTIVE.to_string(), Value::String("delete".into()));
            element.insert(key.to_string(), id);
            deletions.push(Value::Object(element));
        }
    }

    let same_order = lists.current.len() == lists.modified.len()
        && lists.current.iter().zip(lists.modified).all(|(c, m)| {
            matches!((identity(c, Some(key)), identity(m, Some(key))), (Some(a), Some(b)) if json_eq(a, b))
        });
    if !items.is_empty() || !deletions.is_empty() || !same_order {
        patch.insert(format!("{SET_ORDER_PREFIX}{field}"), Value::Array(order));
    }
    items.extend(deletions);
    if !items.is_empty() {
        patch.insert(field.to_string(), Value::Array(items));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
