//! The controllers against a real etcd and apiserver, run in-process. No scheduler or agent
//! runs: the tests play their part (pod status, readiness, node heartbeats) themselves.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::ResourceExt;
use serde_json::{json, Value};
use skiff_testkit::{wait_for, TestCluster};

const T: Duration = Duration::from_secs(30);

struct Env {
    _cluster: TestCluster,
    client: kube::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Env {
    let cluster = TestCluster::start().await.expect("cluster starts");
    let client = cluster.client();
    let config = skiff_controllers::Config {
        node_monitor_grace_period: Duration::from_secs(2),
        node_monitor_period: Duration::from_millis(200),
        gc_resync_period: Duration::from_secs(2),
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // The controllers run as themselves, with only their ClusterRole's rights.
    let c = cluster
        .client_as("system:kube-controller-manager", None)
        .await
        .expect("a client for the controllers' identity");
    tokio::spawn(async move {
        if let Err(e) = skiff_controllers::run(c, config, async {
            let _ = rx.await;
        })
        .await
        {
            panic!("controllers failed: {e}");
        }
    });
    Env {
        _cluster: cluster,
        client,
        _stop: tx,
    }
}

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("valid test object")
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// Play the agent: the pod runs with this IP, ready or not.
async fn set_pod_state(api: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let status = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now()}]
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("pod status patch");
}

async fn set_phase(api: &Api<Pod>, name: &str, phase: &str) {
    let status = json!({"status": {"phase": phase}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("pod phase patch");
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn live(pods: Vec<Pod>) -> Vec<Pod> {
    pods.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

async fn pods_with(api: &Api<Pod>, selector: &str) -> Vec<Pod> {
    live(
        api.list(&ListParams::default().labels(selector))
            .await
            .expect("list pods")
            .items,
    )
}

/// Mark every live, not yet ready pod ready, giving each a distinct IP.
async fn ready_all(api: &Api<Pod>, selector: &str, next_ip: &mut u32) {
    for p in pods_with(api, selector).await {
        if !is_ready(&p) {
            *next_ip += 1;
            set_pod_state(api, &p.name_any(), &format!("10.244.0.{}", *next_ip), true).await;
        }
    }
}

fn deployment(name: &str, image: &str, replicas: i32) -> Deployment {
    obj(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": image}]}}
        }
    }))
}

fn image_of(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers[0].image.clone().unwrap_or_default())
        .unwrap_or_default()
}

fn revision(rs: &ReplicaSet) -> String {
    rs.annotations()
        .get("deployment.kubernetes.io/revision")
        .cloned()
        .unwrap_or_default()
}

/// Wait for the Deployment to settle with every replica available on `image`, keeping pods
/// ready as they come and checking the rollout never breaks maxSurge 1 / maxUnavailable 0.
async fn drive_rollout(env: &Env, name: &str, image: &str, replicas: usize, next_ip: &mut u32) {
    let pods: Api<Pod> = Api::default_namespaced(env.client.clone());
    let deploys: Api<Deployment> = Api::default_namespaced(env.client.clone());
    let rss: Api<ReplicaSet> = Api::default_namespaced(env.client.clone());
    let selector = format!("app={name}");
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let all = pods_with(&pods, &selector).await;
        assert!(
            all.len() <= replicas + 1,
            "more than replicas + maxSurge pods: {}",
            all.len()
        );
        let ready = all.iter().filter(|p| is_ready(p)).count();
        let d = deploys.get(name).await.unwrap();
        let st = d.status.clone().unwrap_or_default();
        if st.available_replicas.unwrap_or(0) > 0 || ready > 0 {
            assert!(
                ready
                    >= replicas
                        .min(st.available_replicas.unwrap_or(0) as usize)
                        .min(replicas),
                "ready pods dropped"
            );
        }
        let sets = rss
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
            .items;
        let settled = st.observed_generation == d.metadata.generation
            && st.updated_replicas == Some(replicas as i32)
            && st.replicas == Some(replicas as i32)
            && st.available_replicas == Some(replicas as i32)
            && sets
                .iter()
                .filter(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0)
                .all(|rs| image_of(rs) == image)
            && all.len() == replicas;
        if settled {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rollout to {image} did not finish: {st:?}"
        );
        ready_all(&pods, &selector, next_ip).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn deployment_rolls_out_and_back() {
    let env = start().await;
    let deploys: Api<Deployment> = Api::default_namespaced(env.client.clone());
    let rss: Api<ReplicaSet> = Api::default_namespaced(env.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(env.client.clone());
    deploys
        .create(&PostParams::default(), &deployment("web", "busybox:1", 3))
        .await
        .unwrap();

    let rs = wait_for("a ReplicaSet with 3 pods", T, || async {
        let sets = rss
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items;
        let rs = sets.into_iter().next()?;
        (pods_with(&pods, "app=web").await.len() == 3).then_some(rs)
    })
    .await;
    let hash = rs
        .labels()
        .get("pod-template-hash")
        .cloned()
        .expect("hash label");
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    assert_eq!(revision(&rs), "1");
    assert_eq!(
        rs.metadata.owner_references.as_ref().unwrap()[0].controller,
        Some(true)
    );
    for p in pods_with(&pods, "app=web").await {
        assert_eq!(p.labels().get("pod-template-hash"), Some(&hash));
        assert!(p.name_any().starts_with(&format!("web-{hash}-")));
    }
    let mut ip = 0;
    drive_rollout(&env, "web", "busybox:1", 3, &mut ip).await;
    let d = deploys.get("web").await.unwrap();
    let conds = d.status.unwrap().conditions.unwrap();
    assert!(conds
        .iter()
        .any(|c| c.type_ == "Available" && c.status == "True"));
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Progressing"
                && c.reason.as_deref() == Some("NewReplicaSetAvailable"))
    );
    assert_eq!(
        d.metadata
            .annotations
            .unwrap()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );

    // A new image rolls out to a second ReplicaSet, revision 2.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    deploys
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    drive_rollout(&env, "web", "busybox:2", 3, &mut ip).await;
    let sets = rss
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(sets.len(), 2);
    let new = sets.iter().find(|rs| image_of(rs) == "busybox:2").unwrap();
    assert_eq!(revision(new), "2");

    // Rolling back (what `kubectl rollout undo` sends: the old template) reuses the old set.
    let old = sets
        .iter()
        .find(|rs| image_of(rs) == "busybox:1")
        .unwrap()
        .clone();
    let mut template = old.spec.clone().unwrap().template.unwrap();
    template
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .remove("pod-template-hash");
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"template": template}})),
        )
        .await
        .unwrap();
    drive_rollout(&env, "web", "busybox:1", 3, &mut ip).await;
    let back = rss.get(&old.name_any()).await.unwrap();
    assert_eq!(revision(&back), "3");
    assert_eq!(
        rss.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

#[tokio::test]
async fn stalled_rollout_reports_progress_deadline_exceeded() {
    let env = start().await;
    let deploys: Api<Deployment> = Api::default_namespaced(env.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(env.client.clone());
    let mut d = deployment("stuck", "busybox:1", 2);
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(2);
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let mut ip = 0;
    drive_rollout(&env, "stuck", "busybox:1", 2, &mut ip).await;
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "broken"}]}}}});
    deploys
        .patch("stuck", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    // The new pod never becomes ready: the rollout stops at one surge pod and times out.
    wait_for("ProgressDeadlineExceeded", T, || async {
        let d = deploys.get("stuck").await.ok()?;
        d.status?.conditions?.into_iter().find(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
    })
    .await;
    let all = pods_with(&pods, "app=stuck").await;
    assert_eq!(
        all.len(),
        3,
        "two old pods kept available plus one surge pod"
    );
    assert_eq!(all.iter().filter(|p| is_ready(p)).count(), 2);
}

#[tokio::test]
async fn replicaset_adopts_and_scales_down_not_ready_first() {
    let env = start().await;
    let rss: Api<ReplicaSet> = Api::default_namespaced(env.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(env.client.clone());
    let orphan: Pod = obj(
        json!({"metadata": {"name": "orphan", "labels": {"app": "rs"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
    );
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    let rs: ReplicaSet = obj(json!({
        "metadata": {"name": "rs"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "rs"}},
                 "template": {"metadata": {"labels": {"app": "rs"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }));
    rss.create(&PostParams::default(), &rs).await.unwrap();
    let all = wait_for("3 pods, the orphan adopted", T, || async {
        let all = pods_with(&pods, "app=rs").await;
        let adopted = all
            .iter()
            .any(|p| p.name_any() == "orphan" && !p.owner_references().is_empty());
        (all.len() == 3 && adopted).then_some(all)
    })
    .await;
    // Two become ready; the adopted orphan stays not ready.
    let mut n = 0;
    for p in all.iter().filter(|p| p.name_any() != "orphan") {
        n += 1;
        set_pod_state(&pods, &p.name_any(), &format!("10.1.0.{n}"), true).await;
    }
    wait_for("status 2 ready", T, || async {
        let s = rss.get("rs").await.ok()?.status?;
        (s.ready_replicas == Some(2)
            && s.available_replicas == Some(2)
            && s.replicas == 3
            && s.observed_generation == Some(1))
        .then_some(())
    })
    .await;
    rss.patch(
        "rs",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    wait_for("the not-ready pod deleted", T, || async {
        let all = pods_with(&pods, "app=rs").await;
        (all.len() == 2 && all.iter().all(is_ready)).then_some(())
    })
    .await;
    // A pod whose labels stop matching is released and replaced.
    let keep = pods_with(&pods, "app=rs").await[0].name_any();
    pods.patch(
        &keep,
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    wait_for("released and replaced", T, || async {
        let p = pods.get(&keep).await.ok()?;
        (p.owner_references().is_empty() && pods_with(&pods, "app=rs").await.len() == 2)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn endpoints_follow_readiness() {
    let env = start().await;
    let pods: Api<Pod> = Api::default_namespaced(env.client.clone());
    let svcs: Api<Service> = Api::default_namespaced(env.client.clone());
    let eps: Api<Endpoints> = Api::default_namespaced(env.client.clone());
    let slices: Api<EndpointSlice> = Api::default_namespaced(env.client.clone());
    let svc: Service = obj(
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "ep"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
    );
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    for name in ["a", "b"] {
        let p: Pod = obj(json!({"metadata": {"name": name, "labels": {"app": "ep"}},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"name": "http", "containerPort": 8080}]}]}}));
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    set_pod_state(&pods, "a", "10.2.0.1", true).await;
    set_pod_state(&pods, "b", "10.2.0.2", false).await;
    let ips = |e: &Endpoints, ready: bool| -> BTreeSet<String> {
        e.subsets
            .iter()
            .flatten()
            .flat_map(|s| {
                if ready {
                    s.addresses.clone()
                } else {
                    s.not_ready_addresses.clone()
                }
            })
            .flatten()
            .map(|a| a.ip)
            .collect()
    };
    wait_for("endpoints with a ready and b not ready", T, || async {
        let e = eps.get("web").await.ok()?;
        let ports = e.subsets.as_ref()?.first()?.ports.clone()?;
        (ips(&e, true) == BTreeSet::from(["10.2.0.1".to_string()])
            && ips(&e, false) == BTreeSet::from(["10.2.0.2".to_string()])
            && ports[0].port == 8080)
            .then_some(())
    })
    .await;
    wait_for("an EndpointSlice with both", T, || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .ok()?
            .items;
        let s = list.first()?;
        let ready: Vec<bool> = s
            .endpoints
            .iter()
            .map(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
            .collect();
        (ready == [true, false] && s.ports.as_ref()?[0].port == Some(8080)).then_some(())
    })
    .await;
    set_pod_state(&pods, "b", "10.2.0.2", true).await;
    set_pod_state(&pods, "a", "10.2.0.1", false).await;
    wait_for("readiness flipped", T, || async {
        let e = eps.get("web").await.ok()?;
        (ips(&e, true) == BTreeSet::from(["10.2.0.2".to_string()])).then_some(())
    })
    .await;
    pods.delete("b", &DeleteParams::default()).await.unwrap();
    wait_for("deleted pod gone from endpoints", T, || async {
        let e = eps.get("web").await.ok()?;
        (ips(&e, true).is_empty() && ips(&e, false) == BTreeSet::from(["10.2.0.1".to_string()]))
            .then_some(())
    })
    .await;
    svcs.delete("web", &DeleteParams::default()).await.unwrap();
    wait_for("endpoints removed with the service", T, || async {
        eps.get_opt("web").await.ok()?.is_none().then_some(())
    })
    .await;
}

async fn replicaset_with_pods(rss: &Api<ReplicaSet>, pods: &Api<Pod>, name: &str) {
    let rs: ReplicaSet = obj(json!({
        "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }));
    rss.create(&PostParams::default(), &rs).await.unwrap();
    wait_for("2 pods", T, || async {
        (pods_with(pods, &format!("app={name}")).await.len() == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn garbage_collection_background_foreground_orphan() {
    let env = start().await;
    let rss: Api<ReplicaSet> = Api::default_namespaced(env.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(env.client.clone());

    replicaset_with_pods(&rss, &pods, "bg").await;
    rss.delete("bg", &DeleteParams::background()).await.unwrap();
    wait_for("background: dependents deleted", T, || async {
        pods_with(&pods, "app=bg").await.is_empty().then_some(())
    })
    .await;

    replicaset_with_pods(&rss, &pods, "fg").await;
    rss.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let rs = rss
        .get("fg")
        .await
        .expect("foreground owner stays while dependents exist");
    assert!(rs.metadata.deletion_timestamp.is_some());
    wait_for("foreground: owner gone after dependents", T, || async {
        (rss.get_opt("fg").await.ok()?.is_none()
            && pods
                .list(&ListParams::default().labels("app=fg"))
                .await
                .ok()?
                .items
                .is_empty())
        .then_some(())
    })
    .await;

    replicaset_with_pods(&rss, &pods, "orph").await;
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    rss.delete("orph", &dp).await.unwrap();
    wait_for("orphan: owner gone", T, || async {
        rss.get_opt("orph").await.ok()?.is_none().then_some(())
    })
    .await;
    let left = pods_with(&pods, "app=orph").await;
    assert_eq!(left.len(), 2);
    assert!(
        left.iter().all(|p| p.owner_references().is_empty()),
        "{:?}",
        left.iter()
            .map(|p| (
                p.metadata.owner_references.clone(),
                p.metadata.resource_version.clone()
            ))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn namespace_deletion_empties_then_removes_it() {
    let env = start().await;
    let nss: Api<Namespace> = Api::all(env.client.clone());
    nss.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "doomed"}})),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "doomed");
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "cm"}, "data": {"a": "b"}})),
    )
    .await
    .unwrap();
    let deploys: Api<Deployment> = Api::namespaced(env.client.clone(), "doomed");
    deploys
        .create(&PostParams::default(), &deployment("app", "i", 2))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "doomed");
    wait_for("pods in the namespace", T, || async {
        (pods_with(&pods, "app=app").await.len() == 2).then_some(())
    })
    .await;
    nss.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("namespace gone", T, || async {
        nss.get_opt("doomed").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn node_ipam_assigns_distinct_cidrs() {
    let env = start().await;
    let nodes: Api<Node> = Api::all(env.client.clone());
    for i in 0..3 {
        nodes
            .create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": format!("n{i}")}})),
            )
            .await
            .unwrap();
    }
    let cidrs = wait_for("three pod CIDRs", T, || async {
        let list = nodes.list(&ListParams::default()).await.ok()?.items;
        let cidrs: Vec<String> = list
            .iter()
            .filter_map(|n| n.spec.as_ref()?.pod_cidr.clone())
            .collect();
        (cidrs.len() == 3).then_some(cidrs)
    })
    .await;
    let distinct: BTreeSet<&String> = cidrs.iter().collect();
    assert_eq!(distinct.len(), 3, "{cidrs:?}");
    for c in &cidrs {
        assert!(c.starts_with("10.244.") && c.ends_with(".0/24"), "{c}");
    }
}

#[tokio::test]
async fn job_completes_with_bounded_parallelism() {
    let env = start().await;
    let jobs: Api<Job> = Api::default_namespaced(env.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(env.client.clone());
    let job: Job = obj(json!({
        "metadata": {"name": "batch"},
        "spec": {"completions": 3, "parallelism": 2,
                 "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}
    }));
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let j = jobs.get("batch").await.unwrap();
        let st = j.status.clone().unwrap_or_default();
        if st
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Complete" && c.status == "True")
        {
            assert_eq!(st.succeeded, Some(3));
            assert!(st.completion_time.is_some());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job did not complete: {st:?}"
        );
        let all = pods
            .list(&ListParams::default().labels("job-name=batch"))
            .await
            .unwrap()
            .items;
        let running: Vec<&Pod> = all
            .iter()
            .filter(|p| {
                !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded") | Some("Failed")
                )
            })
            .collect();
        assert!(
            running.len() <= 2,
            "parallelism exceeded: {}",
            running.len()
        );
        if let Some(p) = running.first() {
            set_phase(&pods, &p.name_any(), "Succeeded").await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = pods
        .list(&ListParams::default().labels("job-name=batch"))
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 3);
}

#[tokio::test]
async fn job_fails_after_backoff_limit() {
    let env = start().await;
    let jobs: Api<Job> = Api::default_namespaced(env.client.clone());
    let pods: Api<Pod> = Api::default_namespaced(env.client.clone());
    let job: Job = obj(json!({
        "metadata": {"name": "flaky"},
        "spec": {"backoffLimit": 1,
                 "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}
    }));
    jobs.create(&PostParams::default(), &job).await.unwrap();
    wait_for("Failed BackoffLimitExceeded", T, || async {
        let st = jobs.get("flaky").await.ok()?.status?;
        if let Some(c) = st.conditions.iter().flatten().find(|c| c.type_ == "Failed") {
            return (c.reason.as_deref() == Some("BackoffLimitExceeded")).then_some(());
        }
        for p in pods
            .list(&ListParams::default().labels("job-name=flaky"))
            .await
            .ok()?
            .items
        {
            if p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Failed") {
                set_phase(&pods, &p.name_any(), "Failed").await;
            }
        }
        None
    })
    .await;
}

#[tokio::test]
async fn unreachable_nodes_are_tainted_evicted_and_recovered() {
    let env = start().await;
    let nodes: Api<Node> = Api::all(env.client.clone());
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "kube-node-lease");
    let nss: Api<Namespace> = Api::all(env.client.clone());
    let _ = nss
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "kube-node-lease"}})),
        )
        .await;
    let pods: Api<Pod> = Api::default_namespaced(env.client.clone());
    nodes
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "n1"}})),
        )
        .await
        .unwrap();
    let heartbeat = || async {
        let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}});
        nodes
            .patch_status("n1", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        let lease: Lease = obj(
            json!({"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 2, "renewTime": k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()}}),
        );
        match leases.get_opt("n1").await.unwrap() {
            None => {
                leases.create(&PostParams::default(), &lease).await.unwrap();
            }
            Some(_) => {
                leases
                    .patch("n1", &PatchParams::default(), &Patch::Merge(&lease))
                    .await
                    .unwrap();
            }
        }
    };
    heartbeat().await;
    let pod = |name: &str, secs: Option<i64>| -> Pod {
        let mut tolerations = vec![];
        if let Some(s) = secs {
            tolerations.push(json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": s}));
        }
        obj(
            json!({"metadata": {"name": name}, "spec": {"nodeName": "n1", "tolerations": tolerations, "containers": [{"name": "c", "image": "i"}]}}),
        )
    };
    pods.create(&PostParams::default(), &pod("quick", Some(0)))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("patient", Some(3600)))
        .await
        .unwrap();
    set_pod_state(&pods, "patient", "10.3.0.2", true).await;

    // Silence: the node becomes Unknown and unreachable, the quick pod is evicted.
    wait_for(
        "node Ready=Unknown with the unreachable taint",
        T,
        || async {
            let n = nodes.get("n1").await.ok()?;
            let unknown = n
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "Unknown");
            let tainted = n
                .spec
                .as_ref()?
                .taints
                .as_ref()?
                .iter()
                .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute");
            (unknown && tainted).then_some(())
        },
    )
    .await;
    wait_for("quick pod evicted", T, || async {
        pods.get("quick")
            .await
            .ok()?
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    wait_for("patient pod marked not ready", T, || async {
        (!is_ready(&pods.get("patient").await.ok()?)).then_some(())
    })
    .await;
    assert!(pods
        .get("patient")
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_none());

    // The agent comes back: the taint goes.
    heartbeat().await;
    wait_for("taint removed", T, || async {
        let n = nodes.get("n1").await.ok()?;
        let tainted = n
            .spec
            .as_ref()?
            .taints
            .iter()
            .flatten()
            .any(|t| t.key == "node.kubernetes.io/unreachable");
        (!tainted).then_some(())
    })
    .await;
}

#[tokio::test]
async fn clusterroles_labelled_aggregate_to_view_reach_view() {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let env = start().await;
    let roles: Api<ClusterRole> = Api::all(env.client.clone());
    roles
        .create(
            &PostParams::default(),
            &obj(json!({
                "metadata": {
                    "name": "widgets-view",
                    "labels": { "rbac.authorization.k8s.io/aggregate-to-view": "true" },
                },
                "rules": [{ "verbs": ["get", "list"], "apiGroups": ["example.io"], "resources": ["widgets"] }],
            })),
        )
        .await
        .unwrap();
    let holds_widgets = |role: &ClusterRole| {
        role.rules
            .iter()
            .flatten()
            .any(|r| r.resources.iter().flatten().any(|res| res == "widgets"))
    };
    for name in ["view", "edit", "admin"] {
        wait_for(&format!("{name} aggregates widgets-view"), T, || async {
            holds_widgets(&roles.get(name).await.ok()?).then_some(())
        })
        .await;
    }
    let view = roles.get("view").await.unwrap();
    assert!(
        view.rules
            .iter()
            .flatten()
            .any(|r| r.resources.iter().flatten().any(|x| x == "pods")),
        "view keeps the rules of system:aggregate-to-view"
    );
    roles
        .delete("widgets-view", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("view drops widgets-view's rules", T, || async {
        (!holds_widgets(&roles.get("view").await.ok()?)).then_some(())
    })
    .await;
}
