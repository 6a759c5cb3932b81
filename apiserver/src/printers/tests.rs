use super::format::*;
use super::*;
use jiff::SignedDuration;

/// The printer of each kind by name, so the cases below read as kubectl users name kinds.
fn printer_for(kind: &str) -> &'static Printer {
    use crate::registry::{apps, batch, coordination, core, discovery};
    match kind.strip_suffix("List").unwrap_or(kind) {
        "Pod" => &core::pod::printer::PRINTER,
        "Deployment" => &apps::deployment::printer::PRINTER,
        "ReplicaSet" => &apps::replicaset::printer::PRINTER,
        "ReplicationController" => &unserved::REPLICATION_CONTROLLER,
        "StatefulSet" => &unserved::STATEFULSET,
        "DaemonSet" => &unserved::DAEMONSET,
        "Job" => &batch::job::printer::PRINTER,
        "CronJob" => &unserved::CRONJOB,
        "Service" => &core::service::printer::PRINTER,
        "Endpoints" => &core::endpoints::printer::PRINTER,
        "EndpointSlice" => &discovery::endpointslice::printer::PRINTER,
        "Node" => &core::node::printer::PRINTER,
        "Event" => &core::event::printer::PRINTER,
        "Namespace" => &core::namespace::printer::PRINTER,
        "ConfigMap" => &core::configmap::printer::PRINTER,
        "Secret" => &core::secret::printer::PRINTER,
        "ServiceAccount" => &unserved::SERVICEACCOUNT,
        "Lease" => &coordination::lease::printer::PRINTER,
        _ => &DEFAULT,
    }
}

fn table_for_list_at(kind: &str, list: &Value, include: IncludeObject, now: Timestamp) -> Value {
    let base = kind.strip_suffix("List").unwrap_or(kind);
    super::table_for_list_at(printer_for(kind), base, list, include, now)
}

fn table_for_object_at(kind: &str, obj: &Value, include: IncludeObject, now: Timestamp) -> Value {
    super::table_for_object_at(printer_for(kind), kind, obj, include, now)
}

fn now() -> Timestamp {
    "2024-06-01T12:00:00Z".parse().unwrap()
}

/// RFC 3339 timestamp `secs` seconds before `now()`.
fn ago(secs: i64) -> String {
    (now() - SignedDuration::from_secs(secs))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn table(kind: &str, obj: &Value) -> Value {
    table_for_object_at(kind, obj, IncludeObject::Metadata, now())
}

fn cells(kind: &str, obj: &Value) -> Vec<Value> {
    table(kind, obj)["rows"][0]["cells"]
        .as_array()
        .unwrap()
        .clone()
}

fn headers(kind: &str) -> Vec<(String, i64)> {
    table(kind, &json!({}))["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["priority"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn names(cols: &[(String, i64)], priority: i64) -> Vec<&str> {
    cols.iter()
        .filter(|(_, p)| *p == priority)
        .map(|(n, _)| n.as_str())
        .collect()
}

fn assert_headers(kind: &str, normal: &[&str], wide: &[&str]) {
    let cols = headers(kind);
    assert_eq!(names(&cols, 0), normal, "{kind} normal columns");
    assert_eq!(names(&cols, 1), wide, "{kind} wide columns");
    // Every row carries one cell per column.
    assert_eq!(
        cells(kind, &json!({})).len(),
        cols.len(),
        "{kind} cell count"
    );
}

fn strs(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

// ---- human_duration ----------------------------------------------------

#[test]
fn human_duration_boundaries() {
    let cases: &[(i64, &str)] = &[
        (-3, "<invalid>"),
        (-2, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (1, "1s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2m"),
        (121, "2m1s"),
        (303, "5m3s"),
        (599, "9m59s"),
        (600, "10m"),
        (601, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 120, "3h2m"),
        (8 * 3600 - 60, "7h59m"),
        (8 * 3600, "8h"),
        (8 * 3600 + 60, "8h"),
        (48 * 3600 - 1, "47h"),
        (48 * 3600, "2d"),
        (52 * 3600, "2d4h"),
        (8 * 86400 - 3600, "7d23h"),
        (8 * 86400, "8d"),
        (45 * 86400, "45d"),
        (730 * 86400 - 1, "729d"),
        (730 * 86400, "2y"),
        ((3 * 365 + 50) * 86400, "3y50d"),
        (8 * 365 * 86400 - 1, "7y364d"),
        (8 * 365 * 86400, "8y"),
        ((8 * 365 + 100) * 86400, "8y"),
        (20 * 365 * 86400, "20y"),
    ];
    for (secs, want) in cases {
        assert_eq!(
            human_duration(SignedDuration::from_secs(*secs)),
            *want,
            "{secs}s"
        );
    }
    // Sub-second precision truncates toward zero like Go's int(d.Seconds()).
    assert_eq!(human_duration(SignedDuration::from_millis(-1999)), "0s");
    assert_eq!(
        human_duration(SignedDuration::from_millis(-2000)),
        "<invalid>"
    );
    assert_eq!(human_duration(SignedDuration::from_millis(999)), "0s");
    assert_eq!(human_duration(SignedDuration::from_millis(120_999)), "2m");
}

// ---- Accept / includeObject -------------------------------------------

#[test]
fn accept_header_detection() {
    let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    assert!(wants_table_accept(kubectl));
    assert!(wants_table_accept(
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
    ));
    assert!(wants_table_accept(
        "application/json; as=Table; g=meta.k8s.io; v=v1"
    ));
    assert!(wants_table_accept(
        "application/json;as=\"Table\";v=\"v1\";g=\"meta.k8s.io\""
    ));
    assert!(wants_table_accept(
        "application/vnd.kubernetes.protobuf, application/json;as=Table;v=v1;g=meta.k8s.io"
    ));
    assert!(!wants_table_accept("application/json"));
    assert!(!wants_table_accept("*/*"));
    assert!(!wants_table_accept(""));
    assert!(!wants_table_accept(
        "application/json;as=Table;v=v2;g=meta.k8s.io"
    ));
    assert!(!wants_table_accept("application/json;as=Table;v=v1"));
    assert!(!wants_table_accept(
        "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
    ));
    assert!(!wants_table_accept(
        "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io"
    ));
    assert!(!wants_table_accept(
        "application/json;as=Table;v=v1;g=meta.k8s.io;q=0"
    ));
}

#[test]
fn include_object_parse() {
    assert_eq!(IncludeObject::parse(None), IncludeObject::Metadata);
    assert_eq!(IncludeObject::parse(Some("None")), IncludeObject::None);
    assert_eq!(IncludeObject::parse(Some("Object")), IncludeObject::Object);
    assert_eq!(
        IncludeObject::parse(Some("Metadata")),
        IncludeObject::Metadata
    );
    assert_eq!(IncludeObject::parse(Some("bogus")), IncludeObject::Metadata);
    assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
}

// ---- Table shape --------------------------------------------------------

fn pod_list() -> Value {
    json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "42", "continue": "abc", "remainingItemCount": 3},
        "items": [
            {"metadata": {"name": "a", "namespace": "default", "labels": {"app": "x"},
                          "creationTimestamp": ago(60)},
             "spec": {"containers": [{"name": "c"}]},
             "status": {"phase": "Pending"}},
            {"metadata": {"name": "b", "namespace": "kube-system", "creationTimestamp": ago(7200)},
             "spec": {"containers": [{"name": "c"}]},
             "status": {"phase": "Pending"}}
        ]
    })
}

#[test]
fn list_table_shape_with_metadata_objects() {
    let t = table_for_list_at("Pod", &pod_list(), IncludeObject::Metadata, now());
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "42", "continue": "abc", "remainingItemCount": 3})
    );
    let first = &t["columnDefinitions"][0];
    assert_eq!(first["name"], "Name");
    assert_eq!(first["type"], "string");
    assert_eq!(first["format"], "name");
    assert_eq!(first["priority"], 0);
    assert!(first["description"].as_str().unwrap().contains("unique"));
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["cells"][0], "a");
    assert_eq!(rows[1]["cells"][4], "120m");
    assert_eq!(
        rows[0]["object"],
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"name": "a", "namespace": "default", "labels": {"app": "x"},
                         "creationTimestamp": ago(60)}
        })
    );
    assert_eq!(rows[1]["object"]["metadata"]["namespace"], "kube-system");
}

#[test]
fn list_table_include_none_and_object() {
    let t = table_for_list_at("PodList", &pod_list(), IncludeObject::None, now());
    let row = t["rows"][0].as_object().unwrap();
    assert!(!row.contains_key("object"));
    assert_eq!(t["rows"][0]["cells"][0], "a");

    let t = table_for_list_at("Pod", &pod_list(), IncludeObject::Object, now());
    let obj = &t["rows"][1]["object"];
    assert_eq!(obj["kind"], "Pod");
    assert_eq!(obj["apiVersion"], "v1");
    assert_eq!(obj["status"]["phase"], "Pending");
}

#[test]
fn empty_list_and_single_object_metadata() {
    let t = table_for_list_at(
        "Pod",
        &json!({"kind": "PodList", "metadata": {"resourceVersion": "7", "continue": ""}, "items": []}),
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(t["rows"], json!([]));
    assert_eq!(t["metadata"], json!({"resourceVersion": "7"}));
    let t = table_for_object_at(
        "ConfigMap",
        &json!({"metadata": {"name": "c", "resourceVersion": "99"}}),
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(t["metadata"], json!({"resourceVersion": "99"}));
    assert_eq!(t["rows"].as_array().unwrap().len(), 1);
    // Public wrappers work with the real clock.
    let t = table_for_object(
        printer_for("ConfigMap"),
        "ConfigMap",
        &json!({"metadata": {"name": "c"}}),
        IncludeObject::None,
    );
    assert_eq!(t["rows"][0]["cells"], json!(["c", 0, "<unknown>"]));
    let t = table_for_list(
        printer_for("Pod"),
        "Pod",
        &pod_list(),
        IncludeObject::Metadata,
    );
    assert_eq!(t["rows"].as_array().unwrap().len(), 2);
}

// ---- Pod ----------------------------------------------------------------

#[test]
fn pod_headers() {
    assert_headers(
        "Pod",
        &["Name", "Ready", "Status", "Restarts", "Age"],
        &["IP", "Node", "Nominated Node", "Readiness Gates"],
    );
}

fn running_pod() -> Value {
    json!({
        "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": ago(3 * 86400 + 3600)},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app"}, {"name": "sidecar"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.5",
            "podIPs": [{"ip": "10.244.0.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ago(100)}}},
                {"name": "sidecar", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ago(100)}}}
            ]
        }
    })
}

#[test]
fn pod_running_row() {
    assert_eq!(
        cells("Pod", &running_pod()),
        vec![
            json!("web-1"),
            json!("2/2"),
            json!("Running"),
            json!("0"),
            json!("3d1h"),
            json!("10.244.0.5"),
            json!("node-a"),
            json!("<none>"),
            json!("<none>"),
        ]
    );
}

#[test]
fn pod_crashloop_with_restart_age() {
    let pod = json!({
        "metadata": {"name": "crashy", "creationTimestamp": ago(3600)},
        "spec": {"containers": [{"name": "app"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}}
            }]
        }
    });
    let c = strs(&cells("Pod", &pod));
    assert_eq!(c[1..5], ["0/1", "CrashLoopBackOff", "5 (5m ago)", "60m"]);
    // Wide cells fall back to <none>.
    assert_eq!(c[5..], ["<none>", "<none>", "<none>", "<none>"]);
}

#[test]
fn pod_restart_suffix_uses_latest_termination_and_needs_a_date() {
    let pod = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(7200)}}},
            {"name": "b", "ready": true, "restartCount": 1, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(45)}}}
        ]}
    });
    let c = strs(&cells("Pod", &pod));
    assert_eq!(c[1..5], ["2/2", "Running", "3 (45s ago)", "<unknown>"]);

    let pod = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 4, "state": {"running": {}}}
        ]}
    });
    assert_eq!(cells("Pod", &pod)[3], "4");
}

#[test]
fn pod_completed_and_row_conditions() {
    let pod = json!({
        "metadata": {"name": "job-x", "creationTimestamp": ago(600)},
        "spec": {"containers": [{"name": "main"}]},
        "status": {"phase": "Succeeded", "containerStatuses": [{
            "name": "main", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": ago(500)}}
        }]}
    });
    let t = table("Pod", &pod);
    assert_eq!(
        strs(t["rows"][0]["cells"].as_array().unwrap())[1..5],
        ["0/1", "Completed", "0", "10m"]
    );
    assert_eq!(
        t["rows"][0]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully."}])
    );
    let running = table("Pod", &running_pod());
    assert!(running["rows"][0].get("conditions").is_none());
}

#[test]
fn pod_completed_container_with_running_sibling() {
    let mut pod = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "conditions": [], "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}
        ]}
    });
    assert_eq!(cells("Pod", &pod)[2], "NotReady");
    pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    assert_eq!(cells("Pod", &pod)[2], "Running");
    assert_eq!(cells("Pod", &pod)[1], "1/2");
}

#[test]
fn pod_terminated_without_reason() {
    let pod = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Failed", "containerStatuses": [
            {"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 137}}}
        ]}
    });
    assert_eq!(cells("Pod", &pod)[2], "ExitCode:137");
    let pod = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Failed", "containerStatuses": [
            {"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "signal": 9}}}
        ]}
    });
    assert_eq!(cells("Pod", &pod)[2], "Signal:9");
}

#[test]
fn pod_terminating() {
    let mut pod = running_pod();
    pod["metadata"]["deletionTimestamp"] = json!(ago(5));
    assert_eq!(cells("Pod", &pod)[2], "Terminating");
    // A terminal pod keeps its final status while being deleted.
    pod["status"]["phase"] = json!("Succeeded");
    pod["status"]["containerStatuses"] = json!([
        {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        {"name": "sidecar", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    ]);
    assert_eq!(cells("Pod", &pod)[2], "Completed");
    // Pods on an unreachable node show Unknown.
    let mut lost = running_pod();
    lost["metadata"]["deletionTimestamp"] = json!(ago(5));
    lost["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells("Pod", &lost)[2], "Unknown");
}

#[test]
fn pod_init_states() {
    let base = |init_status: Value, conditions: Value| {
        json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "init-a"}, {"name": "init-b"}],
                     "containers": [{"name": "app"}]},
            "status": {"phase": "Pending", "conditions": conditions,
                       "initContainerStatuses": init_status,
                       "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                                              "state": {"waiting": {"reason": "PodInitializing"}}}]}
        })
    };
    // First init container running.
    let pod = base(
        json!([
            {"name": "init-a", "restartCount": 0, "state": {"running": {}}},
            {"name": "init-b", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
        ]),
        json!([]),
    );
    assert_eq!(strs(&cells("Pod", &pod))[1..4], ["0/1", "Init:0/2", "0"]);
    // First done, second running.
    let pod = base(
        json!([
            {"name": "init-a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "init-b", "restartCount": 0, "state": {"running": {}}}
        ]),
        json!([]),
    );
    assert_eq!(cells("Pod", &pod)[2], "Init:1/2");
    // Init container crash looping; restarts counted from init containers.
    let pod = base(
        json!([
            {"name": "init-a", "restartCount": 3,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}},
            {"name": "init-b", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
        ]),
        json!([]),
    );
    assert_eq!(
        strs(&cells("Pod", &pod))[1..4],
        ["0/1", "Init:CrashLoopBackOff", "3 (30s ago)"]
    );
    // Init container failed.
    let pod = base(
        json!([{"name": "init-a", "restartCount": 0,
                "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]),
        json!([]),
    );
    assert_eq!(cells("Pod", &pod)[2], "Init:Error");
    let pod = base(
        json!([{"name": "init-a", "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}]),
        json!([]),
    );
    assert_eq!(cells("Pod", &pod)[2], "Init:ExitCode:2");
    // Once initialised the app containers decide.
    let pod = base(
        json!([
            {"name": "init-a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "init-b", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        ]),
        json!([{"type": "Initialized", "status": "True"}]),
    );
    assert_eq!(cells("Pod", &pod)[2], "PodInitializing");
}

#[test]
fn pod_container_creating_and_image_pull() {
    let pod = json!({
        "metadata": {"name": "p", "creationTimestamp": ago(5)},
        "spec": {"nodeName": "n1", "containers": [{"name": "app"}]},
        "status": {"phase": "Pending", "containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ContainerCreating"}}}
        ]}
    });
    assert_eq!(
        strs(&cells("Pod", &pod))[1..7],
        ["0/1", "ContainerCreating", "0", "5s", "<none>", "n1"]
    );
    let mut pull = pod.clone();
    pull["status"]["containerStatuses"][0]["state"] =
        json!({"waiting": {"reason": "ErrImagePull"}});
    assert_eq!(cells("Pod", &pull)[2], "ErrImagePull");
    // Brand-new pod without status is Pending with 0/N ready.
    let fresh =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    assert_eq!(strs(&cells("Pod", &fresh))[1..4], ["0/2", "Pending", "0"]);
    // Scheduling gates win over the phase.
    let gated = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}});
    assert_eq!(cells("Pod", &gated)[2], "SchedulingGated");
    // Evicted pods show status.reason.
    let evicted = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Failed", "reason": "Evicted"}});
    assert_eq!(cells("Pod", &evicted)[2], "Evicted");
}

#[test]
fn pod_sidecar_init_container_counts() {
    let pod = json!({
        "metadata": {"name": "p"},
        "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                 "containers": [{"name": "app"}]},
        "status": {"phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 2,
                "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(120)}}}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 1, "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(600)}}}]}
    });
    assert_eq!(
        strs(&cells("Pod", &pod))[1..4],
        ["2/2", "Running", "3 (2m ago)"]
    );
}

#[test]
fn pod_readiness_gates_and_nominated_node() {
    let mut pod = running_pod();
    pod["spec"]["readinessGates"] = json!([
        {"conditionType": "example.com/feature-1"},
        {"conditionType": "example.com/feature-2"}
    ]);
    pod["status"]["conditions"] = json!([
        {"type": "Ready", "status": "True"},
        {"type": "example.com/feature-1", "status": "True"},
        {"type": "example.com/feature-2", "status": "False"}
    ]);
    pod["status"]["nominatedNodeName"] = json!("node-b");
    let c = strs(&cells("Pod", &pod));
    assert_eq!(c[7..], ["node-b", "1/2"]);
}

// ---- Workloads ----------------------------------------------------------

fn template(containers: Value) -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
}

#[test]
fn deployment_headers_and_row() {
    assert_headers(
        "Deployment",
        &["Name", "Ready", "Up-to-date", "Available", "Age"],
        &["Containers", "Images", "Selector"],
    );
    let d = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(86400 * 10)},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"}},
                 "template": template(json!([{"name": "nginx", "image": "nginx:1.25"},
                                             {"name": "log", "image": "busybox"}]))},
        "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}
    });
    assert_eq!(
        cells("Deployment", &d),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("10d"),
            json!("nginx,log"),
            json!("nginx:1.25,busybox"),
            json!("app=web,tier=fe"),
        ]
    );
    // No status yet, default replicas.
    let d = json!({"metadata": {"name": "x"}, "spec": {"selector": {"matchLabels": {"a": "b"}}}});
    assert_eq!(strs(&cells("Deployment", &d))[1..4], ["0/1", "0", "0"]);
}

#[test]
fn replicaset_headers_and_row() {
    assert_headers(
        "ReplicaSet",
        &["Name", "Desired", "Current", "Ready", "Age"],
        &["Containers", "Images", "Selector"],
    );
    let rs = json!({
        "metadata": {"name": "web-7d4b9c", "creationTimestamp": ago(90)},
        "spec": {"replicas": 2,
                 "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c"},
                              "matchExpressions": [
                                  {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                  {"key": "canary", "operator": "DoesNotExist"},
                                  {"key": "zone", "operator": "NotIn", "values": ["b"]},
                                  {"key": "gpu", "operator": "Exists"}]},
                 "template": template(json!([{"name": "nginx", "image": "nginx"}]))},
        "status": {"replicas": 2, "readyReplicas": 1}
    });
    assert_eq!(
        cells("ReplicaSet", &rs),
        vec![
            json!("web-7d4b9c"),
            json!(2),
            json!(2),
            json!(1),
            json!("90s"),
            json!("nginx"),
            json!("nginx"),
            json!("app=web,!canary,env in (dev,prod),gpu,pod-template-hash=7d4b9c,zone notin (b)"),
        ]
    );
    let bare = json!({"metadata": {"name": "r"}, "spec": {"replicas": 0}});
    assert_eq!(
        strs(&cells("ReplicaSet", &bare)),
        ["r", "0", "0", "0", "<unknown>", "", "", "<none>"]
    );
    let bad = json!({"metadata": {"name": "r"}, "spec": {"selector": {"matchExpressions": [
        {"key": "a", "operator": "Bogus"}]}}});
    assert_eq!(cells("ReplicaSet", &bad)[7], "<error>");
}

#[test]
fn job_headers_and_rows() {
    assert_headers(
        "Job",
        &["Name", "Status", "Completions", "Duration", "Age"],
        &["Containers", "Images", "Selector"],
    );
    let job = json!({
        "metadata": {"name": "pi", "creationTimestamp": ago(600)},
        "spec": {"completions": 3, "parallelism": 1,
                 "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                 "template": template(json!([{"name": "pi", "image": "perl:5.34"}]))},
        "status": {"succeeded": 3, "startTime": ago(590), "completionTime": ago(545),
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                  {"type": "Complete", "status": "True"}]}
    });
    assert_eq!(
        strs(&cells("Job", &job)),
        [
            "pi",
            "Complete",
            "3/3",
            "45s",
            "10m",
            "pi",
            "perl:5.34",
            "batch.kubernetes.io/controller-uid=abc"
        ]
    );
    let running = json!({"metadata": {"name": "j"},
        "spec": {"parallelism": 4}, "status": {"succeeded": 1, "startTime": ago(303)}});
    assert_eq!(
        strs(&cells("Job", &running))[1..4],
        ["Running", "1/1 of 4", "5m3s"]
    );
    let suspended = json!({"metadata": {"name": "j"}, "spec": {"completions": 1, "suspend": true},
        "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
    assert_eq!(
        strs(&cells("Job", &suspended))[1..4],
        ["Suspended", "0/1", ""]
    );
    let failed = json!({"metadata": {"name": "j"}, "spec": {},
        "status": {"failed": 6, "conditions": [{"type": "FailureTarget", "status": "True"},
                                               {"type": "Failed", "status": "True"}]}});
    assert_eq!(strs(&cells("Job", &failed))[1..3], ["Failed", "0/1"]);
    let target = json!({"metadata": {"name": "j"}, "spec": {},
        "status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}});
    assert_eq!(cells("Job", &target)[1], "FailureTarget");
    let deleting = json!({"metadata": {"name": "j", "deletionTimestamp": ago(1)}, "spec": {}});
    assert_eq!(cells("Job", &deleting)[1], "Terminating");
    let not_complete = json!({"metadata": {"name": "j"}, "spec": {},
        "status": {"conditions": [{"type": "Complete", "status": "False"}]}});
    assert_eq!(cells("Job", &not_complete)[1], "Running");
}

#[test]
fn statefulset_daemonset_cronjob_rc() {
    assert_headers(
        "StatefulSet",
        &["Name", "Ready", "Age"],
        &["Containers", "Images"],
    );
    let sts = json!({"metadata": {"name": "db", "creationTimestamp": ago(60)},
        "spec": {"replicas": 3, "template": template(json!([{"name": "pg", "image": "postgres:16"}]))},
        "status": {"readyReplicas": 3}});
    assert_eq!(
        strs(&cells("StatefulSet", &sts)),
        ["db", "3/3", "60s", "pg", "postgres:16"]
    );

    assert_headers(
        "DaemonSet",
        &[
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Up-to-date",
            "Available",
            "Node Selector",
            "Age",
        ],
        &["Containers", "Images", "Selector"],
    );
    let ds = json!({"metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                       "containers": [{"name": "a", "image": "agent:1"}]}}},
        "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                   "updatedNumberScheduled": 2, "numberAvailable": 1}});
    assert_eq!(
        cells("DaemonSet", &ds),
        vec![
            json!("agent"),
            json!(2),
            json!(2),
            json!(1),
            json!(2),
            json!(1),
            json!("kubernetes.io/os=linux"),
            json!("<unknown>"),
            json!("a"),
            json!("agent:1"),
            json!("app=agent"),
        ]
    );

    assert_headers(
        "CronJob",
        &[
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age",
        ],
        &["Containers", "Images", "Selector"],
    );
    let cj = json!({"metadata": {"name": "hello", "creationTimestamp": ago(3600)},
        "spec": {"schedule": "*/1 * * * *", "suspend": false,
                 "jobTemplate": {"spec": {"template": template(json!([{"name": "hello", "image": "busybox"}]))}}},
        "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": ago(20)}});
    assert_eq!(
        cells("CronJob", &cj),
        vec![
            json!("hello"),
            json!("*/1 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("20s"),
            json!("60m"),
            json!("hello"),
            json!("busybox"),
            json!("<none>"),
        ]
    );

    let rc = json!({"metadata": {"name": "rc"}, "spec": {"replicas": 2, "selector": {"app": "x"}},
        "status": {"replicas": 2, "readyReplicas": 2}});
    assert_eq!(cells("ReplicationController", &rc)[7], "app=x");
}

// ---- Service ------------------------------------------------------------

#[test]
fn service_headers_and_rows() {
    assert_headers(
        "Service",
        &[
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
        ],
        &["Selector"],
    );
    let svc = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(7200)},
        "spec": {"type": "NodePort", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
                 "selector": {"app": "web", "tier": "frontend"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                           {"name": "https", "port": 443, "protocol": "TCP"},
                           {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 31053}]}
    });
    assert_eq!(
        strs(&cells("Service", &svc)),
        [
            "web",
            "NodePort",
            "10.96.12.34",
            "<none>",
            "80:30080/TCP,443/TCP,53:31053/UDP",
            "120m",
            "app=web,tier=frontend"
        ]
    );
    let kubernetes = json!({"metadata": {"name": "kubernetes"},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 443}]}});
    assert_eq!(
        strs(&cells("Service", &kubernetes))[1..5],
        ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    );
    let headless = json!({"metadata": {"name": "db"},
        "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"],
                 "externalIPs": ["1.2.3.4", "5.6.7.8"]}});
    assert_eq!(
        strs(&cells("Service", &headless))[1..7],
        [
            "ClusterIP",
            "None",
            "1.2.3.4,5.6.7.8",
            "<none>",
            "<unknown>",
            "<none>"
        ]
    );
    let lb = json!({"metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.9"],
                 "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]}});
    assert_eq!(cells("Service", &lb)[3], "<pending>");
    let mut lb_ready = lb.clone();
    lb_ready["status"] = json!({"loadBalancer": {"ingress": [
        {"ip": "203.0.113.9"}, {"hostname": "a.example.com"}, {"ip": "203.0.113.10"}]}});
    assert_eq!(
        cells("Service", &lb_ready)[3],
        "203.0.113.10,203.0.113.9,a.example.com"
    );
    lb_ready["spec"]["externalIPs"] = json!(["198.51.100.1"]);
    assert_eq!(
        cells("Service", &lb_ready)[3],
        "203.0.113.10,203.0.113.9,a.example.com,198.51.100.1"
    );
    let ext = json!({"metadata": {"name": "ext"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    assert_eq!(
        strs(&cells("Service", &ext))[1..5],
        ["ExternalName", "<none>", "db.example.com", "<none>"]
    );
}

// ---- Endpoints / EndpointSlice -----------------------------------------

fn addrs(ips: &[&str]) -> Value {
    Value::Array(ips.iter().map(|ip| json!({"ip": ip})).collect())
}

#[test]
fn endpoints_headers_and_formatting() {
    assert_headers("Endpoints", &["Name", "Endpoints", "Age"], &[]);
    let ep = json!({"metadata": {"name": "web", "creationTimestamp": ago(30)},
        "subsets": [{"addresses": addrs(&["10.0.0.1", "10.0.0.2"]), "ports": [{"port": 80}]}]});
    assert_eq!(
        strs(&cells("Endpoints", &ep)),
        ["web", "10.0.0.1:80,10.0.0.2:80", "30s"]
    );
    let many = json!({"metadata": {"name": "web"},
        "subsets": [{"addresses": addrs(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]),
                     "ports": [{"port": 80}]}]});
    assert_eq!(
        cells("Endpoints", &many)[1],
        "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more..."
    );
    // Two ports multiply the count; exactly three fits without "more".
    let two_ports = json!({"metadata": {"name": "web"},
        "subsets": [{"addresses": addrs(&["10.0.0.1", "10.0.0.2"]),
                     "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}]});
    assert_eq!(
        cells("Endpoints", &two_ports)[1],
        "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
    );
    let three = json!({"metadata": {"name": "web"},
        "subsets": [{"addresses": addrs(&["10.0.0.1"]), "ports": [{"port": 1}]},
                    {"addresses": addrs(&["10.0.0.2", "10.0.0.3"]), "ports": [{"port": 2}]}]});
    assert_eq!(
        cells("Endpoints", &three)[1],
        "10.0.0.1:1,10.0.0.2:2,10.0.0.3:2"
    );
    let headless = json!({"metadata": {"name": "h"},
        "subsets": [{"addresses": addrs(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"])}]});
    assert_eq!(
        cells("Endpoints", &headless)[1],
        "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."
    );
    let v6 = json!({"metadata": {"name": "v6"},
        "subsets": [{"addresses": addrs(&["fd00::1"]), "ports": [{"port": 8080}]}]});
    assert_eq!(cells("Endpoints", &v6)[1], "[fd00::1]:8080");
    let none = json!({"metadata": {"name": "e"}});
    assert_eq!(cells("Endpoints", &none)[1], "<none>");
    let only_not_ready = json!({"metadata": {"name": "e"},
        "subsets": [{"notReadyAddresses": addrs(&["10.0.0.1"]), "ports": [{"port": 80}]}]});
    assert_eq!(cells("Endpoints", &only_not_ready)[1], "");
}

#[test]
fn endpointslice_headers_and_row() {
    assert_headers(
        "EndpointSlice",
        &["Name", "AddressType", "Ports", "Endpoints", "Age"],
        &[],
    );
    let slice = json!({"metadata": {"name": "web-abc12", "creationTimestamp": ago(3 * 3600 + 120)},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics"},
                  {"port": 9090}, {"port": 9091}],
        "endpoints": [{"addresses": ["10.1.0.1"]}, {"addresses": ["10.1.0.2", "10.1.0.3"]},
                      {"addresses": ["10.1.0.4"]}]});
    assert_eq!(
        strs(&cells("EndpointSlice", &slice)),
        [
            "web-abc12",
            "IPv4",
            "80,metrics,9090 + 1 more...",
            "10.1.0.1,10.1.0.2,10.1.0.3 + 1 more...",
            "3h2m"
        ]
    );
    let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv4",
        "ports": [{}], "endpoints": []});
    assert_eq!(
        strs(&cells("EndpointSlice", &empty))[2..4],
        ["*", "<unset>"]
    );
    let no_ports = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
    assert_eq!(
        strs(&cells("EndpointSlice", &no_ports))[2..4],
        ["<unset>", "<unset>"]
    );
}

// ---- Node ---------------------------------------------------------------

fn node(conditions: Value, unschedulable: bool, labels: Value) -> Value {
    json!({
        "metadata": {"name": "node-1", "labels": labels, "creationTimestamp": ago(45 * 86400)},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": conditions,
            "addresses": [{"type": "Hostname", "address": "node-1"},
                          {"type": "InternalIP", "address": "192.168.1.10"}],
            "nodeInfo": {"kubeletVersion": "v1.30.2", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.7.13"}
        }
    })
}

#[test]
fn node_headers_and_rows() {
    assert_headers(
        "Node",
        &["Name", "Status", "Roles", "Age", "Version"],
        &[
            "Internal-IP",
            "External-IP",
            "OS-Image",
            "Kernel-Version",
            "Container-Runtime",
        ],
    );
    let ready =
        json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]);
    let n = node(
        ready.clone(),
        false,
        json!({"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "node-1"}),
    );
    assert_eq!(
        strs(&cells("Node", &n)),
        [
            "node-1",
            "Ready",
            "control-plane",
            "45d",
            "v1.30.2",
            "192.168.1.10",
            "<none>",
            "Debian GNU/Linux 12 (bookworm)",
            "6.1.0-18-amd64",
            "containerd://1.7.13"
        ]
    );
    let cordoned = node(ready, true, json!({}));
    assert_eq!(
        strs(&cells("Node", &cordoned))[1..3],
        ["Ready,SchedulingDisabled", "<none>"]
    );
    let not_ready = node(
        json!([{"type": "Ready", "status": "False"}]),
        false,
        json!(null),
    );
    assert_eq!(cells("Node", &not_ready)[1], "NotReady");
    let unknown_status = node(
        json!([{"type": "Ready", "status": "Unknown"}]),
        false,
        json!({}),
    );
    assert_eq!(cells("Node", &unknown_status)[1], "NotReady");
    let no_cond = node(json!([]), true, json!({}));
    assert_eq!(cells("Node", &no_cond)[1], "Unknown,SchedulingDisabled");
    let roles = node(
        json!([]),
        false,
        json!({"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/infra": "true",
               "kubernetes.io/role": "master", "node-role.kubernetes.io/": ""}),
    );
    assert_eq!(cells("Node", &roles)[2], "infra,master,worker");
    let bare = json!({"metadata": {"name": "n"}});
    assert_eq!(
        strs(&cells("Node", &bare))[1..],
        [
            "Unknown",
            "<none>",
            "<unknown>",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>"
        ]
    );
}

// ---- Event --------------------------------------------------------------

#[test]
fn event_headers_and_row() {
    let cols = headers("Event");
    let all: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        all,
        [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject",
            "Source",
            "Message",
            "First Seen",
            "Count",
            "Name"
        ]
    );
    assert_eq!(
        names(&cols, 0),
        ["Last Seen", "Type", "Reason", "Object", "Message"]
    );
    let ev = json!({
        "metadata": {"name": "web-1.17d9a", "namespace": "default", "creationTimestamp": ago(600)},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default",
                           "fieldPath": "spec.containers{app}"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container\n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(600),
        "lastTimestamp": ago(30),
        "count": 7,
        "type": "Warning"
    });
    assert_eq!(
        cells("Event", &ev),
        vec![
            json!("30s"),
            json!("Warning"),
            json!("BackOff"),
            json!("pod/web-1"),
            json!("spec.containers{app}"),
            json!("kubelet, node-1"),
            json!("Back-off restarting failed container"),
            json!("10m"),
            json!(7),
            json!("web-1.17d9a"),
        ]
    );
    // events.k8s.io-style event: eventTime only, reporting fields, no count.
    let new_style = json!({
        "metadata": {"name": "e2"},
        "involvedObject": {"kind": "Node"},
        "reason": "Starting", "type": "Normal", "message": "Starting kubelet.",
        "eventTime": "2024-06-01T11:59:15.123456Z",
        "reportingComponent": "kubelet", "reportingInstance": ""
    });
    let c = strs(&cells("Event", &new_style));
    assert_eq!(c[0], "44s");
    assert_eq!(c[3], "node");
    assert_eq!(c[5], "kubelet");
    assert_eq!(c[7], "44s");
    assert_eq!(c[8], "1");
    let series = json!({
        "metadata": {"name": "e3"}, "involvedObject": {"kind": "Pod", "name": "p"},
        "eventTime": ago(3600), "series": {"count": 12, "lastObservedTime": "2024-06-01T11:58:00.000000Z"}
    });
    let c = strs(&cells("Event", &series));
    assert_eq!(
        (c[0].as_str(), c[7].as_str(), c[8].as_str()),
        ("2m", "60m", "12")
    );
    let nothing = json!({"metadata": {"name": "e4"}});
    assert_eq!(strs(&cells("Event", &nothing))[0], "<unknown>");
}

// ---- Small kinds --------------------------------------------------------

#[test]
fn namespace_configmap_secret_lease_serviceaccount() {
    assert_headers("Namespace", &["Name", "Status", "Age"], &[]);
    let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": ago(86400 * 400)},
        "status": {"phase": "Active"}});
    assert_eq!(
        strs(&cells("Namespace", &ns)),
        ["kube-system", "Active", "400d"]
    );
    let deleting = json!({"metadata": {"name": "x", "deletionTimestamp": ago(1)},
        "status": {"phase": "Terminating"}});
    assert_eq!(cells("Namespace", &deleting)[1], "Terminating");

    assert_headers("ConfigMap", &["Name", "Data", "Age"], &[]);
    let cm = json!({"metadata": {"name": "kube-root-ca.crt", "creationTimestamp": ago(50)},
        "data": {"ca.crt": "...", "other": "x"}, "binaryData": {"bin": "AAAA"}});
    assert_eq!(
        cells("ConfigMap", &cm),
        vec![json!("kube-root-ca.crt"), json!(3), json!("50s")]
    );

    assert_headers("Secret", &["Name", "Type", "Data", "Age"], &[]);
    let secret = json!({"metadata": {"name": "tls", "creationTimestamp": ago(86400 * 3)},
        "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(
        cells("Secret", &secret),
        vec![
            json!("tls"),
            json!("kubernetes.io/tls"),
            json!(2),
            json!("3d")
        ]
    );
    let opaque = json!({"metadata": {"name": "s"}});
    assert_eq!(
        cells("Secret", &opaque),
        vec![json!("s"), json!("Opaque"), json!(0), json!("<unknown>")]
    );

    assert_headers("Lease", &["Name", "Holder", "Age"], &[]);
    let lease = json!({"metadata": {"name": "kube-scheduler", "creationTimestamp": ago(3600 * 5)},
        "spec": {"holderIdentity": "master-1_3f2a", "leaseDurationSeconds": 15}});
    assert_eq!(
        strs(&cells("Lease", &lease)),
        ["kube-scheduler", "master-1_3f2a", "5h"]
    );
    assert_eq!(cells("Lease", &json!({"metadata": {"name": "l"}}))[1], "");

    assert_headers("ServiceAccount", &["Name", "Secrets", "Age"], &[]);
    let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "t"}]});
    assert_eq!(cells("ServiceAccount", &sa)[1], json!(1));
}

#[test]
fn unknown_kind_gets_name_and_age() {
    assert_headers("Widget", &["Name", "Age"], &[]);
    let obj = json!({"metadata": {"name": "w1", "creationTimestamp": ago(5 * 60 + 3)}});
    assert_eq!(strs(&cells("Widget", &obj)), ["w1", "5m3s"]);
    let future = json!({"metadata": {"name": "w2", "creationTimestamp": ago(-10)}});
    assert_eq!(cells("Widget", &future)[1], "<invalid>");
    let garbage = json!({"metadata": {"name": "w3", "creationTimestamp": "yesterday"}});
    assert_eq!(cells("Widget", &garbage)[1], "<unknown>");
}

#[test]
fn column_types_match_kubernetes() {
    let ty = |kind: &str, col: &str| -> String {
        table(kind, &json!({}))["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == col)
            .unwrap()["type"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(ty("Pod", "Restarts"), "string");
    assert_eq!(ty("ReplicaSet", "Desired"), "integer");
    assert_eq!(ty("Deployment", "Up-to-date"), "string");
    assert_eq!(ty("CronJob", "Suspend"), "boolean");
    assert_eq!(ty("Event", "Count"), "string");
    // Only Name columns carry the "name" format.
    let t = table("Event", &json!({}));
    for c in t["columnDefinitions"].as_array().unwrap() {
        let expected = if c["name"] == "Name" { "name" } else { "" };
        assert_eq!(c["format"], expected);
    }
}
