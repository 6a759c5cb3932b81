//! The everyday kubectl commands, with the real kubectl binaries installed on the machine (the
//! default one and 1.27), against the apiserver: client- and server-side apply, the output
//! formats, describe, label/annotate/patch/scale/edit, explain, and bad input.

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{json, Value};
use skiff_testkit::{kubectl_binaries, TestCluster};

fn manifest(image: &str, replicas: u32, env_value: &str, with_metrics_port: bool) -> String {
    let metrics = if with_metrics_port {
        "\n            - name: metrics\n              containerPort: 9090"
    } else {
        ""
    };
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  labels: {{app: shop}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: shop}}
  template:
    metadata:
      labels: {{app: shop}}
    spec:
      containers:
        - name: web
          image: {image}
          env:
            - name: MODE
              value: "{env_value}"
          ports:
            - name: http
              containerPort: 8080{metrics}
---
apiVersion: v1
kind: Service
metadata:
  name: shop
spec:
  selector: {{app: shop}}
  ports:
    - name: http
      port: 80
      targetPort: http
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-config
data:
  greeting: hello
"#
    )
}

fn container(d: &Deployment) -> k8s_openapi::api::core::v1::Container {
    d.spec.clone().unwrap().template.spec.unwrap().containers[0].clone()
}

async fn apply_round(cluster: &TestCluster, kubectl: &Path, server_side: bool) {
    let path = cluster.dir().join(format!("shop-{server_side}.yaml"));
    let path_s = path.to_str().unwrap();
    let mut args = vec!["apply", "-f", path_s];
    if server_side {
        args.push("--server-side");
    }
    std::fs::write(&path, manifest("shop:v1", 2, "one", true)).unwrap();
    let out = cluster.kubectl(kubectl, &args).await.ok();
    let verb = if server_side {
        "serverside-applied"
    } else {
        "created"
    };
    for obj in [
        "deployment.apps/shop",
        "service/shop",
        "configmap/shop-config",
    ] {
        assert!(
            out.stdout.contains(&format!("{obj} {verb}")),
            "{}",
            out.stdout
        );
    }

    // Change image, replicas and env, and drop the metrics port: the port must disappear.
    std::fs::write(&path, manifest("shop:v2", 4, "two", false)).unwrap();
    let out = cluster.kubectl(kubectl, &args).await.ok();
    if !server_side {
        assert!(
            out.stdout.contains("deployment.apps/shop configured"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("configmap/shop-config unchanged"),
            "{}",
            out.stdout
        );
    }
    let deps: Api<Deployment> = Api::namespaced(cluster.client(), "default");
    let d = deps.get("shop").await.unwrap();
    assert_eq!(d.spec.clone().unwrap().replicas, Some(4));
    let c = container(&d);
    assert_eq!(c.image.as_deref(), Some("shop:v2"));
    assert_eq!(c.env.unwrap()[0].value.as_deref(), Some("two"));
    let ports: Vec<i32> = c.ports.unwrap().iter().map(|p| p.container_port).collect();
    assert_eq!(
        ports,
        [8080],
        "the removed port is gone ({})",
        if server_side {
            "server-side"
        } else {
            "client-side"
        }
    );

    let out = cluster
        .kubectl(kubectl, &["delete", "-f", path_s])
        .await
        .ok();
    assert!(
        out.stdout.contains("deployment.apps \"shop\" deleted"),
        "{}",
        out.stdout
    );
}

async fn everyday_commands(cluster: &TestCluster, kubectl: &Path) {
    let path = cluster.dir().join("shop.yaml");
    std::fs::write(&path, manifest("shop:v1", 2, "one", true)).unwrap();
    cluster
        .kubectl(kubectl, &["apply", "-f", path.to_str().unwrap()])
        .await
        .ok();

    let out = cluster
        .kubectl(kubectl, &["get", "deploy", "-o", "wide"])
        .await
        .ok();
    let header: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert!(
        out.stdout.contains("shop:v1") && out.stdout.contains("app=shop"),
        "{}",
        out.stdout
    );
    let out = cluster
        .kubectl(kubectl, &["get", "svc", "shop", "-o", "json"])
        .await
        .ok();
    let svc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    let out = cluster
        .kubectl(
            kubectl,
            &[
                "get",
                "deploy",
                "shop",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ],
        )
        .await
        .ok();
    assert_eq!(out.stdout, "shop:v1");
    let out = cluster
        .kubectl(kubectl, &["get", "cm,svc", "-l", "app!=none", "-o", "name"])
        .await
        .ok();
    assert!(
        out.stdout.contains("configmap/shop-config") && out.stdout.contains("service/shop"),
        "{}",
        out.stdout
    );

    cluster
        .kubectl(kubectl, &["label", "deploy", "shop", "tier=front"])
        .await
        .ok();
    cluster
        .kubectl(kubectl, &["annotate", "deploy", "shop", "owner=team-a"])
        .await
        .ok();
    let strategic = r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"EXTRA","value":"1"}]}]}}}}"#;
    cluster
        .kubectl(kubectl, &["patch", "deploy", "shop", "-p", strategic])
        .await
        .ok();
    cluster
        .kubectl(
            kubectl,
            &[
                "patch",
                "deploy",
                "shop",
                "--type=merge",
                "-p",
                r#"{"spec":{"minReadySeconds":5}}"#,
            ],
        )
        .await
        .ok();
    cluster
        .kubectl(
            kubectl,
            &[
                "patch",
                "deploy",
                "shop",
                "--type=json",
                "-p",
                r#"[{"op":"replace","path":"/spec/revisionHistoryLimit","value":3}]"#,
            ],
        )
        .await
        .ok();
    cluster
        .kubectl(kubectl, &["scale", "deploy", "shop", "--replicas=5"])
        .await
        .ok();
    let deps: Api<Deployment> = Api::namespaced(cluster.client(), "default");
    let d = deps.get("shop").await.unwrap();
    let meta = &d.metadata;
    assert_eq!(meta.labels.as_ref().unwrap()["tier"], "front");
    assert_eq!(meta.annotations.as_ref().unwrap()["owner"], "team-a");
    let spec = d.spec.clone().unwrap();
    assert_eq!(
        (
            spec.replicas,
            spec.min_ready_seconds,
            spec.revision_history_limit
        ),
        (Some(5), Some(5), Some(3))
    );
    let mut env: Vec<String> = container(&d)
        .env
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    env.sort();
    assert_eq!(
        env,
        ["EXTRA", "MODE"],
        "the strategic patch merged env by name"
    );

    // kubectl edit through an editor script.
    let editor = cluster.dir().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/replicas: 5/replicas: 6/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = tokio::process::Command::new(kubectl)
        .args(["edit", "deploy", "shop"])
        .env("KUBECONFIG", cluster.kubeconfig_path())
        .env("KUBE_EDITOR", &editor)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        deps.get("shop").await.unwrap().spec.unwrap().replicas,
        Some(6)
    );

    // describe shows the object and its events.
    let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "shop.1", "namespace": "default"},
        "involvedObject": {"kind": "Deployment", "name": "shop", "namespace": "default", "apiVersion": "apps/v1", "uid": d.metadata.uid},
        "reason": "ScalingReplicaSet", "message": "Scaled up replica set shop-abc to 6", "type": "Normal",
        "source": {"component": "deployment-controller"}, "count": 1});
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(cluster.client(), "default");
    events
        .create(
            &PostParams::default(),
            &serde_json::from_value(event).unwrap(),
        )
        .await
        .unwrap();
    let out = cluster
        .kubectl(kubectl, &["describe", "deploy", "shop"])
        .await
        .ok();
    assert!(
        out.stdout.contains("Replicas:") && out.stdout.contains("6 desired"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("ScalingReplicaSet"),
        "describe lists the events: {}",
        out.stdout
    );
    let out = cluster
        .kubectl(
            kubectl,
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.kind=Deployment,reason=ScalingReplicaSet",
                "-o",
                "name",
            ],
        )
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "event/shop.1");

    let out = cluster
        .kubectl(kubectl, &["explain", "deployment.spec"])
        .await
        .ok();
    assert!(
        out.stdout.contains("replicas") && out.stdout.contains("DeploymentSpec"),
        "{}",
        out.stdout
    );

    let out = cluster
        .kubectl(kubectl, &["delete", "deploy,svc,cm", "-l", "app=shop"])
        .await
        .ok();
    assert!(
        out.stdout.contains("deployment.apps \"shop\" deleted"),
        "{}",
        out.stdout
    );
    assert!(deps.get_opt("shop").await.unwrap().is_none());
    cluster
        .kubectl(kubectl, &["delete", "cm", "shop-config"])
        .await
        .ok();
}

async fn bad_input(cluster: &TestCluster, kubectl: &Path) {
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let deps: Api<Deployment> = Api::namespaced(cluster.client(), "default");
    let count = || async {
        deps.list(&ListParams::default()).await.unwrap().items.len()
            + cms.list(&ListParams::default()).await.unwrap().items.len()
    };
    let before = count().await;
    let good = manifest("shop:v1", 1, "x", false);
    let good = good.split("---").next().unwrap().to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "invalid name",
            good.replace("name: shop\n  labels", "name: Shop_1\n  labels"),
            "metadata.name: Invalid value: \"Shop_1\"",
        ),
        (
            "bad quantity",
            good.replace(
                "          env:",
                "          resources: {limits: {memory: 12XYZ}}\n          env:",
            ),
            "quantities must match",
        ),
        (
            "missing image",
            good.replace("          image: shop:v1\n", ""),
            "spec.template.spec.containers[0].image: Required value",
        ),
        (
            "unknown field",
            good.replace("  replicas: 1", "  replicas: 1\n  replicaz: 2"),
            "unknown field \"spec.replicaz\"",
        ),
        (
            "malformed YAML",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n".to_string(),
            "yaml",
        ),
    ];
    for (what, body, expected) in cases {
        let path = cluster.dir().join("bad.yaml");
        std::fs::write(&path, body).unwrap();
        let out = cluster
            .kubectl(kubectl, &["apply", "-f", path.to_str().unwrap()])
            .await;
        assert!(!out.success, "{what}: kubectl should fail");
        assert!(
            out.stderr.contains(expected),
            "{what}: expected {expected:?} in {}",
            out.stderr
        );
        assert_eq!(count().await, before, "{what}: nothing was written");
    }
    // An oversize body is refused with 413 before anything is decoded.
    let big = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata:\n  blob: \"{}\"\n",
        "x".repeat(3 * 1024 * 1024 + 10)
    );
    let path = cluster.dir().join("big.yaml");
    std::fs::write(&path, big).unwrap();
    let out = cluster
        .kubectl(kubectl, &["create", "-f", path.to_str().unwrap()])
        .await;
    assert!(!out.success);
    assert!(
        out.stderr.contains("Request entity too large"),
        "{}",
        out.stderr
    );
    assert_eq!(count().await, before);
}

#[tokio::test]
async fn kubectl_compatibility_suite_with_every_installed_kubectl() {
    let binaries = kubectl_binaries();
    assert!(
        !binaries.is_empty(),
        "no kubectl installed: run `make deps`"
    );
    for kubectl in binaries {
        eprintln!("checking {}", kubectl.display());
        let cluster = TestCluster::start().await.unwrap();
        apply_round(&cluster, &kubectl, false).await;
        apply_round(&cluster, &kubectl, true).await;
        everyday_commands(&cluster, &kubectl).await;
        bad_input(&cluster, &kubectl).await;
        cluster.stop().await;
    }
}
