//! OpenAPI documents: v3 per group/version (the kinds' schemas from k8s-openapi, with the
//! patch metadata kubectl needs), and the minimal v2 document kubectl fetches before apply.

use serde_json::{json, Value};

use crate::discovery::{KUBE_MAJOR, KUBE_MINOR};
use crate::registry::strategy::KindStrategy;
use crate::registry::{self, group_versions};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: one document per group/version.
pub fn openapi_v3_index<K: AsRef<dyn KindStrategy>>(kinds: &[K]) -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs = vec![("", "v1")];
    gvs.extend(group_versions(kinds));
    for (g, v) in gvs {
        let path = gv_path(g, v);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash=skiff-{}", env!("CARGO_PKG_VERSION"))}),
        );
    }
    json!({"paths": paths})
}

/// The operations of one group/version. kubectl reads the `fieldValidation` parameter on each
/// kind's PATCH operation to learn that the server validates fields itself.
pub fn openapi_v3_document<K: AsRef<dyn KindStrategy>>(
    kinds: &[K],
    group: &str,
    version: &str,
) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for r in registry::in_group_version(kinds, group, version).map(|k| k.info()) {
        let base = format!("/{}", gv_path(group, version));
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
        ]);
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", r.kind),
                "parameters": params,
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "responses": {"200": {"description": "OK"}},
            })
        };
        paths.insert(item, json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0")},
        "paths": paths,
        "components": {"schemas": schemas(kinds, group, version)},
    }))
}

/// The JSON schemas of a group/version's kinds and everything they reference, from the
/// k8s-openapi types (with their Kubernetes descriptions), so that `kubectl explain` works.
fn schemas<K: AsRef<dyn KindStrategy>>(kinds: &[K], group: &str, version: &str) -> Value {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut kinds_by_definition = Vec::new();
    for k in registry::in_group_version(kinds, group, version) {
        let schema = k.openapi_schema(&mut generator);
        let reference = schema
            .get("$ref")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        kinds_by_definition.push((reference.rsplit('/').next().unwrap_or("").to_string(), k));
    }
    let mut defs = generator.take_definitions(true);
    for (name, k) in &kinds_by_definition {
        add_patch_extensions(&mut defs, name, k.patch_schema(), 0);
    }
    for (name, k) in kinds_by_definition {
        let r = k.info();
        if let Some(schema) = defs.get_mut(&name).and_then(Value::as_object_mut) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": r.group, "version": r.version, "kind": r.kind}]),
            );
        }
    }
    Value::Object(defs)
}

/// The definition a property refers to, directly, through `allOf`, or as its list items.
fn referenced_definition(prop: &Value) -> Option<String> {
    let direct = |v: &Value| {
        v.get("$ref")
            .or_else(|| v.pointer("/allOf/0/$ref"))
            .and_then(Value::as_str)
            .map(|r| r.rsplit('/').next().unwrap_or("").to_string())
    };
    direct(prop).or_else(|| prop.get("items").and_then(direct))
}

/// Mark merge keys and patch strategies as Kubernetes' published schemas do
/// (`x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy`), so clients that compute
/// strategic merge patches from the OpenAPI document (kubectl apply) merge lists by key.
fn add_patch_extensions(
    defs: &mut serde_json::Map<String, Value>,
    definition: &str,
    node: &skiff_common::SchemaNode,
    depth: usize,
) {
    use skiff_common::ListStrategy;
    if depth > 16 {
        return;
    }
    for field in node.fields {
        let Some(prop) = defs
            .get_mut(definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(field.name))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let mut strategy = Vec::new();
        match field.list {
            ListStrategy::MergeByKey(key) => {
                prop.insert("x-kubernetes-patch-merge-key".into(), json!(key));
                strategy.push("merge");
            }
            ListStrategy::MergePrimitives => strategy.push("merge"),
            ListStrategy::Atomic => {}
        }
        if field.retain_keys {
            strategy.push("retainKeys");
        }
        if !strategy.is_empty() {
            prop.insert(
                "x-kubernetes-patch-strategy".into(),
                json!(strategy.join(",")),
            );
        }
        let child = referenced_definition(&Value::Object(prop.clone()));
        if let (Some(child), Some(child_node)) = (child, field.node) {
            add_patch_extensions(defs, &child, child_node, depth + 1);
        }
    }
}

/// `/openapi/v2` as JSON: paths and definitions are left out, so kubectl (which fetches this
/// document before `apply`) validates nothing client-side and computes strategic merge patches
/// from its built-in types, leaving validation to the server.
pub fn openapi_v2_json() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0")},
        "paths": {},
        "definitions": {},
    })
}

/// The same document in the gnostic `openapi.v2.Document` protobuf encoding, which is the only
/// one client-go's `OpenAPISchema()` accepts.
pub fn openapi_v2_protobuf() -> Vec<u8> {
    fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
        // Wire type 2 (length-delimited); every length here fits a one-byte varint.
        out.push((number << 3) | 2);
        out.push(u8::try_from(bytes.len()).expect("short field"));
        out.extend_from_slice(bytes);
    }
    let version = format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0");
    let mut info = Vec::new();
    field(&mut info, 1, b"Kubernetes");
    field(&mut info, 2, version.as_bytes());
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0");
    field(&mut doc, 2, &info);
    field(&mut doc, 8, &[]);
    field(&mut doc, 9, &[]);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin::{kinds, RegistryConfig};

    #[test]
    fn openapi_v2_protobuf_encodes_swagger_and_info() {
        let doc = openapi_v2_protobuf();
        assert_eq!(&doc[..5], &[0x0a, 3, b'2', b'.', b'0']);
        assert_eq!(doc[5], 0x12, "info is field 2");
        assert!(
            doc.ends_with(&[0x42, 0, 0x4a, 0]),
            "empty paths (8) and definitions (9)"
        );
    }

    #[test]
    fn openapi_documents_advertise_field_validation() {
        let kinds = kinds(&RegistryConfig::default());
        let doc = openapi_v3_document(&kinds, "apps", "v1").unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
    }
}
