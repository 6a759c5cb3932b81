use super::*;
use serde_json::json;

fn pod() -> Option<&'static SchemaNode> {
    schema_for("v1", "Pod")
}

fn deployment() -> Option<&'static SchemaNode> {
    schema_for("apps/v1", "Deployment")
}

fn apply(original: Value, patch: Value, schema: Option<&SchemaNode>) -> Value {
    apply_patch(&original, &patch, schema).unwrap_or_else(|e| panic!("{patch}: {e}"))
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|e| e["name"].as_str().unwrap_or("?"))
        .collect()
}

fn containers(spec_owner: &Value) -> &Value {
    &spec_owner["spec"]["containers"]
}

fn assert_no_directives(v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                assert!(!k.starts_with('$'), "directive {k} leaked into the output");
                assert_no_directives(v);
            }
        }
        Value::Array(l) => l.iter().for_each(assert_no_directives),
        _ => {}
    }
}

/// What `kubectl apply` does: compute the patch, then the server applies it.
fn kubectl_apply(
    last: Option<&Value>,
    new: &Value,
    current: &Value,
    schema: Option<&SchemaNode>,
) -> (Value, Value) {
    let patch = create_three_way_patch(last, new, current, schema).unwrap();
    let result = apply_patch(current, &patch, schema).unwrap();
    assert_no_directives(&result);
    (patch, result)
}

fn field_of(node: Option<&'static SchemaNode>, path: &[&str]) -> Option<&'static Field> {
    let (last, parents) = path.split_last().unwrap();
    let mut node = node;
    for p in parents {
        node = node.and_then(|n| n.field(p)).and_then(|f| f.node);
    }
    node.and_then(|n| n.field(last))
}

fn strategy(node: Option<&'static SchemaNode>, path: &[&str]) -> ListStrategy {
    field_of(node, path).map_or(ListStrategy::Atomic, |f| f.list)
}

#[test]
fn pod_spec_node_is_shared_between_kinds() {
    let pod_spec = field_of(pod(), &["spec"]).and_then(|f| f.node).unwrap();
    for (api, kind, path) in [
        ("apps/v1", "Deployment", &["spec", "template", "spec"][..]),
        ("apps/v1", "ReplicaSet", &["spec", "template", "spec"][..]),
        ("batch/v1", "Job", &["spec", "template", "spec"][..]),
        (
            "batch/v1",
            "CronJob",
            &["spec", "jobTemplate", "spec", "template", "spec"][..],
        ),
    ] {
        let node = field_of(schema_for(api, kind), path)
            .and_then(|f| f.node)
            .unwrap();
        assert!(std::ptr::eq(node, pod_spec), "{kind}");
    }
}

#[test]
fn schema_follows_the_api_struct_tags() {
    use ListStrategy::*;
    let node = schema_for("v1", "Node");
    let svc = schema_for("v1", "Service");
    let cases: Vec<(Option<&'static SchemaNode>, &[&str], ListStrategy)> = vec![
        (pod(), &["metadata", "finalizers"], MergePrimitives),
        (pod(), &["metadata", "ownerReferences"], MergeByKey("uid")),
        (pod(), &["spec", "containers"], MergeByKey("name")),
        (pod(), &["spec", "initContainers"], MergeByKey("name")),
        (pod(), &["spec", "ephemeralContainers"], MergeByKey("name")),
        (pod(), &["spec", "volumes"], MergeByKey("name")),
        (pod(), &["spec", "imagePullSecrets"], MergeByKey("name")),
        (pod(), &["spec", "hostAliases"], MergeByKey("ip")),
        (pod(), &["spec", "tolerations"], Atomic),
        (
            pod(),
            &["spec", "topologySpreadConstraints"],
            MergeByKey("topologyKey"),
        ),
        (pod(), &["spec", "containers", "env"], MergeByKey("name")),
        (pod(), &["spec", "containers", "envFrom"], Atomic),
        (
            pod(),
            &["spec", "containers", "ports"],
            MergeByKey("containerPort"),
        ),
        (
            pod(),
            &["spec", "containers", "volumeMounts"],
            MergeByKey("mountPath"),
        ),
        (
            pod(),
            &["spec", "containers", "volumeDevices"],
            MergeByKey("devicePath"),
        ),
        (pod(), &["spec", "containers", "resizePolicy"], Atomic),
        (pod(), &["status", "conditions"], MergeByKey("type")),
        (pod(), &["status", "containerStatuses"], Atomic),
        (pod(), &["status", "podIPs"], MergeByKey("ip")),
        (deployment(), &["status", "conditions"], MergeByKey("type")),
        (
            schema_for("apps/v1", "ReplicaSet"),
            &["status", "conditions"],
            MergeByKey("type"),
        ),
        (
            schema_for("batch/v1", "Job"),
            &["status", "conditions"],
            MergeByKey("type"),
        ),
        (svc, &["spec", "ports"], MergeByKey("port")),
        (node, &["spec", "taints"], Atomic),
        (node, &["spec", "podCIDRs"], MergePrimitives),
        (node, &["status", "conditions"], MergeByKey("type")),
        (node, &["status", "addresses"], MergeByKey("type")),
        (node, &["status", "images"], Atomic),
        (
            schema_for("v1", "Namespace"),
            &["status", "conditions"],
            MergeByKey("type"),
        ),
        (schema_for("v1", "Endpoints"), &["subsets"], Atomic),
        (
            schema_for("discovery.k8s.io/v1", "EndpointSlice"),
            &["endpoints"],
            Atomic,
        ),
    ];
    for (schema, path, want) in cases {
        assert!(schema.is_some(), "{path:?}");
        assert_eq!(strategy(schema, path), want, "{path:?}");
    }
    assert!(
        field_of(deployment(), &["spec", "strategy"])
            .unwrap()
            .retain_keys
    );
    assert!(field_of(pod(), &["spec", "volumes"]).unwrap().retain_keys);
    assert!(
        !field_of(pod(), &["spec", "containers"])
            .unwrap()
            .retain_keys
    );
    for (api, kind) in [
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Event"),
        ("events.k8s.io/v1", "Event"),
        ("coordination.k8s.io/v1", "Lease"),
    ] {
        assert!(schema_for(api, kind).is_some(), "{kind}");
    }
    assert!(schema_for("example.com/v1", "Widget").is_none());
    assert!(
        schema_for("apps/v1", "Pod").is_none(),
        "the group must match too"
    );
}

#[test]
fn maps_merge_recursively_and_null_deletes() {
    let got = apply(
        json!({"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}}),
        json!({"metadata": {"labels": {"b": null, "c": "3"}}, "data": null, "absent": null}),
        schema_for("v1", "ConfigMap"),
    );
    assert_eq!(
        got,
        json!({"metadata": {"name": "x", "labels": {"a": "1", "c": "3"}}})
    );
}

#[test]
fn key_order_of_maps_is_kept() {
    let got = apply(
        json!({"a": 1, "b": 2, "c": 3}),
        json!({"b": 20, "d": 4}),
        None,
    );
    let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["a", "b", "c", "d"]);
    let got = apply(json!({"a": 1, "b": 2, "c": 3}), json!({"a": null}), None);
    let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["b", "c"]);
}

#[test]
fn without_schema_lists_are_replaced() {
    let got = apply(
        json!({"spec": {"containers": [{"name": "a", "image": "x"}]}}),
        json!({"spec": {"containers": [{"name": "b"}]}}),
        None,
    );
    assert_eq!(got, json!({"spec": {"containers": [{"name": "b"}]}}));
}

#[test]
fn atomic_lists_are_replaced() {
    let got = apply(
        json!({"spec": {"tolerations": [{"key": "a"}, {"key": "b"}], "containers": []},
               "status": {"containerStatuses": [{"name": "c", "ready": false}]}}),
        json!({"spec": {"tolerations": [{"key": "c"}]},
               "status": {"containerStatuses": [{"name": "c", "ready": true}]}}),
        pod(),
    );
    assert_eq!(got["spec"]["tolerations"], json!([{"key": "c"}]));
    assert_eq!(
        got["status"]["containerStatuses"],
        json!([{"name": "c", "ready": true}])
    );
    let got = apply(
        json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}}),
        json!({"spec": {"taints": []}}),
        schema_for("v1", "Node"),
    );
    assert_eq!(got["spec"]["taints"], json!([]));
}

#[test]
fn containers_merge_by_name_and_env_by_name() {
    let original = json!({"spec": {"containers": [
        {"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
        {"name": "b", "image": "1"}
    ]}});
    let got = apply(
        original,
        json!({"spec": {"containers": [{"name": "a", "image": "2", "env": [{"name": "Y", "value": "3"}]}]}}),
        pod(),
    );
    assert_eq!(
        containers(&got),
        &json!([
            {"name": "a", "image": "2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "3"}]},
            {"name": "b", "image": "1"}
        ])
    );
}

#[test]
fn merge_keys_compare_numbers_by_value() {
    let got = apply(
        json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}}),
        json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80.0, "name": "http"}]}]}}),
        pod(),
    );
    let ports = &containers(&got)[0]["ports"];
    assert_eq!(ports.as_array().unwrap().len(), 1, "{ports}");
    assert_eq!(ports[0]["name"], "http");
}

#[test]
fn new_elements_go_first_unless_an_order_is_given() {
    // Kubernetes puts elements the original lacks ahead of the ones the patch does not
    // mention; kubectl always sends $setElementOrder, which pins the order.
    let original = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let got = apply(
        original.clone(),
        json!({"spec": {"containers": [{"name": "c"}]}}),
        pod(),
    );
    assert_eq!(names(containers(&got)), ["c", "a", "b"]);
    let got = apply(
        original,
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "containers": [{"name": "c"}]
        }}),
        pod(),
    );
    assert_eq!(names(containers(&got)), ["a", "b", "c"]);
}

#[test]
fn patch_order_wins_for_mentioned_elements() {
    // The "preserve the order from the patch in a merging list 2" case of apimachinery.
    let got = apply(
        json!({"spec": {"containers": [{"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}]}}),
        json!({"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}}),
        pod(),
    );
    assert_eq!(
        containers(&got),
        &json!([{"name": "2", "image": "b"}, {"name": "3", "image": "c"}, {"name": "1", "image": "a"}])
    );
}

#[test]
fn set_element_order_keeps_server_only_elements_in_place() {
    let got = apply(
        json!({"spec": {"containers": [{"name": "a"}, {"name": "s"}, {"name": "b"}]}}),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}, {"name": "b"}],
            "containers": [{"name": "c"}]
        }}),
        pod(),
    );
    assert_eq!(names(containers(&got)), ["a", "c", "s", "b"]);
    let got = apply(
        json!({"metadata": {"finalizers": ["x", "y", "z"]}}),
        json!({"metadata": {"$setElementOrder/finalizers": ["z", "x"]}}),
        pod(),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["y", "z", "x"]));
}

#[test]
fn primitive_merge_lists_take_the_union() {
    let got = apply(
        json!({"metadata": {"finalizers": ["a", "b"]}}),
        json!({"metadata": {"finalizers": ["b", "c"]}}),
        pod(),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let got = apply(
        json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}}),
        json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}}),
        schema_for("v1", "Node"),
    );
    assert_eq!(got["spec"]["podCIDRs"], json!(["10.0.0.0/24"]));
}

#[test]
fn delete_from_primitive_list() {
    let got = apply(
        json!({"metadata": {"finalizers": ["a", "b", "a"]}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "nope"]}}),
        pod(),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["b"]));
    let got = apply(
        json!({"metadata": {"name": "x"}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        pod(),
    );
    assert_eq!(got, json!({"metadata": {"name": "x"}}), "nothing is added");
    let got = apply(
        json!({"metadata": {"finalizers": ["a", "b"]}}),
        json!({"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
        pod(),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["c", "b"]));
}

#[test]
fn patch_replace_on_a_map() {
    let got = apply(
        json!({"spec": {"nodeSelector": {"a": "1", "b": "2"}, "hostname": "h"}}),
        json!({"spec": {"nodeSelector": {"$patch": "replace", "c": "3", "d": null}}}),
        pod(),
    );
    assert_eq!(
        got,
        json!({"spec": {"nodeSelector": {"c": "3"}, "hostname": "h"}})
    );
    let got = apply(
        json!({"a": 1, "b": 2}),
        json!({"$patch": "replace", "c": 3}),
        None,
    );
    assert_eq!(got, json!({"c": 3}));
}

#[test]
fn patch_replace_on_a_list() {
    let got = apply(
        json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}]}}),
        json!({"spec": {"containers": [{"name": "c", "image": "2"}, {"$patch": "replace"}]}}),
        pod(),
    );
    assert_eq!(containers(&got), &json!([{"name": "c", "image": "2"}]));
    let got = apply(
        json!({"spec": {"containers": [{"name": "a"}]}}),
        json!({"spec": {"containers": [{"$patch": "replace"}]}}),
        pod(),
    );
    assert_eq!(containers(&got), &json!([]));
}

#[test]
fn patch_delete_removes_a_container() {
    let got = apply(
        json!({"spec": {"containers": [{"name": "a"}, {"name": "sidecar", "image": "s"}, {"name": "b"}]}}),
        json!({"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}),
        pod(),
    );
    assert_eq!(names(containers(&got)), ["a", "b"]);
    let got = apply(
        json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}, {"containerPort": 81}]}]}}),
        json!({"spec": {"containers": [{"name": "a", "ports": [{"$patch": "delete", "containerPort": 81}]}]}}),
        pod(),
    );
    assert_eq!(containers(&got)[0]["ports"], json!([{"containerPort": 80}]));
}

#[test]
fn patch_delete_on_a_map_empties_it() {
    let got = apply(
        json!({"spec": {"affinity": {"nodeAffinity": {"x": 1}}, "hostname": "h"}}),
        json!({"spec": {"affinity": {"$patch": "delete"}, "overhead": {"$patch": "delete"}}}),
        pod(),
    );
    assert_eq!(got, json!({"spec": {"affinity": {}, "hostname": "h"}}));
}

#[test]
fn retain_keys_clears_unlisted_fields() {
    let got = apply(
        json!({"spec": {"replicas": 1, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        deployment(),
    );
    assert_eq!(
        got,
        json!({"spec": {"replicas": 1, "strategy": {"type": "Recreate"}}})
    );
    let got = apply(
        json!({"spec": {"volumes": [{"name": "v", "configMap": {"name": "c"}}, {"name": "w", "emptyDir": {}}]}}),
        json!({"spec": {"volumes": [
            {"name": "v", "$retainKeys": ["name", "secret"], "secret": {"secretName": "s"}}
        ]}}),
        pod(),
    );
    assert_eq!(
        got["spec"]["volumes"],
        json!([{"name": "v", "secret": {"secretName": "s"}}, {"name": "w", "emptyDir": {}}])
    );
}

#[test]
fn invalid_directives_are_errors() {
    let strategy = json!({"spec": {"strategy": {"type": "RollingUpdate"}}});
    let containers = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let cases = [
        (json!({}), json!({"$patch": "bogus"}), "<root>"),
        (
            containers.clone(),
            json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}),
            "spec.containers",
        ),
        (
            containers.clone(),
            json!({"spec": {"containers": [{"name": "a", "$patch": "nope"}]}}),
            "spec.containers",
        ),
        (
            strategy.clone(),
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
            "spec.strategy",
        ),
        (
            strategy.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}}),
            "rollingUpdate",
        ),
        (
            containers.clone(),
            json!({"spec": {"$setElementOrder/containers": {"name": "a"}}}),
            "spec",
        ),
        (
            containers.clone(),
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                            "containers": [{"name": "b"}, {"name": "a"}]}}),
            "spec.containers",
        ),
        (
            containers.clone(),
            json!({"spec": {"$setElementOrder/containers": [{"image": "x"}]}}),
            "spec.containers",
        ),
        (
            containers.clone(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            "metadata",
        ),
    ];
    for (original, patch, mention) in cases {
        let err = apply_patch(&original, &patch, pod()).unwrap_err();
        assert!(
            matches!(err, PatchError::Directive { .. }),
            "{patch}: {err}"
        );
        assert!(err.to_string().contains(mention), "{patch}: {err}");
    }
}

#[test]
fn malformed_lists_are_errors() {
    let containers = json!({"spec": {"containers": [{"name": "a"}]}});
    let err = apply_patch(
        &containers,
        &json!({"spec": {"containers": [{"$patch": "delete"}]}}),
        pod(),
    )
    .unwrap_err();
    assert!(
        matches!(err, PatchError::MissingMergeKey { ref key, .. } if key == "name"),
        "{err}"
    );
    let err = apply_patch(
        &containers,
        &json!({"spec": {"containers": [{"image": "x"}]}}),
        pod(),
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::MissingMergeKey { .. }), "{err}");
    assert!(err.to_string().contains("spec.containers"), "{err}");
    let err = apply_patch(&containers, &json!({"spec": {"containers": ["a"]}}), pod()).unwrap_err();
    assert!(matches!(err, PatchError::BadElement { .. }), "{err}");
    let err = apply_patch(
        &json!({}),
        &json!({"metadata": {"finalizers": [{"a": 1}]}}),
        pod(),
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::BadElement { .. }), "{err}");
    assert_eq!(
        apply_patch(&json!({}), &json!([1]), None).unwrap_err(),
        PatchError::NotAnObject("patch")
    );
    assert_eq!(
        apply_patch(&json!(3), &json!({}), None).unwrap_err(),
        PatchError::NotAnObject("original")
    );
}

#[test]
fn directives_never_reach_the_output() {
    let patch = json!({
        "metadata": {"finalizers": ["f"], "$deleteFromPrimitiveList/finalizers": ["g"],
                     "$setElementOrder/finalizers": ["f"], "labels": {"gone": null}},
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [{"name": "a", "env": [{"name": "X", "$patch": "delete"}, {"name": "Y", "value": "1"}],
                                "resources": {"$patch": "replace", "limits": {"cpu": "1"}}}],
                "volumes": [{"name": "v", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}}],
                "affinity": {"$patch": "delete"}
            }}
        }
    });
    for original in [
        json!({}),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "env": [{"name": "X"}]}]}}}}),
    ] {
        let got = apply(original, patch.clone(), deployment());
        assert_no_directives(&got);
        let c = &got["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["env"], json!([{"name": "Y", "value": "1"}]));
        assert_eq!(c["resources"], json!({"limits": {"cpu": "1"}}));
        assert_eq!(got["metadata"]["finalizers"], json!(["f"]));
        assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
    }
}

// ---------------------------------------------------------------------------------------------
// Three-way patches, as kubectl apply computes them.

fn web_deployment(image: &str, replicas: u32, env: Value, ports: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image, "ports": ports, "env": env}]}
            }
        }
    })
}

/// The live object: the applied manifest plus what the server and controllers added.
fn live(applied: &Value) -> Value {
    let mut live = applied.clone();
    let meta = live["metadata"].as_object_mut().unwrap();
    meta.insert("uid".into(), json!("1234"));
    meta.insert("resourceVersion".into(), json!("7"));
    meta.insert(
        "annotations".into(),
        json!({"deployment.kubernetes.io/revision": "1"}),
    );
    let spec = live["spec"].as_object_mut().unwrap();
    spec.insert(
        "strategy".into(),
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
    );
    let container = &mut live["spec"]["template"]["spec"]["containers"][0];
    container["imagePullPolicy"] = json!("IfNotPresent");
    for port in container["ports"].as_array_mut().unwrap() {
        port["protocol"] = json!("TCP");
    }
    live["status"] =
        json!({"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]});
    live
}

#[test]
fn reapplying_a_deployment_with_changes() {
    let last = web_deployment(
        "nginx:1.25",
        2,
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
        json!([{"containerPort": 80}, {"containerPort": 8080, "name": "admin"}]),
    );
    let current = live(&last);
    let new = web_deployment(
        "nginx:1.27",
        3,
        json!([{"name": "A", "value": "10"}, {"name": "C", "value": "3"}]),
        json!([{"containerPort": 80}]),
    );

    let (patch, result) = kubectl_apply(Some(&last), &new, &current, deployment());
    assert_eq!(
        patch,
        json!({"spec": {
            "replicas": 3,
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{
                    "name": "web",
                    "image": "nginx:1.27",
                    "$setElementOrder/ports": [{"containerPort": 80}],
                    "ports": [{"$patch": "delete", "containerPort": 8080}],
                    "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                    "env": [{"name": "A", "value": "10"}, {"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}]
                }]
            }}
        }})
    );

    let container = &result["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(
        container["imagePullPolicy"], "IfNotPresent",
        "defaulted field kept"
    );
    assert_eq!(
        container["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(
        container["env"],
        json!([{"name": "A", "value": "10"}, {"name": "C", "value": "3"}])
    );
    assert_eq!(result["spec"]["replicas"], 3);
    assert_eq!(result["metadata"]["uid"], "1234");
    assert_eq!(
        result["metadata"]["annotations"],
        current["metadata"]["annotations"]
    );
    assert_eq!(result["status"], current["status"]);
    assert_eq!(result["spec"]["strategy"], current["spec"]["strategy"]);

    // Applying the same configuration again changes nothing.
    let again = create_three_way_patch(Some(&new), &new, &result, deployment()).unwrap();
    assert_eq!(again, json!({}));
}

#[test]
fn unchanged_configuration_gives_an_empty_patch() {
    let applied = web_deployment("nginx", 1, json!([]), json!([{"containerPort": 80}]));
    let current = live(&applied);
    let patch = create_three_way_patch(Some(&applied), &applied, &current, deployment()).unwrap();
    assert_eq!(patch, json!({}));
    let patch = create_three_way_patch(None, &applied, &current, deployment()).unwrap();
    assert_eq!(patch, json!({}));
    // Go decodes every number as float64, so 3 and 3.0 are the same value.
    let patch = create_three_way_patch(
        None,
        &json!({"spec": {"replicas": 3}}),
        &json!({"spec": {"replicas": 3.0}}),
        None,
    )
    .unwrap();
    assert_eq!(patch, json!({}));
}

#[test]
fn dropped_fields_are_deleted_and_server_fields_kept() {
    let cm = schema_for("v1", "ConfigMap");
    let last = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
    let new = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
    let current =
        json!({"metadata": {"name": "c", "uid": "u"}, "data": {"a": "1", "b": "2", "c": "3"}});
    let (patch, result) = kubectl_apply(Some(&last), &new, &current, cm);
    assert_eq!(patch, json!({"data": {"b": null}}));
    assert_eq!(
        result,
        json!({"metadata": {"name": "c", "uid": "u"}, "data": {"a": "1", "c": "3"}})
    );

    // Without a last-applied configuration nothing can be known to be dropped.
    let (patch, result) = kubectl_apply(None, &new, &current, cm);
    assert_eq!(patch, json!({}));
    assert_eq!(result, current);

    // A whole field dropped from the configuration.
    let last = json!({"metadata": {"name": "c", "labels": {"x": "y"}}, "data": {"a": "1"}});
    let (patch, result) = kubectl_apply(
        Some(&last),
        &new,
        &json!({"metadata": {"name": "c", "labels": {"x": "y"}}, "data": {"a": "1"}}),
        cm,
    );
    assert_eq!(patch, json!({"metadata": {"labels": null}}));
    assert_eq!(result, new);
}

#[test]
fn changing_service_ports() {
    let svc = schema_for("v1", "Service");
    let manifest = |ports: Value| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": ports}})
    };
    let last = manifest(json!([
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "https", "port": 443, "targetPort": 8443}
    ]));
    let mut current = last.clone();
    current["spec"]["clusterIP"] = json!("10.96.0.10");
    current["spec"]["type"] = json!("ClusterIP");
    for p in current["spec"]["ports"].as_array_mut().unwrap() {
        p["protocol"] = json!("TCP");
    }
    let new = manifest(json!([
        {"name": "http", "port": 80, "targetPort": 9090},
        {"name": "metrics", "port": 9100, "targetPort": 9100}
    ]));
    let (patch, result) = kubectl_apply(Some(&last), &new, &current, svc);
    assert_eq!(
        patch["spec"]["ports"],
        json!([
            {"port": 80, "targetPort": 9090},
            {"name": "metrics", "port": 9100, "targetPort": 9100},
            {"$patch": "delete", "port": 443}
        ])
    );
    assert_eq!(
        result["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "targetPort": 9090, "protocol": "TCP"},
            {"name": "metrics", "port": 9100, "targetPort": 9100}
        ])
    );
    assert_eq!(result["spec"]["clusterIP"], "10.96.0.10");
    assert_eq!(result["spec"]["type"], "ClusterIP");
}

#[test]
fn adding_and_removing_finalizers() {
    let cm = schema_for("v1", "ConfigMap");
    let obj = |fins: Value| json!({"metadata": {"name": "x", "finalizers": fins}});
    let mut current = obj(json!(["example.com/a", "kubernetes.io/server"]));
    current["metadata"]["uid"] = json!("u");

    // Swap a for b: a goes, b comes, the server's finalizer stays.
    let (patch, result) = kubectl_apply(
        Some(&obj(json!(["example.com/a"]))),
        &obj(json!(["example.com/b"])),
        &current,
        cm,
    );
    assert_eq!(
        patch,
        json!({"metadata": {
            "finalizers": ["example.com/b"],
            "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
            "$setElementOrder/finalizers": ["example.com/b"]
        }})
    );
    assert_eq!(
        result["metadata"]["finalizers"],
        json!(["example.com/b", "kubernetes.io/server"])
    );
    assert_eq!(result["metadata"]["uid"], "u");

    // Add c after b.
    let (_, result) = kubectl_apply(
        Some(&obj(json!(["example.com/b"]))),
        &obj(json!(["example.com/b", "example.com/c"])),
        &result,
        cm,
    );
    assert_eq!(
        result["metadata"]["finalizers"],
        json!(["example.com/b", "example.com/c", "kubernetes.io/server"])
    );

    // Remove c: only c goes.
    let (_, result) = kubectl_apply(
        Some(&obj(json!(["example.com/b", "example.com/c"]))),
        &obj(json!(["example.com/b"])),
        &result,
        cm,
    );
    assert_eq!(
        result["metadata"]["finalizers"],
        json!(["example.com/b", "kubernetes.io/server"])
    );

    // Dropping the field itself deletes the whole list, server entries included, as kubectl does.
    let (patch, result) = kubectl_apply(
        Some(&obj(json!(["example.com/b"]))),
        &json!({"metadata": {"name": "x"}}),
        &result,
        cm,
    );
    assert_eq!(patch, json!({"metadata": {"finalizers": null}}));
    assert_eq!(result, json!({"metadata": {"name": "x", "uid": "u"}}));
}

#[test]
fn removing_a_container_sends_a_delete_directive() {
    let pod_manifest = |cs: Value| json!({"metadata": {"name": "p"}, "spec": {"containers": cs}});
    let last =
        pod_manifest(json!([{"name": "app", "image": "a"}, {"name": "sidecar", "image": "s"}]));
    let current = pod_manifest(json!([
        {"name": "app", "image": "a", "imagePullPolicy": "Always"},
        {"name": "sidecar", "image": "s", "imagePullPolicy": "Always"}
    ]));
    let new = pod_manifest(json!([{"name": "app", "image": "a"}]));
    let (patch, result) = kubectl_apply(Some(&last), &new, &current, pod());
    assert_eq!(
        patch,
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [{"$patch": "delete", "name": "sidecar"}]
        }})
    );
    assert_eq!(
        containers(&result),
        &json!([{"name": "app", "image": "a", "imagePullPolicy": "Always"}])
    );
}

#[test]
fn reordering_containers_sends_only_the_order() {
    let pod_manifest = |cs: Value| json!({"spec": {"containers": cs}});
    let last = pod_manifest(json!([{"name": "a"}, {"name": "b"}]));
    let new = pod_manifest(json!([{"name": "b"}, {"name": "a"}]));
    let (patch, result) = kubectl_apply(Some(&last), &new, &last, pod());
    assert_eq!(
        patch,
        json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}})
    );
    assert_eq!(names(containers(&result)), ["b", "a"]);
}

#[test]
fn switching_deployment_strategy_uses_retain_keys() {
    let current = json!({"spec": {"replicas": 1, "strategy": {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}});
    let last = json!({"spec": {"replicas": 1}});
    let new = json!({"spec": {"replicas": 1, "strategy": {"type": "Recreate"}}});
    let (patch, result) = kubectl_apply(Some(&last), &new, &current, deployment());
    assert_eq!(
        patch,
        json!({"spec": {"strategy": {"type": "Recreate", "$retainKeys": ["type"]}}})
    );
    assert_eq!(result["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn switching_volume_source_uses_retain_keys() {
    let pod_with = |volume: Value| json!({"spec": {"containers": [], "volumes": [volume]}});
    let last = pod_with(json!({"name": "cfg", "configMap": {"name": "c"}}));
    let current = pod_with(json!({"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}}));
    let new = pod_with(json!({"name": "cfg", "secret": {"secretName": "s"}}));
    let (patch, result) = kubectl_apply(Some(&last), &new, &current, pod());
    assert_eq!(
        patch["spec"]["volumes"],
        json!([{"name": "cfg", "secret": {"secretName": "s"}, "configMap": null, "$retainKeys": ["name", "secret"]}])
    );
    assert_eq!(
        result["spec"]["volumes"],
        json!([{"name": "cfg", "secret": {"secretName": "s"}}])
    );
}

#[test]
fn unknown_kinds_diff_like_json_merge_patch() {
    let last = json!({"spec": {"items": [1, 2], "keep": true, "old": 1}});
    let new = json!({"spec": {"items": [2, 3], "keep": true}});
    let current = json!({"spec": {"items": [1, 2], "keep": true, "old": 1, "server": "x"}});
    let (patch, result) = kubectl_apply(Some(&last), &new, &current, None);
    assert_eq!(patch, json!({"spec": {"items": [2, 3], "old": null}}));
    assert_eq!(
        result,
        json!({"spec": {"items": [2, 3], "keep": true, "server": "x"}})
    );
}

#[test]
fn three_way_rejects_non_objects_and_bad_last_applied() {
    assert_eq!(
        create_three_way_patch(None, &json!([]), &json!({}), None).unwrap_err(),
        PatchError::NotAnObject("modified")
    );
    assert_eq!(
        create_three_way_patch(Some(&json!("x")), &json!({}), &json!({}), None).unwrap_err(),
        PatchError::NotAnObject("original")
    );
    let err = create_three_way_patch(
        Some(&json!({"spec": {"containers": [{"image": "no-name"}]}})),
        &json!({"spec": {"containers": [{"name": "a"}]}}),
        &json!({"spec": {"containers": [{"name": "a"}]}}),
        pod(),
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::MissingMergeKey { .. }), "{err}");
}

#[test]
fn add_delete_and_reorder_like_kubectl() {
    // Mirrors apimachinery's "add and delete an item in a list and preserve order" case.
    let spec = |cs: Value| json!({"spec": {"containers": cs}});
    let last =
        spec(json!([{"name": "1"}, {"name": "3", "image": "3"}, {"name": "2", "image": "2"}]));
    let new =
        spec(json!([{"name": "4", "image": "4"}, {"name": "2", "image": "2"}, {"name": "1"}]));
    let current = spec(json!([
        {"name": "1", "tty": true},
        {"name": "2", "image": "2", "stdin": true},
        {"name": "3", "image": "3"}
    ]));
    let (patch, result) = kubectl_apply(Some(&last), &new, &current, pod());
    assert_eq!(
        patch,
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "4"}, {"name": "2"}, {"name": "1"}],
            "containers": [{"name": "4", "image": "4"}, {"$patch": "delete", "name": "3"}]
        }})
    );
    assert_eq!(
        containers(&result),
        &json!([
            {"name": "4", "image": "4"},
            {"name": "2", "image": "2", "stdin": true},
            {"name": "1", "tty": true}
        ])
    );
}
