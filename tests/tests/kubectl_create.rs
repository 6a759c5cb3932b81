//! kubectl's generator commands (`create namespace|configmap|secret|deployment|service|job`,
//! `run`, `expose`, `scale`) against the apiserver, each object read back through kube-rs.
//!
//! kubectl 1.31 and older send every one of these objects as JSON. From 1.32 on, the
//! `create <kind>` commands send Kubernetes protobuf, which skiff refuses with a 415 that says
//! how to send JSON instead; with those versions the test checks that 415 and then creates
//! the same objects the way the message suggests (`--dry-run=client -o yaml | kubectl create
//! -f -`). `run`, `expose` and `scale` send JSON (or a JSON patch) in every version.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};
use skiff_testkit::{KubectlOutput, TestCluster};

const IMAGE: &str = "skiff.local/busybox:latest";

/// How the objects of `kubectl create <kind>` reach the apiserver.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Route {
    /// The command itself sends the object.
    Direct,
    /// The command prints the object and `kubectl create -f -` sends it as JSON.
    ViaManifest,
}

fn installed(path: &str) -> Option<PathBuf> {
    let p = PathBuf::from(path);
    p.is_file().then_some(p)
}

/// The client's minor version, from `kubectl version --client -o json`.
fn client_minor(kubectl: &Path) -> u32 {
    let out = std::process::Command::new(kubectl)
        .args(["version", "--client", "-o", "json"])
        .output()
        .expect("running kubectl version");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("version JSON");
    v["clientVersion"]["minor"]
        .as_str()
        .and_then(|m| m.trim_end_matches('+').parse().ok())
        .unwrap_or_else(|| panic!("no client minor version in {v}"))
}

/// kubectl against one cluster, with `create <kind>` objects sent by `route`.
struct Cli<'a> {
    cluster: &'a TestCluster,
    kubectl: &'a Path,
    route: Route,
}

impl Cli<'_> {
    async fn create(&self, args: &[&str]) -> KubectlOutput {
        match self.route {
            Route::Direct => self.cluster.kubectl(self.kubectl, args).await,
            Route::ViaManifest => {
                // Flags go right after `create`: anything after a `--` is the container's command.
                let mut printed = vec![args[0], "--dry-run=client", "-o", "yaml"];
                printed.extend_from_slice(&args[1..]);
                let manifest = self
                    .cluster
                    .kubectl(self.kubectl, &printed)
                    .await
                    .ok()
                    .stdout;
                self.cluster
                    .kubectl_with_stdin(self.kubectl, &["create", "-f", "-"], Some(&manifest))
                    .await
            }
        }
    }
}

async fn generator_commands(cluster: &TestCluster, kubectl: &Path, route: Route) {
    let cli = Cli {
        cluster,
        kubectl,
        route,
    };
    let client = cluster.client();

    let out = cli.create(&["create", "namespace", "team-a"]).await.ok();
    assert!(out.stdout.contains("namespace/team-a created"), "{out:?}");
    let ns = Api::<Namespace>::all(client.clone())
        .get("team-a")
        .await
        .unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    assert_eq!(
        ns.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
        "team-a"
    );

    // An empty value must stay an empty value, not vanish.
    cli.create(&[
        "create",
        "configmap",
        "app-config",
        "-n",
        "team-a",
        "--from-literal=mode=fast",
        "--from-literal=empty=",
    ])
    .await
    .ok();
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "team-a")
        .get("app-config")
        .await
        .unwrap();
    let data = cm.data.unwrap();
    assert_eq!(data.len(), 2, "{data:?}");
    assert_eq!(data["mode"], "fast");
    assert_eq!(data["empty"], "");

    cli.create(&[
        "create",
        "secret",
        "generic",
        "app-secret",
        "--from-literal=password=s3cr3t",
        "--from-literal=token=a:b/c+d==",
    ])
    .await
    .ok();
    let secret = Api::<Secret>::namespaced(client.clone(), "default")
        .get("app-secret")
        .await
        .unwrap();
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let data = secret.data.unwrap();
    assert_eq!(data["password"].0, b"s3cr3t");
    assert_eq!(data["token"].0, b"a:b/c+d==");

    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    cli.create(&[
        "create",
        "deployment",
        "web",
        &format!("--image={IMAGE}"),
        "--replicas=3",
        "--port=8080",
    ])
    .await
    .ok();
    let web = deps.get("web").await.unwrap();
    let spec = web.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(
        spec.selector.match_labels.unwrap()["app"],
        "web",
        "selector"
    );
    assert_eq!(
        spec.template.metadata.unwrap().labels.unwrap()["app"],
        "web"
    );
    let pod_spec = spec.template.spec.unwrap();
    let c = &pod_spec.containers[0];
    assert_eq!(c.name, "busybox");
    assert_eq!(c.image.as_deref(), Some(IMAGE));
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 8080);
    // Defaulting ran as for any other create.
    assert_eq!(
        spec.strategy.unwrap().type_.as_deref(),
        Some("RollingUpdate")
    );
    assert_eq!(pod_spec.restart_policy.as_deref(), Some("Always"));

    // An explicit zero is kept, not replaced by the default of 1.
    cli.create(&[
        "create",
        "deployment",
        "idle",
        &format!("--image={IMAGE}"),
        "--replicas=0",
    ])
    .await
    .ok();
    assert_eq!(
        deps.get("idle").await.unwrap().spec.unwrap().replicas,
        Some(0)
    );

    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    cli.create(&["create", "service", "clusterip", "web", "--tcp=80:8080"])
        .await
        .ok();
    let spec = svcs.get("web").await.unwrap().spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.selector.unwrap()["app"], "web");
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.name.as_deref(), Some("80-8080"));
    assert_eq!(port.port, 80);
    assert_eq!(port.target_port, Some(IntOrString::Int(8080)));
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    let ip = spec.cluster_ip.unwrap_or_default();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "clusterIP {ip:?}");

    cli.create(&[
        "create",
        "job",
        "once",
        &format!("--image={IMAGE}"),
        "--",
        "/bin/true",
    ])
    .await
    .ok();
    let job = Api::<Job>::namespaced(client.clone(), "default")
        .get("once")
        .await
        .unwrap();
    let pod_spec = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod_spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(
        pod_spec.containers[0].command.as_deref(),
        Some(&["/bin/true".to_string()][..])
    );

    cluster
        .kubectl(
            kubectl,
            &[
                "run",
                "cache",
                &format!("--image={IMAGE}"),
                "--labels=tier=cache",
                "--port=6379",
            ],
        )
        .await
        .ok();
    let pod = Api::<Pod>::namespaced(client.clone(), "default")
        .get("cache")
        .await
        .unwrap();
    assert_eq!(pod.metadata.labels.unwrap()["tier"], "cache");
    let c = &pod.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some(IMAGE));
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 6379);

    cluster
        .kubectl(
            kubectl,
            &[
                "expose",
                "deployment",
                "web",
                "--name=web-alt",
                "--port=81",
                "--target-port=8080",
            ],
        )
        .await
        .ok();
    let spec = svcs.get("web-alt").await.unwrap().spec.unwrap();
    assert_eq!(spec.selector.unwrap()["app"], "web");
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.port, 81);
    assert_eq!(port.target_port, Some(IntOrString::Int(8080)));

    cluster
        .kubectl(kubectl, &["scale", "deployment", "web", "--replicas=1"])
        .await
        .ok();
    assert_eq!(
        deps.get("web").await.unwrap().spec.unwrap().replicas,
        Some(1)
    );
}

/// An invalid object is refused with the very Status message the JSON path gives for the same
/// object, and nothing is written.
async fn invalid_name(cluster: &TestCluster, kubectl: &Path, route: Route) {
    let cli = Cli {
        cluster,
        kubectl,
        route,
    };
    let args = ["create", "deployment", "BAD_NAME", "--image=busybox"];
    let out = cli.create(&args).await;
    assert!(!out.success, "{out:?}");

    // The object kubectl built, posted as JSON by kube-rs.
    let printed = cluster
        .kubectl(
            kubectl,
            &[
                args[0],
                "--dry-run=client",
                "-o",
                "json",
                args[1],
                args[2],
                args[3],
            ],
        )
        .await
        .ok();
    let object: Deployment = serde_json::from_str(&printed.stdout).unwrap();
    let deps: Api<Deployment> = Api::namespaced(cluster.client(), "default");
    let err = deps
        .create(&PostParams::default(), &object)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected a Status, got {err:?}")
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status
            .message
            .contains("metadata.name: Invalid value: \"BAD_NAME\""),
        "{status:?}"
    );
    // `kubectl create -f` words the head of an Invalid error itself ("The Deployment ... is
    // invalid"); the causes after it are the server's own.
    let (_, causes) = status.message.split_once(" is invalid: ").unwrap();
    assert!(
        out.stderr.contains(causes),
        "kubectl said {:?}, the JSON path {:?}",
        out.stderr,
        status.message
    );
    assert!(deps.get_opt("BAD_NAME").await.unwrap().is_none());
}

/// The 415 for a protobuf body names the media type and says how to send JSON.
async fn protobuf_body_is_refused_clearly(cluster: &TestCluster, kubectl: &Path) {
    let out = cluster
        .kubectl(
            kubectl,
            &["create", "configmap", "pb", "--from-literal=a=b"],
        )
        .await;
    assert!(!out.success, "{out:?}");
    assert!(
        out.stderr.contains("application/vnd.kubernetes.protobuf"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("--dry-run=client -o yaml and pipe the output to kubectl create -f -"),
        "{}",
        out.stderr
    );
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    assert!(cms.get_opt("pb").await.unwrap().is_none());
}

async fn suite(kubectl: &Path) {
    let cluster = TestCluster::start().await.unwrap();
    let route = if client_minor(kubectl) >= 32 {
        protobuf_body_is_refused_clearly(&cluster, kubectl).await;
        Route::ViaManifest
    } else {
        Route::Direct
    };
    generator_commands(&cluster, kubectl, route).await;
    invalid_name(&cluster, kubectl, route).await;
    cluster.stop().await;
}

#[tokio::test]
async fn generator_commands_with_the_default_kubectl() {
    let kubectl = installed("/usr/bin/kubectl").expect("kubectl is installed");
    suite(&kubectl).await;
}

#[tokio::test]
async fn generator_commands_with_kubectl_1_32() {
    match installed("/usr/lib/google-cloud-sdk/bin/kubectl.1.32") {
        Some(k) => suite(&k).await,
        None => eprintln!("kubectl 1.32 is not installed; nothing to check"),
    }
}

#[tokio::test]
async fn generator_commands_with_kubectl_1_27() {
    match installed("/usr/lib/google-cloud-sdk/bin/kubectl.1.27") {
        Some(k) => suite(&k).await,
        None => eprintln!("kubectl 1.27 is not installed; nothing to check"),
    }
}
