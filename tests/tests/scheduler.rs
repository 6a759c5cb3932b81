//! skiff-scheduler against a real etcd and apiserver, with Node objects created by the tests
//! (no agents) and the scheduler running in-process.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use skiff_scheduler::{Config, LeaderElectionConfig};
use skiff_testkit::{wait_for, TestCluster};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(30);

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("test object is valid")
}

fn fast_config() -> Config {
    Config {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        ..Config::default()
    }
}

/// A scheduler running in-process; stopped (gracefully) by `stop`, or crashed by `abort`.
struct RunningScheduler {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningScheduler {
    fn start(client: kube::Client, config: Config) -> RunningScheduler {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(skiff_scheduler::run(client, config, async move {
            let _ = rx.await;
        }));
        RunningScheduler {
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("scheduler stops within 10 s")
            .expect("scheduler task did not panic")
            .expect("scheduler returned Ok");
    }

    /// Simulate a crash: the task is dropped mid-flight, nothing is released.
    async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Create a Ready node with the given allocatable resources, labels, taints and spec fields.
async fn create_node(
    client: &kube::Client,
    name: &str,
    cpu: &str,
    memory: &str,
    extra: Value,
) -> Node {
    let api: Api<Node> = Api::all(client.clone());
    let mut spec = extra.get("spec").cloned().unwrap_or(json!({}));
    if let Some(t) = extra.get("taints") {
        spec["taints"] = t.clone();
    }
    let node: Node = from_json(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": extra.get("labels").cloned().unwrap_or(json!({}))},
        "spec": spec,
    }));
    api.create(&PostParams::default(), &node)
        .await
        .unwrap_or_else(|e| panic!("create node {name}: {e}"));
    let ready = extra.get("ready").and_then(Value::as_bool).unwrap_or(true);
    let resources = json!({"cpu": cpu, "memory": memory, "pods": "110"});
    let status = json!({"status": {
        "capacity": resources, "allocatable": resources,
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "reason": "Test",
                        "lastHeartbeatTime": "2024-01-01T00:00:00Z", "lastTransitionTime": "2024-01-01T00:00:00Z"}]
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap_or_else(|e| panic!("set status of node {name}: {e}"))
}

async fn create_pod(
    client: &kube::Client,
    name: &str,
    spec_extra: Value,
    meta_extra: Value,
) -> Pod {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        for (k, v) in extra {
            if k == "resources" || k == "ports" {
                s["containers"][0][k] = v.clone();
            } else {
                s.insert(k.clone(), v.clone());
            }
        }
    }
    let mut meta = json!({"name": name});
    if let (Some(m), Some(extra)) = (meta.as_object_mut(), meta_extra.as_object()) {
        m.extend(extra.clone());
    }
    let pod: Pod =
        from_json(json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}));
    api.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("create pod {name}: {e}"))
}

fn cpu(c: &str) -> Value {
    json!({"resources": {"requests": {"cpu": c}}})
}

async fn bound_node(client: &kube::Client, pod: &str) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    wait_for(&format!("pod {pod} to be bound"), WAIT, || {
        let api = api.clone();
        async move {
            api.get(pod)
                .await
                .ok()?
                .spec?
                .node_name
                .filter(|n| !n.is_empty())
        }
    })
    .await
}

/// Wait for PodScheduled=False/Unschedulable and return its message.
async fn unschedulable_message(client: &kube::Client, pod: &str) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    wait_for(
        &format!("pod {pod} to be marked unschedulable"),
        WAIT,
        || {
            let api = api.clone();
            async move {
                let p = api.get(pod).await.ok()?;
                let c = p
                    .status?
                    .conditions?
                    .into_iter()
                    .find(|c| c.type_ == "PodScheduled")?;
                (c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
                    .then(|| c.message.unwrap_or_default())
            }
        },
    )
    .await
}

async fn failed_scheduling_events(client: &kube::Client, pod: &str) -> Vec<String> {
    events_with_reason(client, pod, "FailedScheduling").await
}

async fn events_with_reason(client: &kube::Client, pod: &str, reason: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let events = api.list(&ListParams::default()).await.expect("list events");
    events
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(pod) && e.reason.as_deref() == Some(reason)
        })
        .map(|e| e.message.unwrap_or_default())
        .collect()
}

async fn assert_unbound(client: &kube::Client, pod: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p = api.get(pod).await.expect("get pod");
    assert_eq!(p.spec.unwrap().node_name, None, "{pod} must not be bound");
}

#[tokio::test]
async fn each_filter_decides_and_refusals_are_explained() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    let taint = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
    create_node(
        &client,
        "a",
        "4",
        "8Gi",
        json!({"labels": {"zone": "a", "disk": "hdd"}}),
    )
    .await;
    create_node(
        &client,
        "b",
        "4",
        "8Gi",
        json!({"labels": {"zone": "b", "disk": "ssd"}, "taints": taint}),
    )
    .await;
    create_node(
        &client,
        "c",
        "1",
        "8Gi",
        json!({"labels": {"zone": "c", "disk": "ssd"}}),
    )
    .await;
    create_node(
        &client,
        "d",
        "4",
        "8Gi",
        json!({"labels": {"zone": "d"}, "spec": {"unschedulable": true}}),
    )
    .await;
    create_node(
        &client,
        "e",
        "4",
        "8Gi",
        json!({"labels": {"zone": "e"}, "ready": false}),
    )
    .await;
    let sched = RunningScheduler::start(client.clone(), fast_config());

    // nodeSelector alone picks c.
    create_pod(
        &client,
        "by-selector",
        json!({"nodeSelector": {"zone": "c"}}),
        json!({}),
    )
    .await;
    // Required affinity allows d, e and c; d is cordoned and e not ready.
    let zones = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["d", "e", "c"]}]}]}}});
    create_pod(
        &client,
        "by-affinity",
        json!({"affinity": zones}),
        json!({}),
    )
    .await;
    // ssd + 2 cpu: c is too small, b is tainted but tolerated.
    let tolerate =
        json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]);
    let mut tolerating = cpu("2");
    tolerating["nodeSelector"] = json!({"disk": "ssd"});
    tolerating["tolerations"] = tolerate;
    create_pod(&client, "by-toleration", tolerating, json!({})).await;
    // The same pod without the toleration fits nowhere, for five different reasons.
    let mut untolerating = cpu("2");
    untolerating["nodeSelector"] = json!({"disk": "ssd"});
    create_pod(&client, "refused", untolerating, json!({})).await;

    assert_eq!(bound_node(&client, "by-selector").await, "c");
    assert_eq!(bound_node(&client, "by-affinity").await, "c");
    assert_eq!(bound_node(&client, "by-toleration").await, "b");
    let expected = "0/5 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector, \
                    1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were not ready, 1 node(s) were unschedulable.";
    assert_eq!(unschedulable_message(&client, "refused").await, expected);
    let events =
        wait_for("a FailedScheduling event", WAIT, || {
            let client = client.clone();
            async move {
                Some(failed_scheduling_events(&client, "refused").await).filter(|e| !e.is_empty())
            }
        })
        .await;
    assert_eq!(events, vec![expected.to_string()]);
    assert_unbound(&client, "refused").await;

    // Host ports: the first pod takes 8080 on a; a second asking for 8080 cannot go there.
    let on_a = json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]});
    let affinity_a = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [on_a]}}});
    let port = |p: i32| json!({"ports": [{"containerPort": 80, "hostPort": p}], "affinity": affinity_a.clone()});
    create_pod(&client, "port-1", port(8080), json!({})).await;
    assert_eq!(bound_node(&client, "port-1").await, "a");
    create_pod(&client, "port-2", port(8080), json!({})).await;
    create_pod(&client, "port-3", port(8081), json!({})).await;
    assert_eq!(bound_node(&client, "port-3").await, "a");
    assert_eq!(
        unschedulable_message(&client, "port-2").await,
        "0/5 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, \
         1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}, \
         1 node(s) were not ready, 1 node(s) were unschedulable."
    );
    // Removing the holder of the port lets the waiting pod in (a graceful delete would keep it
    // counted until its agent confirms, as in Kubernetes, so force it).
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.delete("port-1", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(bound_node(&client, "port-2").await, "a");

    // Uncordoning d is a cluster event that lets the refused pod be retried; labelling it ssd
    // makes it fit.
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            "d",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"disk": "ssd"}}, "spec": {"unschedulable": false}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(bound_node(&client, "refused").await, "d");

    sched.stop().await;
    cluster.stop().await;
}

#[tokio::test]
async fn an_unschedulable_pod_is_bound_when_a_node_is_added() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    create_node(&client, "small-1", "1", "4Gi", json!({})).await;
    create_node(&client, "small-2", "1", "4Gi", json!({})).await;
    create_node(
        &client,
        "tainted",
        "8",
        "16Gi",
        json!({"taints": [{"key": "key", "value": "value", "effect": "NoSchedule"}]}),
    )
    .await;
    let sched = RunningScheduler::start(client.clone(), fast_config());

    create_pod(&client, "big", cpu("2"), json!({})).await;
    let expected = "0/3 nodes are available: 1 node(s) had untolerated taint {key: value}, 2 Insufficient cpu.";
    assert_eq!(unschedulable_message(&client, "big").await, expected);
    wait_for("a FailedScheduling event", WAIT, || {
        let client = client.clone();
        async move {
            Some(failed_scheduling_events(&client, "big").await)
                .filter(|e| e.iter().any(|m| m == expected))
        }
    })
    .await;

    create_node(&client, "large", "4", "8Gi", json!({})).await;
    assert_eq!(bound_node(&client, "big").await, "large");
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let scheduled = api
        .get("big")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .unwrap();
    let c = scheduled
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert_eq!(c.status, "True");
    wait_for("a Scheduled event", WAIT, || {
        let client = client.clone();
        async move {
            Some(events_with_reason(&client, "big", "Scheduled").await).filter(|e| {
                e.iter()
                    .any(|m| m == "Successfully assigned default/big to large")
            })
        }
    })
    .await;

    sched.stop().await;
    cluster.stop().await;
}

#[tokio::test]
async fn six_replicas_spread_two_per_node_and_scores_decide() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    for n in ["n1", "n2", "n3"] {
        create_node(&client, n, "4", "8Gi", json!({})).await;
    }
    let sched = RunningScheduler::start(client.clone(), fast_config());
    let owner = json!({"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
        "uid": "5f0c1f9e-0000-4000-8000-000000000001", "controller": true}], "labels": {"app": "web"}});
    for i in 0..6 {
        create_pod(&client, &format!("web-{i}"), json!({}), owner.clone()).await;
    }
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..6 {
        *per_node
            .entry(bound_node(&client, &format!("web-{i}")).await)
            .or_default() += 1;
    }
    assert_eq!(
        per_node.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "{per_node:?}"
    );
    sched.stop().await;

    // Scores: preferred affinity, PreferNoSchedule taints and least-allocated each decide.
    create_node(
        &client,
        "ssd",
        "4",
        "8Gi",
        json!({"labels": {"disk": "ssd"}}),
    )
    .await;
    create_node(&client, "plain", "4", "8Gi", json!({})).await;
    create_node(
        &client,
        "slow",
        "4",
        "8Gi",
        json!({"taints": [{"key": "slow", "value": "yes", "effect": "PreferNoSchedule"}]}),
    )
    .await;
    let api: Api<Node> = Api::all(client.clone());
    for n in ["n1", "n2", "n3"] {
        api.delete(n, &Default::default()).await.unwrap();
    }
    let sched = RunningScheduler::start(client.clone(), fast_config());
    let prefers = json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}},
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}});
    create_pod(&client, "likes-ssd", prefers, json!({})).await;
    assert_eq!(bound_node(&client, "likes-ssd").await, "ssd");
    // No preference: ssd is now busier (least allocated), slow has a PreferNoSchedule taint.
    create_pod(&client, "anywhere", json!({}), json!({})).await;
    assert_eq!(bound_node(&client, "anywhere").await, "plain");

    sched.stop().await;
    cluster.stop().await;
}

async fn lease_holder(client: &kube::Client) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    api.get_opt("skiff-scheduler")
        .await
        .ok()??
        .spec?
        .holder_identity
}

#[tokio::test]
async fn leadership_fails_over_within_the_lease_duration() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    create_node(&client, "n1", "4", "8Gi", json!({})).await;
    let lease_duration = Duration::from_secs(2);
    let config = |id: &str| Config {
        leader_election: Some(LeaderElectionConfig {
            lease_duration,
            renew_deadline: Duration::from_millis(1500),
            retry_period: Duration::from_millis(200),
            ..LeaderElectionConfig::new("skiff-scheduler", id)
        }),
        ..fast_config()
    };
    let one_cfg = config("one");
    let one_metrics = one_cfg.metrics.clone();
    let one = RunningScheduler::start(client.clone(), one_cfg);
    wait_for("replica one to lead", WAIT, || {
        let client = client.clone();
        async move { (lease_holder(&client).await.as_deref() == Some("one")).then_some(()) }
    })
    .await;
    let two_cfg = config("two");
    let two_metrics = two_cfg.metrics.clone();
    let two = RunningScheduler::start(client.clone(), two_cfg);

    create_pod(&client, "first", json!({}), json!({})).await;
    assert_eq!(bound_node(&client, "first").await, "n1");
    assert!(one_metrics.encode().contains("skiff_scheduler_leader 1"));
    assert!(two_metrics.encode().contains("skiff_scheduler_leader 0"));

    // Crash the leader: no release; the other replica must take over once the lease expires.
    one.abort().await;
    let crashed = Instant::now();
    wait_for(
        "replica two to take over",
        lease_duration + Duration::from_secs(2),
        || {
            let client = client.clone();
            async move { (lease_holder(&client).await.as_deref() == Some("two")).then_some(()) }
        },
    )
    .await;
    let took = crashed.elapsed();
    assert!(
        took <= lease_duration + Duration::from_millis(1500),
        "takeover took {took:?}"
    );
    create_pod(&client, "second", json!({}), json!({})).await;
    assert_eq!(bound_node(&client, "second").await, "n1");

    // A graceful stop releases the lease at once.
    two.stop().await;
    assert_eq!(lease_holder(&client).await, None);
    cluster.stop().await;
}
