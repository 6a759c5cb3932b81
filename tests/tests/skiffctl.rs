//! skiffctl against a real TestCluster, compared with the real kubectl where outputs overlap.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use skiff_testkit::{kubectl_binaries, repo_root, TestCluster};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn skiffctl(cluster: &TestCluster, args: &[&str]) -> Out {
    let kubeconfig = cluster.kubeconfig_path();
    let mut all = vec![
        "skiffctl".to_string(),
        "--kubeconfig".to_string(),
        kubeconfig.display().to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    run_raw(all).await
}

async fn run_raw(args: Vec<String>) -> Out {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = skiffctl::run(args, &mut out, &mut err).await;
    Out {
        code,
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(err).unwrap(),
    }
}

fn ok(o: Out) -> Out {
    assert_eq!(
        o.code, 0,
        "skiffctl failed\nstdout:\n{}\nstderr:\n{}",
        o.stdout, o.stderr
    );
    o
}

/// Replaces age-like tokens (`5s`, `3m2s`, `2d4h`) by `#`s of the same length.
fn mask_ages(text: &str) -> String {
    text.split_inclusive(' ')
        .map(|tok| {
            let word = tok.trim_end();
            let is_age = !word.is_empty()
                && word.chars().next().unwrap().is_ascii_digit()
                && word.chars().last().is_some_and(|c| "smhdy".contains(c))
                && word
                    .chars()
                    .all(|c| c.is_ascii_digit() || "smhdy".contains(c));
            if is_age {
                format!("{}{}", "#".repeat(word.len()), &tok[word.len()..])
            } else {
                tok.to_string()
            }
        })
        .collect()
}

#[tokio::test]
async fn tables_match_kubectl() {
    let cluster = TestCluster::start().await.unwrap();
    let demo = repo_root().join("manifests/demo.yaml");
    ok(skiffctl(&cluster, &["apply", "-f", demo.to_str().unwrap()]).await);
    let cm = cluster.dir().join("cm.yaml");
    std::fs::write(&cm, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  labels: {tier: a}\ndata: {a: b}\n").unwrap();
    ok(skiffctl(&cluster, &["apply", "-f", cm.to_str().unwrap()]).await);
    let kubectl = kubectl_binaries()
        .into_iter()
        .next()
        .expect("kubectl is installed");
    let cases: &[&[&str]] = &[
        &["get", "deployments"],
        &["get", "deploy", "-o", "wide"],
        &["get", "svc", "-A"],
        &["get", "deploy,svc,cm"],
        &["get", "cm", "--show-labels"],
        &["get", "ns"],
        &["get", "deploy", "web"],
        &["get", "cm", "-l", "tier=a"],
    ];
    for args in cases {
        let mut last = (String::new(), String::new());
        let mut matched = false;
        // Ages can tick between the two runs; retry a few times before failing.
        for _ in 0..5 {
            let theirs = cluster.kubectl(&kubectl, args).await.ok();
            let ours = ok(skiffctl(&cluster, args).await);
            last = (mask_ages(&theirs.stdout), mask_ages(&ours.stdout));
            if last.0 == last.1 {
                matched = true;
                break;
            }
        }
        assert!(
            matched,
            "{args:?}\nkubectl:\n{}\nskiffctl:\n{}",
            last.0, last.1
        );
    }
    // Empty results go to stderr like kubectl's.
    let theirs = cluster.kubectl(&kubectl, &["get", "pods"]).await.ok();
    let ours = ok(skiffctl(&cluster, &["get", "pods"]).await);
    assert_eq!(ours.stderr, theirs.stderr);
    assert_eq!(ours.stdout, "");
    cluster.stop().await;
}

#[tokio::test]
async fn apply_like_kubectl_and_machine_formats() {
    let cluster = TestCluster::start().await.unwrap();
    let kubectl = kubectl_binaries()
        .into_iter()
        .next()
        .expect("kubectl is installed");
    let demo = repo_root().join("manifests/demo.yaml");
    let demo = demo.to_str().unwrap();

    // kubectl's last-applied annotation, for comparison with ours.
    cluster.kubectl(&kubectl, &["apply", "-f", demo]).await.ok();
    let deps: Api<Deployment> = Api::namespaced(cluster.client(), "default");
    let annotation = |d: &Deployment| {
        d.metadata.annotations.as_ref().unwrap()["kubectl.kubernetes.io/last-applied-configuration"]
            .clone()
    };
    let kubectl_annotation = annotation(&deps.get("web").await.unwrap());
    cluster
        .kubectl(&kubectl, &["delete", "-f", demo])
        .await
        .ok();

    let out = ok(skiffctl(&cluster, &["apply", "-f", demo]).await);
    assert_eq!(
        out.stdout,
        "deployment.apps/web created\nservice/web created\n"
    );
    assert_eq!(
        annotation(&deps.get("web").await.unwrap()),
        kubectl_annotation
    );
    let out = ok(skiffctl(&cluster, &["apply", "-f", demo]).await);
    assert_eq!(
        out.stdout,
        "deployment.apps/web unchanged\nservice/web unchanged\n"
    );

    let edited = std::fs::read_to_string(demo)
        .unwrap()
        .replace("replicas: 3", "replicas: 4");
    let dir = cluster.dir().join("manifests");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/demo.yaml"), edited).unwrap();
    let out = ok(skiffctl(&cluster, &["apply", "-R", "-f", dir.to_str().unwrap()]).await);
    assert_eq!(
        out.stdout,
        "deployment.apps/web configured\nservice/web unchanged\n"
    );
    assert_eq!(
        deps.get("web").await.unwrap().spec.unwrap().replicas,
        Some(4)
    );
    // kubectl agrees nothing is left to change.
    let theirs = cluster
        .kubectl(
            &kubectl,
            &["apply", "-f", dir.join("sub/demo.yaml").to_str().unwrap()],
        )
        .await
        .ok();
    assert!(
        theirs.stdout.contains("deployment.apps/web unchanged"),
        "{}",
        theirs.stdout
    );

    // Machine formats are kubectl's byte for byte.
    for args in [
        &["get", "deploy", "web", "-o", "json"][..],
        &["get", "svc", "-o", "name"],
        &["get", "deploy,svc", "-o", "name"],
        &["get", "deploy", "-o", "jsonpath={.items[*].metadata.name}"],
        &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
    ] {
        let theirs = cluster.kubectl(&kubectl, args).await.ok();
        let ours = ok(skiffctl(&cluster, args).await);
        assert_eq!(ours.stdout, theirs.stdout, "{args:?}");
    }
    let ours = ok(skiffctl(&cluster, &["get", "deploy", "web", "-o", "yaml"]).await);
    let yaml: serde_json::Value = skiff_common::yaml::from_str(&ours.stdout).unwrap();
    assert_eq!(yaml["spec"]["replicas"], 4);

    // scale, label.
    let out = ok(skiffctl(&cluster, &["scale", "deploy/web", "--replicas=2"]).await);
    assert_eq!(out.stdout, "deployment.apps/web scaled\n");
    assert_eq!(
        deps.get("web").await.unwrap().spec.unwrap().replicas,
        Some(2)
    );
    let out = ok(skiffctl(&cluster, &["label", "deploy", "web", "tier=front"]).await);
    assert_eq!(out.stdout, "deployment.apps/web labeled\n");
    let out = skiffctl(&cluster, &["label", "deploy", "web", "tier=back"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("'tier' already has a value (front), and --overwrite is false"),
        "{}",
        out.stderr
    );
    ok(skiffctl(
        &cluster,
        &["label", "deploy", "web", "tier=back", "--overwrite"],
    )
    .await);
    let labels = deps.get("web").await.unwrap().metadata.labels.unwrap();
    assert_eq!(labels["tier"], "back");
    ok(skiffctl(&cluster, &["annotate", "deploy", "web", "note=hi"]).await);

    // delete waits until the objects are gone.
    let out = ok(skiffctl(&cluster, &["delete", "-f", demo]).await);
    assert!(
        out.stdout
            .contains("deployment.apps \"web\" deleted\nservice \"web\" deleted\n"),
        "{}",
        out.stdout
    );
    assert!(deps.get_opt("web").await.unwrap().is_none());
    let out = skiffctl(&cluster, &["delete", "deploy", "web"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("Error from server (NotFound): deployments.apps \"web\" not found"),
        "{}",
        out.stderr
    );
    cluster.stop().await;
}

#[tokio::test]
async fn errors_say_what_happened_and_what_to_do() {
    let cluster = TestCluster::start().await.unwrap();
    let bad = cluster.dir().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n   oops: x\n",
    )
    .unwrap();
    let out = skiffctl(&cluster, &["apply", "-f", bad.to_str().unwrap()]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("bad.yaml: document 2 is not valid YAML (line 9"),
        "{}",
        out.stderr
    );

    let invalid = cluster.dir().join("invalid.yaml");
    std::fs::write(
        &invalid,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: broken}\nspec:\n  replicas: -1\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: y}}\n    spec: {containers: [{name: c, image: i}]}\n",
    )
    .unwrap();
    let out = skiffctl(&cluster, &["apply", "-f", invalid.to_str().unwrap()]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("The Deployment \"broken\" is invalid:\n* "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("* spec.replicas: "), "{}", out.stderr);

    let out = skiffctl(&cluster, &["get", "widgets"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("doesn't have a resource type \"widgets\""),
        "{}",
        out.stderr
    );

    let port = skiff_testkit::free_port();
    let out = skiffctl(
        &cluster,
        &[
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "get",
            "pods",
        ],
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(&format!(
            "The connection to the server 127.0.0.1:{port} was refused"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("make up"), "{}", out.stderr);

    let out = run_raw(vec!["skiffctl".into(), "frobnicate".into()]).await;
    assert_eq!(out.code, 2);
    cluster.stop().await;
}

/// Marks every pod Running and Ready, standing in for an agent.
async fn ready_every_pod(client: kube::Client) {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Patch, PatchParams};
    use kube::runtime::{watcher, WatchStreamExt};
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let stream = watcher(pods.clone(), watcher::Config::default()).applied_objects();
    futures::pin_mut!(stream);
    while let Some(Ok(pod)) = stream.next().await {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !ready && pod.metadata.deletion_timestamp.is_none() {
            let now = time_now();
            let patch = serde_json::json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
            let name = pod.metadata.name.clone().unwrap();
            let _ = pods
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
        }
    }
}

fn time_now() -> String {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now())
        .0
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_history_and_undo() {
    let cluster = TestCluster::start().await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controllers = tokio::spawn(skiff_controllers::run(
        cluster.client(),
        skiff_controllers::Config {
            root_ca: cluster.ca_pem(),
            ..Default::default()
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let readier = tokio::spawn(ready_every_pod(cluster.client()));
    let demo = repo_root().join("manifests/demo.yaml");
    ok(skiffctl(&cluster, &["apply", "-f", demo.to_str().unwrap()]).await);
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        skiffctl(&cluster, &["rollout", "status", "deployment/web"]),
    )
    .await
    .expect("rollout status finishes");
    let status = ok(status);
    assert!(
        status
            .stdout
            .ends_with("deployment \"web\" successfully rolled out\n"),
        "{}",
        status.stdout
    );

    let edited = std::fs::read_to_string(&demo)
        .unwrap()
        .replace("busybox:latest", "busybox:v2");
    let path = cluster.dir().join("v2.yaml");
    std::fs::write(&path, edited).unwrap();
    ok(skiffctl(&cluster, &["apply", "-f", path.to_str().unwrap()]).await);
    let status = ok(tokio::time::timeout(
        Duration::from_secs(60),
        skiffctl(&cluster, &["rollout", "status", "deploy/web"]),
    )
    .await
    .expect("rollout status finishes"));
    assert!(
        status.stdout.contains("successfully rolled out"),
        "{}",
        status.stdout
    );
    let history = ok(skiffctl(&cluster, &["rollout", "history", "deploy/web"]).await);
    assert_eq!(
        history.stdout,
        "deployment.apps/web \nREVISION   CHANGE-CAUSE\n1          <none>\n2          <none>\n\n"
    );

    let out = ok(skiffctl(&cluster, &["rollout", "undo", "deploy/web"]).await);
    assert_eq!(out.stdout, "deployment.apps/web rolled back\n");
    ok(tokio::time::timeout(
        Duration::from_secs(60),
        skiffctl(&cluster, &["rollout", "status", "deploy/web"]),
    )
    .await
    .expect("rollout status finishes"));
    let deps: Api<Deployment> = Api::namespaced(cluster.client(), "default");
    let d = deps.get("web").await.unwrap();
    let image = d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("skiff.local/busybox:latest"));

    let out = ok(skiffctl(&cluster, &["rollout", "pause", "deploy/web"]).await);
    assert_eq!(out.stdout, "deployment.apps/web paused\n");
    ok(skiffctl(&cluster, &["rollout", "resume", "deploy/web"]).await);
    let out = ok(skiffctl(&cluster, &["rollout", "restart", "deploy/web"]).await);
    assert_eq!(out.stdout, "deployment.apps/web restarted\n");

    let _ = stop_tx.send(());
    let _ = controllers.await;
    readier.abort();
    cluster.stop().await;
}
