//! What security costs: create and get latency and throughput against a plain-HTTP apiserver
//! with no authentication (the test-only mode, the floor), and against the default secured one
//! (TLS, client certificates, RBAC) as the cluster admin (`system:masters`, decided before
//! RBAC) and as a user whose only right is a RoleBinding to `edit`, among thousands of other
//! users' bindings, so every request goes through the RBAC authorizer.
//!
//! Run with `make bench` (or `cargo bench -p skiff-testkit --bench security`); the results
//! replace the security section of docs/benchmarks.md.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, PostParams};
use serde_json::json;
use skiff_testkit::bench::{drive, ms, Stats};
use skiff_testkit::TestCluster;

const OPS: usize = 2000;
const LEVELS: [usize; 2] = [8, 64];
/// Other users' bindings in place while the RBAC user is measured.
const OTHER_ROLE_BINDINGS: usize = 2000;
const OTHER_CLUSTER_ROLE_BINDINGS: usize = 500;

fn cm(name: String) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .expect("valid configmap")
}

async fn namespace(admin: &kube::Client, name: &str) -> anyhow::Result<()> {
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}}))?,
        )
        .await?;
    Ok(())
}

/// Create then get `OPS` configmaps in `ns` with `clients` concurrent clients.
async fn measure(client: &kube::Client, ns: &str, clients: usize) -> (Stats, Stats) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let creates = api.clone();
    let create = drive(clients, OPS, move |i| {
        let api = creates.clone();
        async move {
            api.create(&PostParams::default(), &cm(format!("cm-{i}")))
                .await
                .expect("create");
        }
    })
    .await;
    let get = drive(clients, OPS, move |i| {
        let api = api.clone();
        async move {
            api.get(&format!("cm-{i}")).await.expect("get");
        }
    })
    .await;
    (create, get)
}

/// Bindings of other users: in the benchmark's namespaces and cluster-wide.
async fn other_users_bindings(admin: &kube::Client, namespaces: &[String]) -> anyhow::Result<()> {
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    drive(16, OTHER_CLUSTER_ROLE_BINDINGS, move |i| {
        let api = cluster_bindings.clone();
        async move {
            let b: ClusterRoleBinding = serde_json::from_value(json!({
                "metadata": {"name": format!("other-{i}")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("other-user-{i}")}],
            }))
            .expect("valid binding");
            api.create(&PostParams::default(), &b).await.expect("create");
        }
    })
    .await;
    let admin = admin.clone();
    let namespaces = namespaces.to_vec();
    drive(16, OTHER_ROLE_BINDINGS, move |i| {
        let api: Api<RoleBinding> =
            Api::namespaced(admin.clone(), &namespaces[i % namespaces.len()]);
        async move {
            let b: RoleBinding = serde_json::from_value(json!({
                "metadata": {"name": format!("other-{i}")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("other-user-{i}")}],
            }))
            .expect("valid binding");
            api.create(&PostParams::default(), &b).await.expect("create");
        }
    })
    .await;
    Ok(())
}

fn cells(s: &Stats) -> String {
    format!("{} / {} / {:.0}", ms(s.p50), ms(s.p99), s.per_sec)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    skiff_testkit::bench::raise_fd_limit();
    // (configuration, clients, create, get)
    let mut results: Vec<(&str, usize, Stats, Stats)> = Vec::new();

    // Both clusters run side by side and the configurations alternate at each level, so the
    // machine's state (warm caches, etcd's file sizes) favours none of them.
    let plain = TestCluster::start_with(|config| {
        config.security = skiff_apiserver::Security::InsecurePlainHttpForTesting;
    })
    .await?;
    let secure = TestCluster::start().await?;
    let anyone = plain.client();
    let admin = secure.client();
    let user_namespaces: Vec<String> = LEVELS.iter().map(|c| format!("rbac-{c}")).collect();
    for clients in LEVELS {
        namespace(&anyone, &format!("plain-{clients}")).await?;
        namespace(&admin, &format!("admin-{clients}")).await?;
    }
    for ns in &user_namespaces {
        namespace(&admin, ns).await?;
    }
    other_users_bindings(&admin, &user_namespaces).await?;
    for ns in &user_namespaces {
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "bench-edit"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bench-user"}],
        }))?;
        Api::<RoleBinding>::namespaced(admin.clone(), ns)
            .create(&PostParams::default(), &binding)
            .await?;
    }
    let user = secure.client_as("bench-user", None).await?;
    // The bindings reach the authorizer through the watch caches: wait until they have.
    let probe: Api<ConfigMap> = Api::namespaced(user.clone(), &user_namespaces[1]);
    skiff_testkit::wait_for(
        "bench-user's binding takes effect",
        std::time::Duration::from_secs(30),
        || {
            let probe = probe.clone();
            async move { probe.list(&Default::default()).await.ok() }
        },
    )
    .await;
    for (clients, user_ns) in LEVELS.into_iter().zip(&user_namespaces) {
        let (create, get) = measure(&anyone, &format!("plain-{clients}"), clients).await;
        results.push(("plain HTTP, no authn/authz (floor)", clients, create, get));
        let (create, get) = measure(&admin, &format!("admin-{clients}"), clients).await;
        results.push(("TLS, client cert, system:masters", clients, create, get));
        let (create, get) = measure(&user, user_ns, clients).await;
        results.push((
            "TLS, client cert, RBAC (edit binding)",
            clients,
            create,
            get,
        ));
    }
    plain.stop().await;
    secure.stop().await;

    let floor = |clients: usize| {
        results
            .iter()
            .find(|r| r.1 == clients)
            .map(|r| (r.2.per_sec, r.3.per_sec))
            .expect("a floor row per level")
    };
    let rows: Vec<String> = results
        .iter()
        .map(|(config, clients, create, get)| {
            let (create_floor, get_floor) = floor(*clients);
            format!(
                "| {config} | {clients} | {} | {} | {:.2} | {:.2} |",
                cells(create),
                cells(get),
                create.per_sec / create_floor,
                get.per_sec / get_floor,
            )
        })
        .collect();
    let section = format!(
        "<!-- security-bench:start -->\n## security: TLS and RBAC against plain HTTP\n\n\
Command: `make bench` (`cargo bench -p skiff-testkit --bench security`), release build, etcd 3.4 \
(Debian) on loopback in a temp dir, apiserver in-process, kube-rs client (one connection pool \
per client, TLS sessions reused as clients do); 2-core VM.\n\n\
Cells are p50 ms / p99 ms / operations per second, {OPS} configmap creates then {OPS} gets per \
row. The floor is the test-only plain-HTTP mode (no authentication, no authorization) of the \
same run; ratios are throughput over the floor's at the same concurrency. The RBAC user holds \
one RoleBinding to `edit` while {OTHER_ROLE_BINDINGS} RoleBindings and \
{OTHER_CLUSTER_ROLE_BINDINGS} ClusterRoleBindings of other users are in place.\n\n\
| configuration | clients | create | get | create ratio | get ratio |\n\
|---|---|---|---|---|---|\n{}\n\
<!-- security-bench:end -->\n",
        rows.join("\n"),
    );
    println!("{section}");
    skiff_testkit::bench::write_section("security", &section)?;
    Ok(())
}
