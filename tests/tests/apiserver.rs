//! The apiserver against a real etcd, driven by the kube-rs client every skiff component uses.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::core::GroupVersionKind;
use serde_json::{json, Value};
use skiff_testkit::{wait_for, TestCluster};

fn dynamic(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("test object is valid")
}

fn deployment(name: &str, image: &str) -> Deployment {
    from_json(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": image}]}}
        }
    }))
}

/// One valid object of every served kind, for the create/get/list/update/patch/delete round.
fn samples() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    Value,
)> {
    let pod_spec = json!({"containers": [{"name": "c", "image": "busybox:1.36"}]});
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": pod_spec});
    vec![
        (
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            json!({"metadata": {"name": "sample"}}),
        ),
        (
            "",
            "v1",
            "Pod",
            "pods",
            true,
            json!({"metadata": {"name": "sample"}, "spec": pod_spec}),
        ),
        (
            "",
            "v1",
            "Node",
            "nodes",
            false,
            json!({"metadata": {"name": "sample"}}),
        ),
        (
            "",
            "v1",
            "Service",
            "services",
            true,
            json!({"metadata": {"name": "sample"}, "spec": {"ports": [{"port": 80}]}}),
        ),
        (
            "",
            "v1",
            "Endpoints",
            "endpoints",
            true,
            json!({"metadata": {"name": "sample"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
        ),
        (
            "",
            "v1",
            "Event",
            "events",
            true,
            json!({"metadata": {"name": "sample"}, "involvedObject": {"kind": "Pod", "name": "x"}, "reason": "Tested", "message": "hello"}),
        ),
        (
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            json!({"metadata": {"name": "sample"}, "data": {"k": "v"}}),
        ),
        (
            "",
            "v1",
            "Secret",
            "secrets",
            true,
            json!({"metadata": {"name": "sample"}, "stringData": {"k": "v"}}),
        ),
        (
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            json!({"metadata": {"name": "sample"}, "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template}}),
        ),
        (
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            true,
            json!({"metadata": {"name": "sample"}, "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template}}),
        ),
        (
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            true,
            json!({"metadata": {"name": "sample"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]}),
        ),
        (
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            json!({"metadata": {"name": "sample"}, "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}}),
        ),
        (
            "batch",
            "v1",
            "Job",
            "jobs",
            true,
            json!({"metadata": {"name": "sample"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}),
        ),
    ]
}

#[tokio::test]
async fn every_kind_supports_every_verb() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    for (group, version, kind, plural, namespaced, body) in samples() {
        let api = dynamic(
            &client,
            group,
            version,
            kind,
            plural,
            namespaced.then_some("default"),
        );
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let mut obj = body.clone();
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(kind);
        let obj: DynamicObject = from_json(obj);

        let created = api
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create {kind}: {e}"));
        assert!(created.metadata.uid.is_some(), "{kind} got a uid");
        let rv: i64 = created
            .metadata
            .resource_version
            .clone()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rv > 0);

        let got = api
            .get("sample")
            .await
            .unwrap_or_else(|e| panic!("get {kind}: {e}"));
        assert_eq!(got.metadata.uid, created.metadata.uid);

        let listed = api
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("list {kind}: {e}"));
        assert!(
            listed
                .items
                .iter()
                .any(|o| o.metadata.name.as_deref() == Some("sample")),
            "{kind} listed"
        );

        let mut changed = got.clone();
        changed.metadata.labels = Some(BTreeMap::from([("tier".to_string(), "one".to_string())]));
        let updated = api
            .replace("sample", &PostParams::default(), &changed)
            .await
            .unwrap_or_else(|e| panic!("update {kind}: {e}"));
        assert_eq!(updated.metadata.labels.as_ref().unwrap()["tier"], "one");
        assert_ne!(
            updated.metadata.resource_version,
            got.metadata.resource_version
        );

        let merged = api
            .patch(
                "sample",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"a": "1"}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("merge patch {kind}: {e}"));
        assert_eq!(merged.metadata.annotations.as_ref().unwrap()["a"], "1");

        let ops: json_patch::Patch =
            from_json(json!([{"op": "add", "path": "/metadata/labels/tier", "value": "two"}]));
        let patched = api
            .patch("sample", &PatchParams::default(), &Patch::Json::<()>(ops))
            .await
            .unwrap_or_else(|e| panic!("json patch {kind}: {e}"));
        assert_eq!(patched.metadata.labels.as_ref().unwrap()["tier"], "two");

        if kind == "Namespace" {
            // Namespaces are finalized by the namespace controller; here we only see them marked.
            api.delete("sample", &DeleteParams::default())
                .await
                .unwrap();
            let ns = api.get("sample").await.unwrap();
            assert!(ns.metadata.deletion_timestamp.is_some());
            continue;
        }
        api.delete("sample", &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete {kind}: {e}"));
        if kind == "Pod" {
            // Not on a node, so nobody has to stop it: gone at once.
            assert!(api.get_opt("sample").await.unwrap().is_none());
        }
        let gone = api.get_opt("sample").await.unwrap();
        assert!(gone.is_none(), "{kind} deleted");
    }
    cluster.stop().await;
}

#[tokio::test]
async fn label_and_field_selectors_and_pagination() {
    let cluster = TestCluster::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    for i in 0..25 {
        let tier = ["web", "db", "cache"][i % 3];
        let mut labels = BTreeMap::from([("tier".to_string(), tier.to_string())]);
        if i % 2 == 0 {
            labels.insert("even".into(), "yes".into());
        }
        let cm: ConfigMap =
            from_json(json!({"metadata": {"name": format!("cm-{i:02}"), "labels": labels}}));
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let count = |sel: &'static str| {
        let cms = cms.clone();
        async move {
            cms.list(&ListParams::default().labels(sel))
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(count("tier=web").await, 9);
    assert_eq!(count("tier==db").await, 8);
    assert_eq!(count("tier!=web").await, 16);
    assert_eq!(count("tier in (web,db)").await, 17);
    assert_eq!(count("tier notin (web,db)").await, 8);
    assert_eq!(count("even").await, 13);
    assert_eq!(count("!even").await, 12);
    assert_eq!(count("even,tier=cache").await, 4);

    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=cm-07"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    let not_name = cms
        .list(&ListParams::default().fields("metadata.name!=cm-07"))
        .await
        .unwrap();
    assert_eq!(not_name.items.len(), 24);
    let bad = cms
        .list(&ListParams::default().fields("spec.nodeName=x"))
        .await
        .unwrap_err();
    assert!(
        matches!(bad, kube::Error::Api(ref s) if s.code == 400),
        "{bad:?}"
    );

    // Pages of 10 at one revision: every object exactly once, even with writes in between.
    let first = cms.list(&ListParams::default().limit(10)).await.unwrap();
    assert_eq!(first.items.len(), 10);
    let token = first.metadata.continue_.clone().expect("more pages");
    assert_eq!(first.metadata.remaining_item_count, Some(15));
    let extra: ConfigMap = from_json(json!({"metadata": {"name": "cm-99"}}));
    cms.create(&PostParams::default(), &extra).await.unwrap();
    let second = cms
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .unwrap();
    let third = cms
        .list(
            &ListParams::default()
                .limit(10)
                .continue_token(second.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert!(third.metadata.continue_.is_none());
    let names: Vec<String> = [first, second, third]
        .into_iter()
        .flat_map(|l| l.items)
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(
        names.len(),
        25,
        "the page snapshot excludes the later create"
    );
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), 25);

    // Filtered pages fill up with matching items.
    let webs = cms
        .list(&ListParams::default().labels("tier=web").limit(4))
        .await
        .unwrap();
    assert_eq!(webs.items.len(), 4);
    cluster.stop().await;
}

#[tokio::test]
async fn watch_from_a_resource_version_sees_every_later_change_once_in_order() {
    let cluster = TestCluster::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let base: ConfigMap = from_json(json!({"metadata": {"name": "before"}}));
    let start = cms
        .create(&PostParams::default(), &base)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    let mut expected = Vec::new();
    for i in 0..10 {
        let cm: ConfigMap =
            from_json(json!({"metadata": {"name": format!("w{i}")}, "data": {"v": "0"}}));
        cms.create(&PostParams::default(), &cm).await.unwrap();
        expected.push(("ADDED", format!("w{i}")));
    }
    for i in 0..5 {
        cms.patch(
            &format!("w{i}"),
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "1"}})),
        )
        .await
        .unwrap();
        expected.push(("MODIFIED", format!("w{i}")));
    }
    for i in 5..8 {
        cms.delete(&format!("w{i}"), &DeleteParams::default())
            .await
            .unwrap();
        expected.push(("DELETED", format!("w{i}")));
    }

    let stream = cms
        .watch(&WatchParams::default().timeout(5), &start)
        .await
        .unwrap();
    let events: Vec<WatchEvent<ConfigMap>> =
        stream.take(expected.len()).try_collect().await.unwrap();
    let mut last_rv = start.parse::<i64>().unwrap();
    let seen: Vec<(&str, String)> = events
        .into_iter()
        .map(|e| {
            let (ty, cm) = match e {
                WatchEvent::Added(c) => ("ADDED", c),
                WatchEvent::Modified(c) => ("MODIFIED", c),
                WatchEvent::Deleted(c) => ("DELETED", c),
                other => panic!("unexpected event {other:?}"),
            };
            let rv: i64 = cm
                .metadata
                .resource_version
                .clone()
                .unwrap()
                .parse()
                .unwrap();
            assert!(rv > last_rv, "resourceVersions increase");
            last_rv = rv;
            (ty, cm.metadata.name.unwrap())
        })
        .collect();
    assert_eq!(seen, expected);

    // A watch started now sees a change made after it started.
    let mut live = cms
        .watch(&WatchParams::default().timeout(10), &last_rv.to_string())
        .await
        .unwrap()
        .boxed();
    cms.patch(
        "w9",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    match live.next().await.unwrap().unwrap() {
        WatchEvent::Modified(cm) => assert_eq!(cm.data.unwrap()["v"], "2"),
        other => panic!("unexpected {other:?}"),
    }
    cluster.stop().await;
}

#[tokio::test]
async fn label_selected_watch_reports_objects_leaving_the_selection_as_deleted() {
    let cluster = TestCluster::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let cm: ConfigMap = from_json(json!({"metadata": {"name": "sel", "labels": {"app": "web"}}}));
    let rv = cms
        .create(&PostParams::default(), &cm)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().labels("app=web").timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    cms.patch(
        "sel",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await
    .unwrap();
    assert!(matches!(
        stream.next().await.unwrap().unwrap(),
        WatchEvent::Deleted(_)
    ));
    cms.patch(
        "sel",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    assert!(matches!(
        stream.next().await.unwrap().unwrap(),
        WatchEvent::Added(_)
    ));
    cluster.stop().await;
}

#[tokio::test]
async fn stale_update_is_a_conflict_and_duplicate_create_already_exists() {
    let cluster = TestCluster::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let cm: ConfigMap = from_json(json!({"metadata": {"name": "cas"}, "data": {"v": "1"}}));
    let first = cms.create(&PostParams::default(), &cm).await.unwrap();
    let dup = cms.create(&PostParams::default(), &cm).await.unwrap_err();
    assert!(
        matches!(dup, kube::Error::Api(ref s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{dup:?}"
    );

    let mut a = first.clone();
    a.data = Some(BTreeMap::from([("v".into(), "2".into())]));
    cms.replace("cas", &PostParams::default(), &a)
        .await
        .unwrap();
    let mut stale = first.clone();
    stale.data = Some(BTreeMap::from([("v".into(), "3".into())]));
    let err = cms
        .replace("cas", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(
                s.message.contains("the object has been modified"),
                "{}",
                s.message
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        cms.get("cas").await.unwrap().data.unwrap()["v"],
        "2",
        "the stale write was not applied"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn compaction_and_a_small_watch_window_give_410_gone() {
    let cluster = TestCluster::start_with(|c| c.watch_cache_size = 5)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let mut first_rv = String::new();
    for i in 0..20 {
        let cm: ConfigMap = from_json(json!({"metadata": {"name": format!("c{i:02}")}}));
        let created = cms.create(&PostParams::default(), &cm).await.unwrap();
        if i == 0 {
            first_rv = created.metadata.resource_version.unwrap();
        }
    }
    // The window holds 5 events; resuming from the first create is too old.
    let mut stream = cms
        .watch(&WatchParams::default().timeout(5), &first_rv)
        .await
        .unwrap()
        .boxed();
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }

    // A paginated list pins a revision; once etcd compacts past it, continuing is 410 Gone.
    let page = cms.list(&ListParams::default().limit(5)).await.unwrap();
    let token = page.metadata.continue_.unwrap();
    let cm: ConfigMap = from_json(json!({"metadata": {"name": "after"}}));
    let rv: i64 = cms
        .create(&PostParams::default(), &cm)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
        .parse()
        .unwrap();
    cluster
        .etcd
        .client()
        .await
        .unwrap()
        .compact(rv, None)
        .await
        .unwrap();
    let err = cms
        .list(&ListParams::default().limit(5).continue_token(&token))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 410 && s.reason == "Expired"),
        "{err:?}"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let cluster = TestCluster::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let cm: ConfigMap =
        from_json(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}));
    let rv = cms
        .create(&PostParams::default(), &cm)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();

    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = cms.get("held").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(matches!(
        events.next().await.unwrap().unwrap(),
        WatchEvent::Modified(_)
    ));

    // Adding a finalizer to an object being deleted is forbidden.
    let err = cms
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold", "x.io/y"]}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err:?}"
    );

    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("held").await.unwrap().is_none());
    assert!(matches!(
        events.next().await.unwrap().unwrap(),
        WatchEvent::Deleted(_)
    ));

    // Foreground and orphan propagation are recorded as finalizers for the garbage collector.
    let d = deployment("fg", "busybox:1");
    let deps: Api<Deployment> = Api::namespaced(cluster.client(), "default");
    deps.create(&PostParams::default(), &d).await.unwrap();
    deps.delete("fg", &DeleteParams::foreground())
        .await
        .unwrap();
    let fg = deps.get("fg").await.unwrap();
    assert_eq!(
        fg.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    cluster.stop().await;
}

#[tokio::test]
async fn generation_moves_with_spec_changes_only() {
    let cluster = TestCluster::start().await.unwrap();
    let deps: Api<Deployment> = Api::namespaced(cluster.client(), "default");
    let created = deps
        .create(&PostParams::default(), &deployment("gen", "busybox:1"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    // Defaults were applied.
    let spec = created.spec.clone().unwrap();
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(
        spec.template
            .spec
            .as_ref()
            .unwrap()
            .restart_policy
            .as_deref(),
        Some("Always")
    );

    let labelled = deps
        .patch(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );

    let status = deps
        .patch_status(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 2, "observedGeneration": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(
        status.metadata.generation,
        Some(1),
        "status changes keep the generation"
    );
    assert_eq!(status.status.unwrap().replicas, Some(2));

    let scaled = deps
        .patch(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}, "status": {"replicas": 99}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    assert_eq!(
        scaled.status.unwrap().replicas,
        Some(2),
        "the main resource cannot write status"
    );

    let scale = deps.get_scale("gen").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(5));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=gen"));
    deps.patch_scale(
        "gen",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    let after = deps.get("gen").await.unwrap();
    assert_eq!(after.spec.unwrap().replicas, Some(1));
    assert_eq!(after.metadata.generation, Some(3));
    cluster.stop().await;
}

#[tokio::test]
async fn namespaces_must_exist_and_not_be_terminating() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    let cm: ConfigMap = from_json(json!({"metadata": {"name": "x"}}));
    let err = missing
        .create(&PostParams::default(), &cm)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404 && s.message.contains("namespaces \"nowhere\" not found")),
        "{err:?}"
    );

    let nss: Api<Namespace> = Api::all(client.clone());
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            nss.get_opt(ns).await.unwrap().is_some(),
            "{ns} exists from the start"
        );
    }
    let ns: Namespace = from_json(json!({"metadata": {"name": "dev"}}));
    let created = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let dev: Api<ConfigMap> = Api::namespaced(client.clone(), "dev");
    dev.create(&PostParams::default(), &cm).await.unwrap();

    nss.delete("dev", &DeleteParams::default()).await.unwrap();
    let terminating = nss.get("dev").await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let cm2: ConfigMap = from_json(json!({"metadata": {"name": "y"}}));
    let err = dev.create(&PostParams::default(), &cm2).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403 && s.message.contains("being terminated")),
        "{err:?}"
    );

    let err = nss
        .delete("default", &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err:?}"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn concurrent_service_creates_get_unique_cluster_ips_and_node_ports() {
    let cluster = TestCluster::start().await.unwrap();
    let svcs: Api<Service> = Api::namespaced(cluster.client(), "default");
    let creates = (0..50).map(|i| {
        let svcs = svcs.clone();
        async move {
            let svc: Service = from_json(json!({"metadata": {"name": format!("s{i}")},
                "spec": {"type": "NodePort", "ports": [{"port": 80}]}}));
            svcs.create(&PostParams::default(), &svc).await.unwrap()
        }
    });
    let created = futures::future::join_all(creates).await;
    let ips: HashSet<String> = created
        .iter()
        .map(|s| s.spec.clone().unwrap().cluster_ip.unwrap())
        .collect();
    let ports: HashSet<i32> = created
        .iter()
        .map(|s| s.spec.clone().unwrap().ports.unwrap()[0].node_port.unwrap())
        .collect();
    assert_eq!(ips.len(), 50, "every service got its own ClusterIP");
    assert_eq!(ports.len(), 50, "every service got its own NodePort");
    for ip in &ips {
        let ip: std::net::Ipv4Addr = ip.parse().unwrap();
        assert!("10.96.0.0/12"
            .parse::<ipnet::Ipv4Net>()
            .unwrap()
            .contains(&ip));
    }

    // Asking for a taken IP is the user's error; deleting frees it for reuse.
    let taken = created[0].spec.clone().unwrap().cluster_ip.unwrap();
    let again: Service = from_json(
        json!({"metadata": {"name": "again"}, "spec": {"clusterIP": taken, "ports": [{"port": 80}]}}),
    );
    let err = svcs
        .create(&PostParams::default(), &again)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err:?}"
    );
    svcs.delete("s0", &DeleteParams::default()).await.unwrap();
    let reused = svcs.create(&PostParams::default(), &again).await.unwrap();
    assert_eq!(reused.spec.unwrap().cluster_ip.unwrap(), taken);
    cluster.stop().await;
}

#[tokio::test]
async fn pods_bind_once_and_delete_gracefully_on_a_node() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = from_json(
        json!({"metadata": {"generateName": "p-"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    );
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(name.starts_with("p-") && name.len() == 7, "{name}");
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(
        created.spec.unwrap().containers[0]
            .image_pull_policy
            .as_deref(),
        Some("Always")
    );

    let bind = |node: &str| {
        let client = client.clone();
        let (name, node) = (name.clone(), node.to_string());
        async move {
            let req =
                http::Request::post(format!("/api/v1/namespaces/default/pods/{name}/binding"))
                    .header("content-type", "application/json")
                    .body(
                        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": name}, "target": {"kind": "Node", "name": node}}))
                        .unwrap(),
                    )
                    .unwrap();
            client.request::<Value>(req).await
        }
    };
    bind("node-a").await.unwrap();
    let err = bind("node-b").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.message.contains("already assigned")),
        "{err:?}"
    );
    let bound = pods.get(&name).await.unwrap();
    assert_eq!(
        bound.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-a")
    );
    let conditions = bound.status.unwrap().conditions.unwrap();
    assert!(conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.status == "True"));

    // On a node, a delete only marks the pod: its agent stops it and then removes it.
    pods.delete(&name, &DeleteParams::default()).await.unwrap();
    let marked = pods.get(&name).await.unwrap();
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    pods.delete(&name, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_for("the pod to be removed", Duration::from_secs(5), || {
        let pods = pods.clone();
        let name = name.clone();
        async move { pods.get_opt(&name).await.unwrap().is_none().then_some(()) }
    })
    .await;
    cluster.stop().await;
}

#[tokio::test]
async fn rejected_writes_are_status_errors_and_write_nothing() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let before = deps
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    let mut bad = deployment("Bad_Name", "busybox");
    let err = deps.create(&PostParams::default(), &bad).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            assert!(s.message.contains("metadata.name"), "{}", s.message);
        }
        other => panic!("{other:?}"),
    }
    bad.metadata.name = Some("ok".into());
    bad.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = None;
    let err = deps.create(&PostParams::default(), &bad).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422 && s.message.contains("spec.template.spec.containers[0].image: Required value")),
        "{err:?}"
    );

    // Malformed JSON is a 400, an unknown content type a 415, and an oversize body a 413.
    for (content_type, body, code) in [
        ("application/json", b"{not json".to_vec(), 400u16),
        ("text/plain", b"{}".to_vec(), 415),
        ("application/json", vec![b' '; 4 * 1024 * 1024], 413),
    ] {
        let req = http::Request::post("/apis/apps/v1/namespaces/default/deployments")
            .header("content-type", content_type)
            .body(body)
            .unwrap();
        let err = client.request::<Value>(req).await.unwrap_err();
        assert!(
            matches!(err, kube::Error::Api(ref s) if s.code == code),
            "{content_type}: {err:?}"
        );
    }
    let after = deps.list(&ListParams::default()).await.unwrap();
    assert!(after.items.is_empty());
    assert_eq!(
        after.metadata.resource_version.unwrap(),
        before,
        "nothing was written"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn deletecollection_preconditions_and_yaml_bodies() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for (name, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let cm: ConfigMap = from_json(json!({"metadata": {"name": name, "labels": {"app": app}}}));
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=x"),
    )
    .await
    .unwrap();
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["c"]);

    // A delete whose uid precondition does not match is refused and deletes nothing.
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let err = cms.delete("c", &dp).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.message.contains("Precondition failed")),
        "{err:?}"
    );
    assert!(cms.get_opt("c").await.unwrap().is_some());

    // YAML bodies are accepted; malformed YAML is a 400 naming the problem.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n";
    let req = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/yaml")
        .body(yaml.as_bytes().to_vec())
        .unwrap();
    let created: Value = client.request(req).await.unwrap();
    assert_eq!(created["data"]["k"], "v");
    let req = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/yaml")
        .body(b"metadata: [unclosed".to_vec())
        .unwrap();
    let err = client.request::<Value>(req).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 400 && s.message.contains("YAML")),
        "{err:?}"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn watches_send_bookmarks_and_end_at_their_timeout() {
    let cluster = TestCluster::start_with(|c| c.bookmark_interval = Duration::from_millis(200))
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let list = cms.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let started = std::time::Instant::now();
    let events: Vec<WatchEvent<ConfigMap>> = cms
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the stream lasted its timeoutSeconds"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "and then ended"
    );
    let bookmarks: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Bookmark(b) => Some(b.metadata.resource_version.clone()),
            _ => None,
        })
        .collect();
    assert!(bookmarks.len() >= 2, "got {events:?}");
    assert!(
        bookmarks.iter().all(|b| b == &rv),
        "bookmarks carry the current resourceVersion"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn a_stalled_watcher_does_not_hold_up_the_others() {
    let cluster = TestCluster::start_with(|c| c.watch_cache_size = 100)
        .await
        .unwrap();
    let client = cluster.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    // This watcher is opened and never read.
    let stalled = cms
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .unwrap();
    let reader = cms
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .unwrap();
    const N: usize = 1500;
    let writer = {
        let cms = cms.clone();
        tokio::spawn(async move {
            for chunk in (0..N).collect::<Vec<_>>().chunks(50) {
                let creates = chunk.iter().map(|i| {
                    let cms = cms.clone();
                    async move {
                        let cm: ConfigMap =
                            from_json(json!({"metadata": {"name": format!("n{i:04}")}}));
                        cms.create(&PostParams::default(), &cm).await.unwrap();
                    }
                });
                futures::future::join_all(creates).await;
            }
        })
    };
    let received = tokio::time::timeout(
        Duration::from_secs(60),
        reader.take(N).try_collect::<Vec<_>>(),
    )
    .await
    .expect("the reading watcher kept up")
    .unwrap();
    assert_eq!(received.len(), N);
    writer.await.unwrap();
    drop(stalled);
    cluster.stop().await;
}

#[tokio::test]
async fn strict_field_validation_rejects_unknown_and_duplicate_fields_before_writing() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let send = |method: &str, path: &str, body: &str| {
        let client = client.clone();
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap();
        async move { client.request::<Value>(req).await }
    };
    let base = "/api/v1/namespaces/default/configmaps";
    let dup = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"},"data":{"a":"1","a":"2"}}"#;
    let err = send("POST", &format!("{base}?fieldValidation=Strict"), dup)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 400 && s.message.contains("duplicate field \"data.a\"")),
        "{err:?}"
    );
    assert!(cms.get_opt("d").await.unwrap().is_none());

    // Ignore keeps the last value, as a plain decode does.
    send("POST", &format!("{base}?fieldValidation=Ignore"), dup)
        .await
        .unwrap();
    assert_eq!(cms.get("d").await.unwrap().data.unwrap()["a"], "2");

    let unknown = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"},"data":{"a":"3"},"extra":true}"#;
    let err = send("PUT", &format!("{base}/d?fieldValidation=Strict"), unknown)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 400 && s.message.contains("unknown field \"extra\"")),
        "{err:?}"
    );
    assert_eq!(
        cms.get("d").await.unwrap().data.unwrap()["a"],
        "2",
        "the rejected update wrote nothing"
    );
    cluster.stop().await;
}

/// A list is consistent: it includes every write acknowledged before it, both when its own
/// resource just changed and when only other resources did (the watch cache then learns from an
/// etcd progress notification that nothing of its own is pending, rather than timing out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_see_every_acknowledged_write_including_on_quiet_resources() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), "default");
    let services = Api::<Service>::namespaced(client.clone(), "default");
    for round in 0..20 {
        let cm: ConfigMap = from_json(json!({"metadata": {"name": format!("cm-{round}")}}));
        config_maps
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
        // Just written: the list must hold it.
        let names: HashSet<String> = config_maps
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        assert!(
            names.contains(&format!("cm-{round}")),
            "round {round}: {names:?}"
        );
        // Quiet since the bootstrap: the list answers (no 504) with what is there.
        let svcs = services.list(&ListParams::default()).await.unwrap();
        assert!(
            svcs.items
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some("kubernetes")),
            "round {round}"
        );
    }
}
