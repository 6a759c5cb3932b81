//! Identity and access on a secured apiserver: TLS only, no credentials → 401 outside the
//! public paths, RBAC's view/edit roles as Kubernetes defines them (403 with Kubernetes'
//! message), each component holding only its own ClusterRole.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, PostParams};
use serde_json::json;
use skiff_testkit::{kubectl_binaries, wait_for, TestCluster};

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({ "metadata": { "name": name }, "data": { "k": "v" } })).unwrap()
}

/// Bind the ClusterRole `view` to the group `dev` in `default`.
async fn grant_group_dev_view_in_default(admin: &kube::Client) {
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "dev-view" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "dev" }],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

/// A plain HTTPS GET trusting the cluster CA, with no credentials.
async fn anonymous_get(cluster: &TestCluster, path: &str) -> (u16, String) {
    let ca = cluster.api.cert_dir.as_ref().unwrap().join("ca.crt");
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(&ca)
        .arg(format!("{}{path}", cluster.url()))
        .output()
        .await
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text
        .rsplit_once('\n')
        .expect("curl printed the status code");
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[tokio::test]
async fn no_credentials_get_401_except_on_the_public_paths() {
    let cluster = TestCluster::start().await.unwrap();
    assert!(cluster.url().starts_with("https://"), "{}", cluster.url());
    for path in [
        "/api",
        "/api/v1/pods",
        "/apis/apps/v1/deployments",
        "/openapi/v2",
        "/metrics",
    ] {
        let (code, body) = anonymous_get(&cluster, path).await;
        assert_eq!(code, 401, "{path}: {body}");
        assert!(
            body.contains("\"reason\":\"Unauthorized\""),
            "{path}: {body}"
        );
    }
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let (code, body) = anonymous_get(&cluster, path).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    cluster.stop().await;
}

#[tokio::test]
async fn a_view_user_reads_and_is_refused_writes_with_kubernetes_message() {
    let cluster = TestCluster::start().await.unwrap();
    let admin = cluster.client();
    Api::<ConfigMap>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &configmap("settings"))
        .await
        .unwrap();
    let alice = cluster.client_as("alice", Some("dev")).await.unwrap();
    let as_alice = Api::<ConfigMap>::namespaced(alice.clone(), "default");
    let err = as_alice.get("settings").await.unwrap_err();
    assert!(
        err.to_string().contains(
            "configmaps \"settings\" is forbidden: User \"alice\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\""
        ),
        "{err}"
    );
    grant_group_dev_view_in_default(&admin).await;
    let cm = wait_for(
        "alice can read through the group binding",
        Duration::from_secs(10),
        || {
            let api = as_alice.clone();
            async move { api.get("settings").await.ok() }
        },
    )
    .await;
    assert_eq!(cm.data.unwrap()["k"], "v");
    let err = as_alice
        .create(&PostParams::default(), &configmap("mine"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("User \"alice\" cannot create resource \"configmaps\""),
        "{err}"
    );
    // Another namespace is not covered by a RoleBinding in default.
    let elsewhere = Api::<ConfigMap>::namespaced(alice, "kube-system");
    assert!(elsewhere.list(&Default::default()).await.is_err());
    // Secrets are not in view.
    for kubectl in kubectl_binaries() {
        let path = cluster.dir().join("alice.kubeconfig");
        std::fs::write(&path, cluster.kubeconfig_for("alice", Some("dev")).unwrap()).unwrap();
        let (ok, _, stderr) = kubectl_as(
            &cluster,
            &path,
            &kubectl,
            &["get", "secrets", "-n", "default"],
        )
        .await;
        assert!(!ok);
        assert!(
            stderr.contains("Error from server (Forbidden): secrets is forbidden: User \"alice\" cannot list resource \"secrets\""),
            "{}: {stderr}",
            kubectl.display()
        );
        let args = ["get", "configmaps", "-n", "default", "-o", "name"];
        let (ok, stdout, stderr) = kubectl_as(&cluster, &path, &kubectl, &args).await;
        assert!(ok, "{stderr}");
        assert!(stdout.contains("configmap/settings"));
    }
    cluster.stop().await;
}

#[tokio::test]
async fn the_scheduler_identity_cannot_write_secrets_or_nodes() {
    let cluster = TestCluster::start().await.unwrap();
    let scheduler = cluster
        .client_as("system:kube-scheduler", None)
        .await
        .unwrap();
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::all(scheduler.clone());
    pods.list(&Default::default())
        .await
        .expect("the scheduler lists pods");
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::all(scheduler.clone());
    let err = secrets.list(&Default::default()).await.unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");
    let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(scheduler);
    let err = nodes.delete("any", &Default::default()).await.unwrap_err();
    assert!(
        err.to_string().contains("cannot delete resource \"nodes\""),
        "{err}"
    );
    cluster.stop().await;
}

async fn kubectl_as(
    cluster: &TestCluster,
    kubeconfig: &std::path::Path,
    kubectl: &std::path::Path,
    args: &[&str],
) -> (bool, String, String) {
    let out = tokio::process::Command::new(kubectl)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", cluster.dir())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn auth_can_i_with_kubectl_1_27_and_the_reviews_through_kube_rs() {
    let cluster = TestCluster::start().await.unwrap();
    let path = cluster.dir().join("bob.kubeconfig");
    std::fs::write(&path, cluster.kubeconfig_for("bob", Some("qa")).unwrap()).unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "qa-edit" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob" }],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(cluster.client(), "default")
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    // kubectl 1.32 and newer send access reviews as protobuf (issue 14); 1.27 sends JSON.
    let json_kubectls: Vec<_> = kubectl_binaries()
        .into_iter()
        .filter(|k| k.to_string_lossy().ends_with("kubectl.1.27"))
        .collect();
    assert!(!json_kubectls.is_empty(), "kubectl 1.27 is installed");
    for kubectl in json_kubectls {
        let can = |args: &'static [&'static str]| {
            let (path, kubectl, cluster) = (path.clone(), kubectl.clone(), &cluster);
            async move {
                let mut all = vec!["auth", "can-i"];
                all.extend_from_slice(args);
                let (_, stdout, stderr) = kubectl_as(cluster, &path, &kubectl, &all).await;
                assert!(
                    stdout.trim() == "yes" || stdout.trim() == "no",
                    "{args:?}: {stdout} {stderr}"
                );
                stdout.trim() == "yes"
            }
        };
        wait_for(
            "bob's binding reaches the authorizer",
            Duration::from_secs(10),
            || async {
                can(&["create", "deployments", "-n", "default"])
                    .await
                    .then_some(())
            },
        )
        .await;
        assert!(can(&["delete", "pods", "-n", "default"]).await);
        assert!(!can(&["create", "rolebindings", "-n", "default"]).await);
        assert!(!can(&["get", "pods", "-n", "kube-system"]).await);
        assert!(!can(&["delete", "nodes"]).await);
        let (ok, list, stderr) = kubectl_as(
            &cluster,
            &path,
            &kubectl,
            &["auth", "can-i", "--list", "-n", "default"],
        )
        .await;
        assert!(ok, "{stderr}");
        assert!(
            list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
            "{list}"
        );
        assert!(list.contains("deployments.apps"), "{list}");
    }
    // `kubectl auth whoami` sends protobuf in every version that has it (issue 14); the same
    // SelfSubjectReview through kube-rs (JSON):
    let bob = cluster.client_as("bob", Some("qa")).await.unwrap();
    let review: SelfSubjectReview = serde_json::from_value(json!({ "metadata": {} })).unwrap();
    let review = Api::<SelfSubjectReview>::all(bob.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    let info = review.status.unwrap().user_info.unwrap();
    assert_eq!(info.username.as_deref(), Some("bob"));
    assert_eq!(
        info.groups.unwrap(),
        ["qa".to_string(), "system:authenticated".to_string()]
    );
    // A SubjectAccessReview is for those allowed to ask about others: bob is not.
    let sar: SubjectAccessReview = serde_json::from_value(json!({
        "spec": { "user": "alice", "resourceAttributes": { "verb": "get", "resource": "pods" } }
    }))
    .unwrap();
    let err = Api::<SubjectAccessReview>::all(bob)
        .create(&PostParams::default(), &sar)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot create resource \"subjectaccessreviews\""),
        "{err}"
    );
    let answered = Api::<SubjectAccessReview>::all(cluster.client())
        .create(&PostParams::default(), &sar)
        .await
        .unwrap();
    assert!(!answered.status.unwrap().allowed, "alice holds no role");
    cluster.stop().await;
}

/// Run kubectl with a bearer token only (no kubeconfig credentials).
async fn kubectl_with_token(
    cluster: &TestCluster,
    kubectl: &std::path::Path,
    token: &str,
    args: &[&str],
) -> (bool, String, String) {
    let ca = cluster.api.cert_dir.as_ref().unwrap().join("ca.crt");
    let (server, ca, token) = (
        format!("--server={}", cluster.url()),
        format!("--certificate-authority={}", ca.display()),
        format!("--token={token}"),
    );
    let mut all = vec![server.as_str(), ca.as_str(), token.as_str()];
    all.extend_from_slice(args);
    kubectl_as(cluster, std::path::Path::new("/dev/null"), kubectl, &all).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_from_kubectl_create_token() {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};

    let cluster = TestCluster::start().await.unwrap();
    let controllers = cluster.start_pod_identity_controllers();
    let admin = cluster.client();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "dev"}})).unwrap();
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    // Every namespace gets its default ServiceAccount and the cluster CA.
    let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), "dev");
    wait_for(
        "dev's default ServiceAccount",
        Duration::from_secs(10),
        || {
            let accounts = accounts.clone();
            async move { accounts.get_opt("default").await.ok().flatten() }
        },
    )
    .await;
    let config_maps = Api::<ConfigMap>::namespaced(admin.clone(), "dev");
    let root_ca = wait_for("dev's kube-root-ca.crt", Duration::from_secs(10), || {
        let config_maps = config_maps.clone();
        async move { config_maps.get_opt("kube-root-ca.crt").await.ok().flatten() }
    })
    .await;
    assert_eq!(
        root_ca.data.unwrap()["ca.crt"],
        cluster.ca_pem().unwrap(),
        "the published CA is the cluster's"
    );

    let builder: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "builder"}})).unwrap();
    accounts
        .create(&PostParams::default(), &builder)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "builder-view" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view" },
        "subjects": [{ "kind": "ServiceAccount", "name": "builder", "namespace": "dev" }],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), "dev")
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    // `kubectl create token` (1.27 sends JSON; newer kubectls send protobuf, issue 14).
    let kubectls = kubectl_binaries();
    let old = kubectls
        .iter()
        .find(|k| k.to_string_lossy().ends_with("kubectl.1.27"))
        .expect("kubectl 1.27 is installed");
    let kubeconfig = cluster.kubeconfig_path();
    let (ok, token, stderr) = kubectl_as(
        &cluster,
        &kubeconfig,
        old,
        &[
            "create",
            "token",
            "builder",
            "-n",
            "dev",
            "--duration",
            "10m",
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    let token = token.trim().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    for kubectl in &kubectls {
        let k = kubectl.display();
        let read = ["get", "configmaps", "-n", "dev", "-o", "name"];
        let (ok, stdout, stderr) = wait_for(
            "the RoleBinding reaches the authorizer",
            Duration::from_secs(10),
            || async {
                let r = kubectl_with_token(&cluster, kubectl, &token, &read).await;
                r.0.then_some(r)
            },
        )
        .await;
        assert!(
            ok && stdout.contains("configmap/kube-root-ca.crt"),
            "{k}: {stderr}"
        );
        let (ok, _, stderr) =
            kubectl_with_token(&cluster, kubectl, &token, &["get", "secrets", "-n", "dev"]).await;
        assert!(!ok);
        assert!(
            stderr.contains("secrets is forbidden: User \"system:serviceaccount:dev:builder\" cannot list resource \"secrets\" in API group \"\" in the namespace \"dev\""),
            "{k}: {stderr}"
        );
        let (ok, _, stderr) =
            kubectl_with_token(&cluster, kubectl, &token, &["get", "pods", "-n", "default"]).await;
        assert!(!ok && stderr.contains("Forbidden"), "{k}: {stderr}");
    }

    // A lifetime under ten minutes is refused as Kubernetes refuses it.
    let short: TokenRequest =
        serde_json::from_value(json!({"spec": {"expirationSeconds": 60}})).unwrap();
    let err = accounts
        .create_token_request("builder", &PostParams::default(), &short)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"),
        "{err}"
    );

    // A token bound to a pod lives as long as the pod does.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "job"},
        "spec": {"serviceAccountName": "builder", "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    let pods = Api::<Pod>::namespaced(admin.clone(), "dev");
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let bound: TokenRequest = serde_json::from_value(json!({"spec": {"boundObjectRef": {
        "kind": "Pod", "apiVersion": "v1", "name": "job", "uid": pod.metadata.uid,
    }}}))
    .unwrap();
    let answer = accounts
        .create_token_request("builder", &PostParams::default(), &bound)
        .await
        .unwrap();
    assert_eq!(answer.spec.expiration_seconds, Some(3600));
    let pod_token = answer.status.unwrap().token;
    let kubectl = kubectls.last().unwrap();
    let read = ["get", "configmaps", "-n", "dev", "-o", "name"];
    assert!(
        kubectl_with_token(&cluster, kubectl, &pod_token, &read)
            .await
            .0
    );
    // The pod runs as builder: a token for another ServiceAccount cannot be bound to it.
    let err = Api::<ServiceAccount>::namespaced(admin.clone(), "dev")
        .create_token_request("default", &PostParams::default(), &bound)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("to pod running with different serviceaccount name"),
        "{err}"
    );
    pods.delete("job", &Default::default()).await.unwrap();
    wait_for(
        "the pod-bound token dies with its pod",
        Duration::from_secs(10),
        || async {
            let (ok, _, stderr) = kubectl_with_token(&cluster, kubectl, &pod_token, &read).await;
            (!ok && stderr.contains("Unauthorized")).then_some(())
        },
    )
    .await;

    // Deleting the ServiceAccount invalidates its tokens.
    accounts
        .delete("builder", &Default::default())
        .await
        .unwrap();
    wait_for(
        "the token dies with its ServiceAccount",
        Duration::from_secs(10),
        || async {
            let (ok, _, stderr) = kubectl_with_token(&cluster, kubectl, &token, &read).await;
            (!ok && stderr.contains("You must be logged in to the server (Unauthorized)"))
                .then_some(())
        },
    )
    .await;
    controllers.stop().await;
    cluster.stop().await;
}

/// Secrets are encrypted in etcd (AES-GCM, Kubernetes' `k8s:enc:aesgcm:v1:` format) and read
/// back decrypted; a Secret written in plaintext before encryption was on still reads.
#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_plaintext_ones_still_read() {
    use k8s_openapi::api::core::v1::Secret;

    let cluster = TestCluster::start().await.unwrap();
    let secrets = Api::<Secret>::namespaced(cluster.client(), "default");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "stringData": {"password": "hunter2-plaintext-marker"},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    // What `etcdctl get` shows: ciphertext only.
    let etcdctl = std::process::Command::new("etcdctl")
        .args([
            "--endpoints",
            &cluster.etcd.endpoint,
            "get",
            "/registry/secrets/default/db",
        ])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl is installed with etcd");
    assert!(etcdctl.status.success(), "{etcdctl:?}");
    let raw = String::from_utf8_lossy(&etcdctl.stdout);
    assert!(raw.contains("k8s:enc:aesgcm:v1:key1:"), "{raw}");
    for plain in [
        "hunter2-plaintext-marker",
        "aHVudGVyMi1wbGFpbnRleHQtbWFya2Vy",
        "\"db\"",
    ] {
        assert!(!raw.contains(plain), "{plain} in etcd: {raw}");
    }
    let read = secrets.get("db").await.unwrap();
    assert_eq!(
        read.data.unwrap()["password"].0,
        b"hunter2-plaintext-marker"
    );
    // ConfigMaps are not in the configuration: stored as they are.
    Api::<ConfigMap>::namespaced(cluster.client(), "default")
        .create(&PostParams::default(), &configmap("plain"))
        .await
        .unwrap();
    let mut etcd = cluster.etcd.client().await.unwrap();
    let cm = etcd
        .get("/registry/configmaps/default/plain", None)
        .await
        .unwrap();
    assert!(cm.kvs()[0].value_str().unwrap().starts_with('{'));

    // A Secret stored in plaintext (before encryption was turned on) reads, and is encrypted
    // when next written.
    let legacy = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "legacy", "namespace": "default", "uid": "u-legacy",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "data": {"k": "b2xk"}});
    etcd.put(
        "/registry/secrets/default/legacy",
        serde_json::to_vec(&legacy).unwrap(),
        None,
    )
    .await
    .unwrap();
    let old = wait_for(
        "the plaintext Secret reads",
        Duration::from_secs(5),
        || async { secrets.get_opt("legacy").await.ok().flatten() },
    )
    .await;
    assert_eq!(old.data.as_ref().unwrap()["k"].0, b"old");
    let mut changed = old.clone();
    changed
        .data
        .as_mut()
        .unwrap()
        .insert("k".into(), k8s_openapi::ByteString(b"new".to_vec()));
    secrets
        .replace("legacy", &PostParams::default(), &changed)
        .await
        .unwrap();
    let stored = etcd
        .get("/registry/secrets/default/legacy", None)
        .await
        .unwrap();
    assert!(stored.kvs()[0]
        .value()
        .starts_with(b"k8s:enc:aesgcm:v1:key1:"));
    cluster.stop().await;
}

/// A user may only grant or bind what they hold, unless allowed `escalate` or `bind`.
#[tokio::test]
async fn escalation_through_roles_and_bindings_is_refused() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, Role};

    let cluster = TestCluster::start().await.unwrap();
    let admin = cluster.client();
    let create_binding = |client: kube::Client, name: &str, kind: &str, role: &str| {
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": { "name": name },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice" }],
        }))
        .unwrap();
        async move {
            Api::<RoleBinding>::namespaced(client, "default")
                .create(&PostParams::default(), &binding)
                .await
        }
    };
    let role = |name: &str, resource: &str| -> Role {
        serde_json::from_value(json!({
            "metadata": { "name": name },
            "rules": [{ "apiGroups": [""], "resources": [resource], "verbs": ["get", "list"] }],
        }))
        .unwrap()
    };
    // alice administers namespace default (admin may write roles and bindings there).
    create_binding(admin.clone(), "alice-admin", "ClusterRole", "admin")
        .await
        .unwrap();
    let alice = cluster.client_as("alice", Some("dev")).await.unwrap();
    let roles = Api::<Role>::namespaced(alice.clone(), "default");
    wait_for(
        "alice's admin binding is in force",
        Duration::from_secs(10),
        || async {
            roles
                .create(&PostParams::default(), &role("pod-reader", "pods"))
                .await
                .ok()
        },
    )
    .await;

    // Granting what she does not hold: refused, with Kubernetes' message, nothing written.
    let err = roles
        .create(&PostParams::default(), &role("node-reader", "nodes"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(r#"roles.rbac.authorization.k8s.io "node-reader" is forbidden: user "alice" (groups=["dev" "system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#), "{text}");
    assert!(
        text.contains(r#"{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}"#),
        "{text}"
    );
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 403));
    assert!(Api::<Role>::namespaced(admin.clone(), "default")
        .get_opt("node-reader")
        .await
        .unwrap()
        .is_none());
    // Binding a role she holds is fine; binding cluster-admin is not.
    create_binding(alice.clone(), "alice-view", "ClusterRole", "view")
        .await
        .unwrap();
    let err = create_binding(alice.clone(), "alice-root", "ClusterRole", "cluster-admin")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );

    // `bind` on cluster-admin and `escalate` on roles lift the checks.
    let powers: ClusterRole = serde_json::from_value(json!({
        "metadata": { "name": "alice-powers" },
        "rules": [
            { "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
              "verbs": ["bind"], "resourceNames": ["cluster-admin"] },
            { "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"] },
        ],
    }))
    .unwrap();
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &powers)
        .await
        .unwrap();
    create_binding(admin.clone(), "alice-powers", "ClusterRole", "alice-powers")
        .await
        .unwrap();
    wait_for(
        "alice may bind cluster-admin",
        Duration::from_secs(10),
        || async {
            create_binding(alice.clone(), "alice-root", "ClusterRole", "cluster-admin")
                .await
                .ok()
        },
    )
    .await;
    roles
        .create(&PostParams::default(), &role("node-reader", "nodes"))
        .await
        .unwrap();
    cluster.stop().await;
}

/// A node's credentials reach only its own Node, Lease and pods, and the Secrets, ConfigMaps
/// and ServiceAccount tokens of its pods.
#[tokio::test]
async fn a_node_cannot_touch_another_nodes_pods_node_or_secrets() {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{Node, Pod, Secret, ServiceAccount};
    use kube::api::{Patch, PatchParams};

    let cluster = TestCluster::start().await.unwrap();
    let admin = cluster.client();
    let create = |v: serde_json::Value| v;
    for n in ["n1", "n2"] {
        let node: Node = serde_json::from_value(create(json!({"metadata": {"name": n}}))).unwrap();
        Api::<Node>::all(admin.clone())
            .create(&PostParams::default(), &node)
            .await
            .unwrap();
    }
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    Api::<ServiceAccount>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    for (pod, node, secret) in [("p1", "n1", "s1"), ("p2", "n2", "s2")] {
        let s: Secret =
            serde_json::from_value(json!({"metadata": {"name": secret}, "stringData": {"k": "v"}}))
                .unwrap();
        Api::<Secret>::namespaced(admin.clone(), "default")
            .create(&PostParams::default(), &s)
            .await
            .unwrap();
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": pod},
            "spec": {"nodeName": node, "automountServiceAccountToken": false,
                "containers": [{"name": "c", "image": "busybox",
                    "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}]}]},
        }))
        .unwrap();
        Api::<Pod>::namespaced(admin.clone(), "default")
            .create(&PostParams::default(), &p)
            .await
            .unwrap();
    }
    let n1 = cluster
        .client_as("system:node:n1", Some("system:nodes"))
        .await
        .unwrap();
    let forbidden =
        |r: Result<_, kube::Error>| matches!(r, Err(kube::Error::Api(s)) if s.code == 403);

    let secrets = Api::<Secret>::namespaced(n1.clone(), "default");
    wait_for(
        "n1 reads its pod's secret",
        Duration::from_secs(10),
        || async { secrets.get("s1").await.ok() },
    )
    .await;
    assert!(
        forbidden(secrets.get("s2").await.map(drop)),
        "another node's pod's secret"
    );
    assert!(
        forbidden(secrets.list(&Default::default()).await.map(drop)),
        "listing secrets"
    );

    let pods = Api::<Pod>::namespaced(n1.clone(), "default");
    let status = Patch::Merge(json!({"status": {"message": "seen by n1"}}));
    pods.patch_status("p1", &PatchParams::default(), &status)
        .await
        .unwrap();
    let err = pods
        .patch_status("p2", &PatchParams::default(), &status)
        .await;
    assert!(forbidden(err.map(drop)), "another node's pod status");
    assert!(forbidden(
        pods.delete("p2", &Default::default()).await.map(drop)
    ));

    let nodes = Api::<Node>::all(n1.clone());
    let label = Patch::Merge(json!({"metadata": {"labels": {"seen": "yes"}}}));
    nodes
        .patch("n1", &PatchParams::default(), &label)
        .await
        .unwrap();
    let err = nodes
        .patch("n2", &PatchParams::default(), &label)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(r#"node "n1" is not allowed to modify node "n2""#),
        "{err}"
    );
    let n3: Node = serde_json::from_value(json!({"metadata": {"name": "n3"}})).unwrap();
    assert!(forbidden(
        nodes.create(&PostParams::default(), &n3).await.map(drop)
    ));

    let leases = Api::<Lease>::namespaced(n1.clone(), "kube-node-lease");
    let lease =
        |n: &str| -> Lease { serde_json::from_value(json!({"metadata": {"name": n}})).unwrap() };
    leases
        .create(&PostParams::default(), &lease("n1"))
        .await
        .unwrap();
    assert!(forbidden(
        leases
            .create(&PostParams::default(), &lease("n2"))
            .await
            .map(drop)
    ));

    // Tokens: only bound to its own pods.
    let accounts = Api::<ServiceAccount>::namespaced(n1, "default");
    let pod_uid = |name: &'static str| {
        let admin = admin.clone();
        async move {
            Api::<Pod>::namespaced(admin, "default")
                .get(name)
                .await
                .unwrap()
                .metadata
                .uid
                .unwrap()
        }
    };
    let bound = |pod: &str, uid: String| -> TokenRequest {
        serde_json::from_value(json!({"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod, "uid": uid}}}))
            .unwrap()
    };
    let pp = PostParams::default();
    accounts
        .create_token_request("default", &pp, &bound("p1", pod_uid("p1").await))
        .await
        .unwrap();
    let err = accounts
        .create_token_request("default", &pp, &bound("p2", pod_uid("p2").await))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("bound to pods scheduled on it"),
        "{err}"
    );
    let unbound: TokenRequest = serde_json::from_value(json!({"spec": {}})).unwrap();
    assert!(forbidden(
        accounts
            .create_token_request("default", &pp, &unbound)
            .await
            .map(drop)
    ));
    cluster.stop().await;
}

/// Who a bearer token is, from SelfSubjectReview over plain curl: `(status code, body)`.
async fn whoami_with_token(cluster: &TestCluster, token: &str) -> (u16, String) {
    let ca = cluster.api.cert_dir.as_ref().unwrap().join("ca.crt");
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "--cacert",
        ])
        .arg(&ca)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json"])
        .args([
            "-d",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#,
        ])
        .arg(format!(
            "{}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            cluster.url()
        ))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let code = code.trim().parse().unwrap_or(0);
    assert!(
        code != 0,
        "curl failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (code, body.to_string())
}

#[tokio::test]
async fn bootstrap_tokens_authenticate_until_they_expire() {
    use k8s_openapi::api::core::v1::Secret;

    let cluster = TestCluster::start().await.unwrap();
    let secrets = Api::<Secret>::namespaced(cluster.client(), "kube-system");
    let token_secret = |id: &str, expiration: &str| -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": format!("bootstrap-token-{id}")},
            "type": "bootstrap.kubernetes.io/token",
            "stringData": {
                "token-id": id, "token-secret": "0123456789abcdef",
                "usage-bootstrap-authentication": "true",
                "auth-extra-groups": "system:bootstrappers:skiff:nodes",
                "expiration": expiration,
            },
        }))
        .unwrap()
    };
    secrets
        .create(
            &PostParams::default(),
            &token_secret("abcdef", "2999-01-01T00:00:00Z"),
        )
        .await
        .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &token_secret("expird", "2020-01-01T00:00:00Z"),
        )
        .await
        .unwrap();
    let (code, body) = wait_for(
        "the token's Secret reaches the cache",
        Duration::from_secs(10),
        || async {
            let r = whoami_with_token(&cluster, "abcdef.0123456789abcdef").await;
            (r.0 == 201).then_some(r)
        },
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let review: SelfSubjectReview = serde_json::from_str(&body).unwrap();
    let user = review.status.unwrap().user_info.unwrap();
    assert_eq!(user.username.as_deref(), Some("system:bootstrap:abcdef"));
    assert_eq!(
        user.groups.unwrap(),
        [
            "system:bootstrappers",
            "system:bootstrappers:skiff:nodes",
            "system:authenticated"
        ]
    );
    for refused in [
        "expird.0123456789abcdef",
        "abcdef.0123456789abcdee",
        "nosuch.0123456789abcdef",
    ] {
        assert_eq!(
            whoami_with_token(&cluster, refused).await.0,
            401,
            "{refused}"
        );
    }
    cluster.stop().await;
}

/// TLS both ways: a client trusting another CA refuses the apiserver, and the apiserver
/// refuses a client certificate from another CA (the handshake fails, no request is served).
#[tokio::test]
async fn a_wrong_ca_is_refused_by_the_client_and_a_foreign_client_cert_by_the_server() {
    let cluster = TestCluster::start().await.unwrap();
    let dir = cluster.dir().to_path_buf();
    let other = skiff_pki::Authority::generate("impostor-ca").unwrap();
    std::fs::write(dir.join("other-ca.crt"), other.cert_pem()).unwrap();
    let forged = other
        .issue(&skiff_pki::CertRequest::client(
            "system:admin",
            Some("system:masters"),
        ))
        .unwrap();
    std::fs::write(dir.join("forged.crt"), &forged.cert_pem).unwrap();
    std::fs::write(dir.join("forged.key"), &forged.key_pem).unwrap();
    let ca = cluster.api.cert_dir.as_ref().unwrap().join("ca.crt");
    let curl = |args: Vec<std::ffi::OsString>| {
        let url = format!("{}/api/v1/namespaces/default/secrets", cluster.url());
        async move {
            let out = tokio::process::Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .args(args)
                .arg(url)
                .output()
                .await
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        }
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    let path = |p: &std::path::Path| p.as_os_str().to_owned();
    // The right CA, no credentials: the server is trusted and answers 401.
    assert_eq!(curl(vec![os("--cacert"), path(&ca)]).await.1, "401");
    // Another CA: curl refuses the server's certificate (exit 60).
    let (code, _) = curl(vec![os("--cacert"), path(&dir.join("other-ca.crt"))]).await;
    assert_eq!(
        code,
        Some(60),
        "the client must refuse a server its CA did not sign"
    );
    // A client certificate claiming system:masters from another CA: the handshake fails.
    let (code, status) = curl(vec![
        os("--cacert"),
        path(&ca),
        os("--cert"),
        path(&dir.join("forged.crt")),
        os("--key"),
        path(&dir.join("forged.key")),
    ])
    .await;
    assert_eq!(
        status, "000",
        "no HTTP answer for a foreign certificate (curl exit {code:?})"
    );
    // And through kube-rs: a kubeconfig trusting another CA cannot connect.
    let mut config = skiff_testkit::client_config(&cluster.kubeconfig_path())
        .await
        .unwrap();
    config.root_cert = Some(
        skiff_pki::pem::certificates(other.cert_pem(), "other")
            .unwrap()
            .into_iter()
            .map(|c| c.to_vec())
            .collect(),
    );
    let client = kube::Client::try_from(config).unwrap();
    let err = Api::<ConfigMap>::namespaced(client, "default")
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        !matches!(err, kube::Error::Api(_)),
        "no API answer without trusting the server: {err}"
    );
    cluster.stop().await;
}

/// A token from `kubectl create token --duration` works, then expires: refused with 401 once
/// its lifetime and Kubernetes' minute of clock leeway have passed. (The apiserver's floor of
/// ten minutes is lowered by its test-only flag, so the test waits one minute, not eleven.)
#[tokio::test]
async fn a_service_account_token_works_until_it_expires() {
    use k8s_openapi::api::core::v1::ServiceAccount;

    let cluster = TestCluster::start_with(|config| {
        if let skiff_apiserver::Security::Secure(secure) = &mut config.security {
            secure.min_token_expiration_for_testing = Some(Duration::from_secs(1));
        }
    })
    .await
    .unwrap();
    let admin = cluster.client();
    let reader: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "reader"}})).unwrap();
    Api::<ServiceAccount>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &reader)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "reader-view" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view" },
        "subjects": [{ "kind": "ServiceAccount", "name": "reader", "namespace": "default" }],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin, "default")
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let kubectl = std::path::PathBuf::from("/usr/lib/google-cloud-sdk/bin/kubectl.1.27");
    let (ok, token, stderr) = kubectl_as(
        &cluster,
        &cluster.kubeconfig_path(),
        &kubectl,
        &["create", "token", "reader", "--duration", "5s"],
    )
    .await;
    assert!(ok, "{stderr}");
    let token = token.trim().to_string();
    let issued = std::time::Instant::now();
    let claims = jwt_claims(&token);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        5,
        "{claims}"
    );
    let read = ["get", "configmaps", "-n", "default", "-o", "name"];
    let (ok, _, stderr) = kubectl_with_token(&cluster, &kubectl, &token, &read).await;
    assert!(ok, "the fresh token reads: {stderr}");
    let stderr = wait_for("the token expires", Duration::from_secs(120), || async {
        let (ok, _, stderr) = kubectl_with_token(&cluster, &kubectl, &token, &read).await;
        (!ok).then_some(stderr)
    })
    .await;
    assert!(
        stderr.contains("You must be logged in to the server (Unauthorized)"),
        "{stderr}"
    );
    assert!(
        issued.elapsed() >= Duration::from_secs(5 + 60),
        "refused only after its lifetime and the clock leeway, not after {:?}",
        issued.elapsed()
    );
    cluster.stop().await;
}

/// The claims of a JWT, unverified (the test only reads what the server put in).
fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// What `tests/python/probe.py` reports, by call.
async fn python_probe(args: &[&str]) -> std::collections::BTreeMap<String, serde_json::Value> {
    let script = skiff_testkit::repo_root().join("tests/python/probe.py");
    let out = tokio::process::Command::new(skiff_testkit::python_with_kubernetes_client())
        .arg(&script)
        .args(args)
        .output()
        .await
        .expect("running the Python client");
    assert!(
        out.status.success(),
        "probe.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            (v["call"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

/// The official Python client, against the TLS apiserver: anonymous calls get 401, a `view`
/// user (client certificate) reads and is refused writes with Kubernetes' message, and a
/// ServiceAccount token gets exactly what its Role grants.
#[tokio::test]
async fn the_official_python_client_authenticates_and_is_authorized() {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::Role;

    let cluster = TestCluster::start().await.unwrap();
    let admin = cluster.client();
    Api::<ConfigMap>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &configmap("settings"))
        .await
        .unwrap();
    let config_maps_only: Role = serde_json::from_value(json!({
        "metadata": { "name": "configmap-writer" },
        "rules": [{ "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create"] }],
    }))
    .unwrap();
    let writer_binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "configmap-writer" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-writer" },
        "subjects": [{ "kind": "ServiceAccount", "name": "writer", "namespace": "default" }],
    }))
    .unwrap();
    grant_group_dev_view_in_default(&admin).await;
    let bindings = Api::<RoleBinding>::namespaced(admin.clone(), "default");
    Api::<Role>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &config_maps_only)
        .await
        .unwrap();
    bindings
        .create(&PostParams::default(), &writer_binding)
        .await
        .unwrap();
    let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), "default");
    let writer: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "writer"}})).unwrap();
    accounts
        .create(&PostParams::default(), &writer)
        .await
        .unwrap();
    let token = accounts
        .create_token_request("writer", &PostParams::default(), &TokenRequest::default())
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let server = cluster.url();
    let ca = cluster.api.cert_dir.as_ref().unwrap().join("ca.crt");
    let ca = ca.to_str().unwrap();

    // The bindings were created before the caches could miss them: one wait for the last.
    let as_writer = ["--server", &server, "--ca", ca, "--token", &token];
    let seen = wait_for(
        "the writer's binding reaches the authorizer",
        Duration::from_secs(10),
        || async {
            let seen = python_probe(&as_writer).await;
            (seen["list_configmaps"]["status"] == 200).then_some(seen)
        },
    )
    .await;
    assert_eq!(
        seen["whoami"]["value"]["username"],
        "system:serviceaccount:default:writer"
    );
    assert_eq!(seen["create_configmap"]["status"], 200, "{seen:?}");
    assert_eq!(seen["list_secrets"]["status"], 403, "{seen:?}");
    assert_eq!(
        seen["list_secrets"]["message"],
        "secrets is forbidden: User \"system:serviceaccount:default:writer\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
    );

    let alice = cluster.dir().join("alice.kubeconfig");
    std::fs::write(
        &alice,
        cluster.kubeconfig_for("alice", Some("dev")).unwrap(),
    )
    .unwrap();
    let seen = python_probe(&["--kubeconfig", alice.to_str().unwrap()]).await;
    assert_eq!(seen["whoami"]["value"]["username"], "alice", "{seen:?}");
    assert_eq!(
        seen["whoami"]["value"]["groups"],
        json!(["dev", "system:authenticated"])
    );
    assert_eq!(
        seen["list_configmaps"]["value"],
        json!(["from-python", "settings"]),
        "{seen:?}"
    );
    assert_eq!(seen["create_configmap"]["status"], 403, "{seen:?}");
    assert_eq!(
        seen["create_configmap"]["message"],
        "configmaps is forbidden: User \"alice\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    assert_eq!(seen["list_secrets"]["status"], 403, "{seen:?}");

    let seen = python_probe(&["--server", &server, "--ca", ca]).await;
    for call in [
        "whoami",
        "list_configmaps",
        "create_configmap",
        "list_secrets",
    ] {
        assert_eq!(seen[call]["status"], 401, "anonymous {call}: {seen:?}");
    }
    cluster.stop().await;
}
