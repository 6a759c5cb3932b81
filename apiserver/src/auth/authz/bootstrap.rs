//! The default RBAC policy every cluster starts with, as kube-apiserver's bootstrap policy:
//! cluster-admin for `system:masters`, discovery and self-review for every authenticated user,
//! the public info paths for everyone, the user-facing `admin`/`edit`/`view` roles (aggregated
//! from `system:aggregate-to-*` by label, so additions reach them), and one role per component
//! with only what that component does.

use serde_json::{json, Value};

use crate::auth::user;
use crate::registry::rbac::{clusterrole, clusterrolebinding};
use crate::resource::ALL_VERBS as ALL;

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({ "verbs": verbs, "apiGroups": groups, "resources": resources })
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({ "verbs": verbs, "nonResourceURLs": urls })
}

const READ: &[&str] = &["get", "list", "watch"];
const AGGREGATE: &str = "rbac.authorization.k8s.io/aggregate-to-";

fn cluster_role(name: &str, labels: Value, rules: Vec<Value>) -> Value {
    let mut labels = labels;
    labels["kubernetes.io/bootstrapping"] = json!("rbac-defaults");
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": clusterrole::INFO.kind,
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": { "rbac.authorization.kubernetes.io/autoupdate": "true" },
        },
        "rules": rules,
    })
}

fn aggregated(name: &str, rules: Vec<Value>, also_into: Option<&str>) -> Value {
    let mut role = cluster_role(name, json!({}), rules);
    role["aggregationRule"] = json!({
        "clusterRoleSelectors": [{ "matchLabels": { format!("{AGGREGATE}{name}"): "true" } }]
    });
    if let Some(parent) = also_into {
        role["metadata"]["labels"][format!("{AGGREGATE}{parent}")] = json!("true");
    }
    role
}

fn binding(name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": clusterrolebinding::INFO.kind,
        "metadata": {
            "name": name,
            "labels": { "kubernetes.io/bootstrapping": "rbac-defaults" },
            "annotations": { "rbac.authorization.kubernetes.io/autoupdate": "true" },
        },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": clusterrole::INFO.kind, "name": role },
        "subjects": subjects,
    })
}

fn group(name: &str) -> Value {
    json!({ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name })
}

fn user_subject(name: &str) -> Value {
    json!({ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name })
}

/// What `view` reads (no Secrets, as in Kubernetes).
fn view_rules() -> Vec<Value> {
    vec![
        rule(
            READ,
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "pods",
                "pods/log",
                "pods/status",
                "replicationcontrollers",
                "services",
                "services/status",
                "serviceaccounts",
                "events",
                "namespaces",
                "namespaces/status",
                "limitranges",
                "resourcequotas",
            ],
        ),
        rule(
            READ,
            &["apps"],
            &[
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "daemonsets",
            ],
        ),
        rule(READ, &["batch"], &["jobs", "jobs/status", "cronjobs"]),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
        rule(READ, &["autoscaling"], &["horizontalpodautoscalers"]),
        rule(READ, &["policy"], &["poddisruptionbudgets"]),
    ]
}

/// What `edit` adds: writes to workloads and their config, Secrets, and the interactive pod
/// subresources; not roles or bindings.
fn edit_rules() -> Vec<Value> {
    vec![
        rule(
            ALL,
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "pods",
                "replicationcontrollers",
                "services",
                "secrets",
                "serviceaccounts",
            ],
        ),
        rule(
            &["create", "get"],
            &[""],
            &[
                "pods/exec",
                "pods/attach",
                "pods/portforward",
                "pods/eviction",
                "pods/proxy",
                "services/proxy",
            ],
        ),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(&["impersonate"], &[""], &["serviceaccounts"]),
        rule(
            ALL,
            &["apps"],
            &[
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
            ],
        ),
        rule(ALL, &["batch"], &["jobs", "cronjobs"]),
        rule(ALL, &["autoscaling"], &["horizontalpodautoscalers"]),
        rule(ALL, &["policy"], &["poddisruptionbudgets"]),
        rule(ALL, &["discovery.k8s.io"], &["endpointslices"]),
    ]
}

fn admin_rules() -> Vec<Value> {
    vec![
        rule(
            ALL,
            &["rbac.authorization.k8s.io"],
            &["roles", "rolebindings"],
        ),
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
        ),
    ]
}

/// ClusterRoles, in creation order (aggregated roles get their rules filled by the controller
/// manager; the bootstrap also fills them, so a cluster without it still works).
pub fn cluster_roles() -> Vec<Value> {
    let view = aggregated("view", view_rules(), Some("edit"));
    let edit = aggregated("edit", [view_rules(), edit_rules()].concat(), Some("admin"));
    let admin = aggregated(
        "admin",
        [view_rules(), edit_rules(), admin_rules()].concat(),
        None,
    );
    // The editable parts live in system:aggregate-to-*, as in Kubernetes.
    let sources = vec![
        cluster_role(
            "system:aggregate-to-view",
            json!({ format!("{AGGREGATE}view"): "true" }),
            view_rules(),
        ),
        cluster_role(
            "system:aggregate-to-edit",
            json!({ format!("{AGGREGATE}edit"): "true" }),
            edit_rules(),
        ),
        cluster_role(
            "system:aggregate-to-admin",
            json!({ format!("{AGGREGATE}admin"): "true" }),
            admin_rules(),
        ),
    ];
    let mut roles = vec![
        cluster_role(
            "cluster-admin",
            json!({}),
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        cluster_role(
            "system:discovery",
            json!({}),
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/readyz",
                    "/openapi",
                    "/openapi/*",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:public-info-viewer",
            json!({}),
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role(
            "system:basic-user",
            json!({}),
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            user::SCHEDULER_ROLE,
            json!({}),
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods",
                        "nodes",
                        "namespaces",
                        "services",
                        "replicationcontrollers",
                        "persistentvolumeclaims",
                        "persistentvolumes",
                    ],
                ),
                rule(&["create"], &[""], &["pods/binding", "bindings"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["delete"], &[""], &["pods"]),
                rule(READ, &["apps"], &["replicasets", "statefulsets"]),
                rule(READ, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    &["create", "patch", "update"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                rule(&["get", "update"], &["coordination.k8s.io"], &["leases"]),
            ],
        ),
        cluster_role(
            user::CONTROLLERS_ROLE,
            json!({}),
            vec![
                rule(
                    ALL,
                    &[""],
                    &[
                        "pods",
                        "services",
                        "endpoints",
                        "namespaces",
                        "nodes",
                        "serviceaccounts",
                        "secrets",
                        "configmaps",
                        "replicationcontrollers",
                        "persistentvolumeclaims",
                    ],
                ),
                rule(
                    &["create", "update", "patch"],
                    &[""],
                    &[
                        "pods/status",
                        "nodes/status",
                        "services/status",
                        "namespaces/finalize",
                        "namespaces/status",
                        "replicationcontrollers/status",
                        "serviceaccounts/token",
                    ],
                ),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(
                    ALL,
                    &["apps"],
                    &[
                        "deployments",
                        "replicasets",
                        "statefulsets",
                        "daemonsets",
                        "controllerrevisions",
                    ],
                ),
                rule(
                    &["update", "patch"],
                    &["apps"],
                    &[
                        "deployments/status",
                        "replicasets/status",
                        "statefulsets/status",
                        "daemonsets/status",
                        "deployments/scale",
                        "replicasets/scale",
                    ],
                ),
                rule(ALL, &["batch"], &["jobs", "cronjobs"]),
                rule(
                    &["update", "patch"],
                    &["batch"],
                    &["jobs/status", "cronjobs/status"],
                ),
                rule(ALL, &["discovery.k8s.io"], &["endpointslices"]),
                rule(ALL, &["coordination.k8s.io"], &["leases"]),
                rule(ALL, &["rbac.authorization.k8s.io"], &["clusterroles"]),
                rule(
                    READ,
                    &["rbac.authorization.k8s.io"],
                    &["roles", "rolebindings", "clusterrolebindings"],
                ),
                rule(
                    &["escalate"],
                    &["rbac.authorization.k8s.io"],
                    &["clusterroles"],
                ),
                rule(
                    &["create", "patch", "update"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                // The namespace controller empties a terminating namespace of every kind,
                // and the garbage collector follows owner references across kinds.
                rule(
                    &["get", "list", "watch", "delete", "deletecollection"],
                    &["*"],
                    &["*"],
                ),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        cluster_role(
            user::NODE_ROLE,
            json!({}),
            vec![
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &[""],
                    &["nodes"],
                ),
                rule(&["update", "patch"], &[""], &["nodes/status"]),
                rule(&["get", "list", "watch", "delete"], &[""], &["pods"]),
                rule(&["update", "patch"], &[""], &["pods/status"]),
                rule(&["create"], &[""], &["pods/eviction"]),
                // Secrets, ConfigMaps, claims and ServiceAccount tokens: only those of the
                // node's own pods, through the Node authorizer.
                rule(
                    READ,
                    &[""],
                    &["services", "endpoints", "namespaces", "persistentvolumes"],
                ),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(
                    &["create", "patch", "update"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                rule(
                    &[
                        "get", "create", "update", "patch", "delete", "list", "watch",
                    ],
                    &["coordination.k8s.io"],
                    &["leases"],
                ),
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
    ];
    roles.extend(sources);
    roles.extend([admin, edit, view]);
    roles
}

pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", "cluster-admin", vec![group(user::MASTERS)]),
        binding(
            "system:discovery",
            "system:discovery",
            vec![group(user::ALL_AUTHENTICATED)],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            vec![group(user::ALL_AUTHENTICATED)],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![
                group(user::ALL_AUTHENTICATED),
                group(user::ALL_UNAUTHENTICATED),
            ],
        ),
        binding(
            user::SCHEDULER_ROLE,
            user::SCHEDULER_ROLE,
            vec![user_subject(user::SCHEDULER)],
        ),
        binding(
            user::CONTROLLERS_ROLE,
            user::CONTROLLERS_ROLE,
            vec![user_subject(user::CONTROLLERS)],
        ),
        binding(user::NODE_ROLE, user::NODE_ROLE, vec![group(user::NODES)]),
    ]
}
