//! Real kubectl binaries (the machine's default and 1.27) against the apiserver.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use skiff_testkit::{kubectl_binaries, repo_root, TestCluster};

fn demo_manifest() -> String {
    std::fs::read_to_string(repo_root().join("manifests/demo.yaml"))
        .expect("manifests/demo.yaml exists")
}

async fn apply_get_watch_delete(kubectl: &Path) {
    let cluster = TestCluster::start().await.unwrap();
    let manifest = repo_root().join("manifests/demo.yaml");
    let manifest = manifest.to_str().unwrap();

    let out = cluster
        .kubectl(kubectl, &["apply", "-f", manifest])
        .await
        .ok();
    assert!(
        out.stdout.contains("deployment.apps/web created"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("service/web created"), "{}", out.stdout);

    // Re-apply after an edit: kubectl computes a three-way strategic merge patch.
    let edited = demo_manifest()
        .replace("replicas: 3", "replicas: 4")
        .replace("skiff.local/busybox:latest", "skiff.local/busybox:v2");
    let edited_path = cluster.dir().join("demo-edited.yaml");
    std::fs::write(&edited_path, edited).unwrap();
    let out = cluster
        .kubectl(kubectl, &["apply", "-f", edited_path.to_str().unwrap()])
        .await
        .ok();
    assert!(
        out.stdout.contains("deployment.apps/web configured"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("service/web unchanged"),
        "{}",
        out.stdout
    );
    let deps: Api<Deployment> = Api::namespaced(cluster.client(), "default");
    let web = deps.get("web").await.unwrap();
    let spec = web.spec.clone().unwrap();
    assert_eq!(spec.replicas, Some(4));
    assert_eq!(
        spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("skiff.local/busybox:v2")
    );
    assert_eq!(web.metadata.generation, Some(2));

    let out = cluster.kubectl(kubectl, &["get", "deployments"]).await.ok();
    let header: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(
        out.stdout.lines().nth(1).unwrap().starts_with("web "),
        "{}",
        out.stdout
    );

    let out = cluster
        .kubectl(kubectl, &["get", "deploy", "web", "-o", "yaml"])
        .await
        .ok();
    let yaml: serde_json::Value = skiff_common::yaml::from_str(&out.stdout).unwrap();
    assert_eq!(yaml["spec"]["replicas"], 4);
    assert_eq!(yaml["metadata"]["name"], "web");

    let out = cluster
        .kubectl(kubectl, &["get", "svc", "-l", "app=web", "-o", "name"])
        .await
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "service/web",
        "the kubernetes service is not labelled app=web"
    );
    let out = cluster.kubectl(kubectl, &["get", "po", "-A"]).await.ok();
    assert!(out.stderr.contains("No resources found"), "{}", out.stderr);

    // `get -w` receives an event for a change made while it watches.
    let mut child = tokio::process::Command::new(kubectl)
        .args(["get", "configmaps", "-w", "--output-watch-events"])
        .env("KUBECONFIG", cluster.kubeconfig_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let cm: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "watched"}})).unwrap();
    // The watch may start after the create; either way the object shows up in its output.
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("watched") {
                return Some(line);
            }
            seen.push(line);
        }
        None
    })
    .await
    .ok()
    .flatten();
    child.kill().await.unwrap();
    let line =
        found.unwrap_or_else(|| panic!("kubectl get -w never showed the configmap; saw {seen:?}"));
    assert!(line.contains("ADDED"), "{line}");

    let out = cluster
        .kubectl(kubectl, &["delete", "-f", edited_path.to_str().unwrap()])
        .await
        .ok();
    assert!(
        out.stdout.contains("deployment.apps \"web\" deleted"),
        "{}",
        out.stdout
    );
    assert!(deps.get_opt("web").await.unwrap().is_none());
    let out = cluster.kubectl(kubectl, &["get", "deploy"]).await.ok();
    assert!(out.stderr.contains("No resources found"), "{}", out.stderr);
    cluster.stop().await;
}

#[tokio::test]
async fn kubectl_apply_get_watch_delete_with_every_installed_kubectl() {
    let binaries = kubectl_binaries();
    assert!(
        !binaries.is_empty(),
        "no kubectl installed: run `make deps`"
    );
    for kubectl in binaries {
        eprintln!("checking {}", kubectl.display());
        apply_get_watch_delete(&kubectl).await;
    }
}
