//! The agent's image pulls (anonymous, with imagePullSecrets against htpasswd auth, over HTTPS
//! with a CA from the certs dir), pull policies, OOM reporting and `kubectl logs`, against a
//! real containerd, a real apiserver + etcd and Debian's `docker-registry` on 127.0.0.1 (each
//! started here in its own temp dir and stopped by PID). Requires root (containerd, runc,
//! overlayfs).
//!
//! Images are the busybox OCI layout the harness builds, pushed to the registry with
//! `oci-client` (re-exported by the agent) exactly as they are in the layout, so the digests the
//! agent reports can be compared with what was pushed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

use futures::StreamExt;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod, Secret};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde_json::{json, Value};
use skiff_agent::images::registry::oci_client::secrets::RegistryAuth;
use skiff_agent::images::registry::oci_client::Reference;
use skiff_agent::images::registry::Registry;
use skiff_testkit::containerd::{
    create_bound_pod, running_as_root, AgentRun, ContainerdProc, TestNet, IMAGE,
};
use skiff_testkit::{free_port, wait_for, ControllersRun, TestCluster};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};

/// How the test registry is reached.
#[derive(Clone, Copy)]
enum Access {
    /// Plain HTTP, anonymous.
    Plain,
    /// Plain HTTP with Basic auth checked against an htpasswd file (bcrypt, made by Debian's
    /// `htpasswd -B`) holding this user and password.
    Htpasswd(&'static str, &'static str),
    /// HTTPS with a certificate for 127.0.0.1 signed by a throwaway CA (made with the openssl
    /// CLI), anonymous.
    Tls,
    /// Plain HTTP with the registry's `token` auth: clients get a bearer token from a
    /// [`TokenServer`] with this user and password.
    Token(&'static str, &'static str),
}

/// The token server of the registry's `auth: token` scheme (the Docker registry token
/// protocol), on 127.0.0.1: `GET /token` with Basic credentials answers a JWT signed (RS256,
/// by the openssl CLI) with a key whose certificate the registry trusts, granting pull and push
/// on [`TOKEN_REPOSITORY`]; other credentials, or none, get 401. It counts the tokens it issued.
/// Its task is aborted on drop.
struct TokenServer {
    port: u16,
    issued: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// The repository a [`TokenServer`] grants access to.
const TOKEN_REPOSITORY: &str = "private/busybox";
const TOKEN_ISSUER: &str = "skiff-test-issuer";
const TOKEN_SERVICE: &str = "skiff-test-registry";

impl TokenServer {
    /// Serve tokens signed with `dir/token.key` (whose self-signed certificate `dir/token.crt`
    /// the registry is given as its root bundle).
    async fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let run = |args: &[&str]| openssl(dir, args);
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "token.key",
            "-out",
            "token.crt",
            "-days",
            "1",
            "-subj",
            "/CN=skiff test token issuer",
        ]);
        let der = run(&["x509", "-in", "token.crt", "-outform", "DER"]);
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [STANDARD.encode(der)]});
        let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let issued = Arc::new(AtomicUsize::new(0));
        let (key, user) = (dir.join("token.key"), user.to_string());
        let counter = issued.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (key, user, header, expected, counter) = (
                    key.clone(),
                    user.clone(),
                    header.clone(),
                    expected.clone(),
                    counter.clone(),
                );
                tokio::spawn(async move {
                    let _ = answer_token_request(stream, &key, &user, &header, &expected, &counter)
                        .await;
                });
            }
        });
        TokenServer { port, issued, task }
    }

    fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request to the [`TokenServer`]: a signed token for the right credentials, else 401.
async fn answer_token_request(
    mut stream: tokio::net::TcpStream,
    key: &Path,
    user: &str,
    header: &Value,
    expected_auth: &str,
    issued: &AtomicUsize,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let authorized = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("authorization") && value.trim() == expected_auth
        })
    });
    let (status, body) = if authorized {
        let now = Timestamp::now().as_second();
        let claims = json!({
            "iss": TOKEN_ISSUER, "sub": user, "aud": TOKEN_SERVICE,
            "exp": now + 300, "nbf": now - 30, "iat": now,
            "jti": format!("skiff-test-{}", issued.load(Ordering::SeqCst)),
            "access": [{"type": "repository", "name": TOKEN_REPOSITORY, "actions": ["pull", "push"]}],
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut openssl = tokio::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = openssl.stdin.take().expect("piped");
        stdin.write_all(signing_input.as_bytes()).await?;
        drop(stdin);
        let signed = openssl.wait_with_output().await?;
        assert!(signed.status.success(), "openssl dgst -sign: {signed:?}");
        let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&signed.stdout));
        issued.fetch_add(1, Ordering::SeqCst);
        (
            "200 OK",
            json!({"token": token, "expires_in": 300}).to_string(),
        )
    } else {
        let error = json!({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]});
        ("401 Unauthorized", error.to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await
}

/// Debian's `docker-registry` on 127.0.0.1 serving from a temp dir; killed by PID and reaped on
/// drop.
struct DockerRegistry {
    child: Child,
    dir: TempDir,
    port: u16,
    access: Access,
    /// With [`Access::Token`].
    token_server: Option<TokenServer>,
}

impl DockerRegistry {
    async fn start(access: Access) -> DockerRegistry {
        let dir = tempfile::Builder::new()
            .prefix("skiff-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: info\n\
             storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            root = dir.path().join("storage").display(),
        );
        let mut token_server = None;
        match access {
            Access::Plain => {}
            Access::Htpasswd(user, password) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("running htpasswd (Debian package apache2-utils)");
                assert!(out.status.success(), "htpasswd: {out:?}");
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, &out.stdout).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                    file.display()
                ));
            }
            Access::Token(user, password) => {
                let server = TokenServer::start(dir.path(), user, password).await;
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    \
                     issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    server.realm(),
                    dir.path().join("token.crt").display()
                ));
                token_server = Some(server);
            }
            Access::Tls => {
                make_certificates(dir.path());
                config.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    dir.path().join("server.crt").display(),
                    dir.path().join("server.key").display()
                ));
            }
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry (Debian package docker-registry)");
        let mut registry = DockerRegistry {
            child,
            dir,
            port,
            access,
            token_server,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited ({status}): {}", registry.log());
            }
            // Plain HTTP must answer /v2/ (200, or 401 asking for credentials); over TLS an
            // accepted connection means it serves (Go listens and serves in one step).
            let up = match access {
                Access::Tls => tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok(),
                _ => matches!(
                    skiff_testkit::containerd::http_get_at("127.0.0.1", port, "/v2/").await,
                    Some((200 | 401, _))
                ),
            };
            if up {
                return registry;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "docker-registry did not answer /v2/: {}",
                registry.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Tokens the registry's token server issued (0 without one).
    fn tokens_issued(&self) -> usize {
        self.token_server.as_ref().map_or(0, TokenServer::issued)
    }

    fn tls(&self) -> bool {
        matches!(self.access, Access::Tls)
    }

    /// The PEM of the CA that signed the registry's certificate (TLS only).
    fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("ca.crt")).expect("a TLS registry has a CA")
    }

    /// A client that may push: the agent's registry client, over plain HTTP or trusting the
    /// registry's CA, with the registry's credentials stored for it.
    async fn pusher(&self) -> skiff_agent::images::registry::oci_client::Client {
        let (insecure, certs) = if self.tls() {
            let certs = self.dir.path().join("pusher-certs");
            std::fs::create_dir_all(certs.join(self.host())).unwrap();
            std::fs::write(certs.join(self.host()).join("ca.crt"), self.ca_pem()).unwrap();
            (Vec::new(), Some(certs))
        } else {
            (vec![self.host()], None)
        };
        let client = Registry::new(&insecure, certs)
            .client_for(&self.host())
            .unwrap();
        let auth = match self.access {
            Access::Htpasswd(user, password) | Access::Token(user, password) => {
                RegistryAuth::Basic(user.into(), password.into())
            }
            _ => RegistryAuth::Anonymous,
        };
        client.store_auth_if_needed(&self.host(), &auth).await;
        client
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Run the openssl CLI in `dir` (asserting it succeeded); its stdout.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (Debian package openssl)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    out.stdout
}

/// A throwaway CA (`ca.crt`, `ca.key`) and a certificate for 127.0.0.1 it signed
/// (`server.crt`, `server.key`) in `dir`, made with the openssl CLI: P-256 keys, a day valid.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| openssl(dir, args);
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=skiff test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "2",
        "-days",
        "1",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
}

/// Push the busybox image to `reference` at `registry` as it is in the layout (so the manifest
/// digest is the layout's), or with `label` added to its config (another image, another
/// digest). Returns the manifest digest pushed.
async fn push_busybox(
    registry: &DockerRegistry,
    layout: &Path,
    reference: &str,
    label: Option<&str>,
) -> String {
    let (index, blobs) = skiff_agent::images::layout::read_layout_tar(layout).unwrap();
    let manifest_digest = index.manifests()[0].digest().to_string();
    let mut manifest: Value = serde_json::from_slice(&blobs[&manifest_digest]).unwrap();
    let mut config = blobs[manifest["config"]["digest"].as_str().unwrap()].clone();
    if let Some(label) = label {
        let mut c: Value = serde_json::from_slice(&config).unwrap();
        c["config"]["Labels"] = json!({ "skiff.test/variant": label });
        config = serde_json::to_vec(&c).unwrap();
        manifest["config"]["digest"] = json!(skiff_agent::images::sha256_digest(&config));
        manifest["config"]["size"] = json!(config.len());
    }
    let manifest_bytes = if label.is_some() {
        serde_json::to_vec(&manifest).unwrap()
    } else {
        blobs[&manifest_digest].clone()
    };
    let target: Reference = reference.parse().unwrap();
    let client = registry.pusher().await;
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        client
            .push_blob(&target, blobs[digest].clone(), digest)
            .await
            .unwrap();
    }
    client
        .push_blob(
            &target,
            config.clone(),
            &skiff_agent::images::sha256_digest(&config),
        )
        .await
        .unwrap();
    client
        .push_manifest_raw(
            &target,
            manifest_bytes.clone(),
            http::HeaderValue::from_static(skiff_agent::images::MEDIA_MANIFEST),
        )
        .await
        .unwrap();
    skiff_agent::images::sha256_digest(&manifest_bytes)
}

/// A cluster, a containerd (without any image), optionally a registry, and an agent that pulls
/// from the registry over plain HTTP, or over HTTPS when it serves TLS (trusting the CAs in
/// `certs_dir`, empty at first).
///
/// When a test fails, the fields' drops tear it down, in this order: the agent is aborted,
/// containerd removes the containers and exits, the pod network goes, then the rest.
struct Env {
    agent: Option<AgentRun>,
    /// The default ServiceAccount and kube-root-ca.crt every pod's token volume needs.
    controllers: Option<ControllersRun>,
    containerd: ContainerdProc,
    net: NetGuard,
    root: TempDir,
    cluster: TestCluster,
    registry: Option<DockerRegistry>,
    node: String,
    /// The busybox OCI layout tarball.
    layout: std::path::PathBuf,
    /// The agent's `--registry-certs-dir`.
    certs_dir: std::path::PathBuf,
}

/// The test's pod network (sandboxes, bridge, FORWARD rules), removed on drop unless
/// [`NetGuard::cleanup`] removed it already, so a failed test leaves none behind.
struct NetGuard {
    net: TestNet,
    root: std::path::PathBuf,
    done: bool,
}

impl NetGuard {
    async fn cleanup(&mut self) {
        self.net.cleanup(&self.root).await;
        self.done = true;
    }
}

impl Drop for NetGuard {
    fn drop(&mut self) {
        if !self.done {
            let (net, root) = (self.net.clone(), self.root.clone());
            skiff_testkit::block_on_side(async move { net.cleanup(&root).await });
        }
    }
}

impl Env {
    /// `net_index` (unique per test in this file) picks the test's bridge and subnet;
    /// `log_writer`: containers log through the skiff-agent binary's timestamping logger, as
    /// with the real agent (the binary must be built: `make test` builds it first).
    async fn start(node: &str, net_index: u8, registry: Option<Access>, log_writer: bool) -> Env {
        let net = TestNet::new(net_index);
        let cluster = TestCluster::start().await.unwrap();
        let containerd = ContainerdProc::start().await;
        let registry = match registry {
            Some(access) => Some(DockerRegistry::start(access).await),
            None => None,
        };
        let root = tempfile::Builder::new()
            .prefix("skiff-agent-")
            .tempdir()
            .unwrap();
        let layout = skiff_testkit::containerd::busybox_layout(root.path());
        let mut config = AgentRun::config(
            node,
            &containerd,
            skiff_testkit::containerd::NS,
            root.path(),
            &net,
        );
        // On every address, so the apiserver's pods/log proxy reaches it at the node's
        // InternalIP (port 0: any free one, advertised in the Node status).
        config.bind_address = std::net::Ipv4Addr::UNSPECIFIED.into();
        config.insecure_registries = registry
            .iter()
            .filter(|r| !r.tls())
            .map(DockerRegistry::host)
            .collect();
        let certs_dir = root.path().join("certs.d");
        config.registry_certs_dir = Some(certs_dir.clone());
        if log_writer {
            config.log_writer = Some(agent_binary());
        }
        let agent = AgentRun::spawn(&cluster, config);
        let controllers = Some(cluster.start_pod_identity_controllers());
        let env = Env {
            controllers,
            cluster,
            containerd,
            registry,
            agent: Some(agent),
            node: node.to_string(),
            net: NetGuard {
                net,
                root: root.path().to_path_buf(),
                done: false,
            },
            root,
            layout,
            certs_dir,
        };
        let nodes = Api::<Node>::all(env.cluster.client());
        wait_for("node Ready", Duration::from_secs(30), || {
            let nodes = nodes.clone();
            let name = env.node.clone();
            async move {
                let n = nodes.get_opt(&name).await.ok()??;
                n.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                    .then_some(())
            }
        })
        .await;
        env
    }

    fn registry(&self) -> &DockerRegistry {
        self.registry.as_ref().expect("started with a registry")
    }

    fn registry_host(&self) -> String {
        self.registry().host()
    }

    /// Push busybox to `reference` at the registry (see [`push_busybox`]).
    async fn push(&self, reference: &str, label: Option<&str>) -> String {
        push_busybox(self.registry(), &self.layout, reference, label).await
    }

    /// Import the busybox layout into the agent's containerd namespace under `name`.
    async fn import(&self, name: &str) {
        self.containerd
            .import_busybox(skiff_testkit::containerd::NS, self.root.path(), &[name])
            .await;
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.cluster.client(), "default")
    }

    async fn create_pod(&self, name: &str, spec: Value) -> Pod {
        create_bound_pod(self.cluster.client(), &self.node, name, spec).await
    }

    /// Wait until the pod's first container status satisfies `check`.
    async fn wait_status<F>(&self, pod: &str, what: &str, timeout: Duration, check: F) -> Pod
    where
        F: Fn(&ContainerStatus) -> bool,
    {
        let pods = self.pods();
        let check = &check;
        wait_for(&format!("pod {pod}: {what}"), timeout, || {
            let pods = pods.clone();
            async move {
                let p = pods.get_opt(pod).await.ok()??;
                let ok = p
                    .status
                    .as_ref()?
                    .container_statuses
                    .as_ref()?
                    .first()
                    .is_some_and(check);
                ok.then_some(p)
            }
        })
        .await
    }

    /// Create pod `name` and follow it, through a watch opened before it is created (the
    /// ErrImagePull status may last a single pass of the agent), until ImagePullBackOff. Returns
    /// the pod then and the message of the ErrImagePull it went through, after checking that
    /// the ImagePullBackOff message is the kubelet's: `Back-off pulling image "IMAGE":
    /// ErrImagePull: <that message>`.
    async fn until_pull_back_off(&self, name: &str, spec: Value) -> (Pod, String) {
        let image = spec["containers"][0]["image"].as_str().unwrap().to_string();
        let watch = WatchParams::default().fields(&format!("metadata.name={name}"));
        let mut events = self.pods().watch(&watch, "0").await.unwrap().boxed();
        self.create_pod(name, spec).await;
        let mut seen: Vec<(String, String)> = Vec::new();
        let reached = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(event) = events.next().await {
                let WatchEvent::Modified(pod) = event.unwrap() else {
                    continue;
                };
                let Some(c) = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|c| c.first())
                else {
                    continue;
                };
                let reason = waiting_reason(c).unwrap_or_default().to_string();
                seen.push((reason.clone(), waiting_message(c)));
                if reason == "ImagePullBackOff" {
                    return pod;
                }
            }
            panic!("the watch ended; saw {seen:?}");
        })
        .await;
        let pod = reached.unwrap_or_else(|_| panic!("no ImagePullBackOff in 60 s; saw {seen:?}"));
        let (_, message) = seen
            .iter()
            .find(|(reason, _)| reason == "ErrImagePull")
            .unwrap_or_else(|| panic!("no ErrImagePull before ImagePullBackOff: {seen:?}"));
        assert_eq!(
            waiting_message(first(&pod)),
            format!("Back-off pulling image \"{image}\": ErrImagePull: {message}")
        );
        assert_eq!(
            pod.status.as_ref().unwrap().phase.as_deref(),
            Some("Pending")
        );
        (pod, message.clone())
    }

    async fn stop(mut self) {
        if let Some(a) = self.agent.take() {
            a.stop().await;
        }
        self.containerd.stop().await;
        self.net.cleanup().await;
        if let Some(c) = self.controllers.take() {
            c.stop().await;
        }
        self.cluster.stop().await;
    }
}

/// target/<profile>/skiff-agent, beside the directory of this test binary.
fn agent_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary is in target/<profile>/deps")
        .join("skiff-agent");
    assert!(
        bin.is_file(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; `make test` does)",
        bin.display()
    );
    bin
}

fn first(p: &Pod) -> &ContainerStatus {
    &p.status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
}

fn waiting_reason(c: &ContainerStatus) -> Option<&str> {
    c.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

fn waiting_message(c: &ContainerStatus) -> String {
    let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
    waiting.and_then(|w| w.message.clone()).unwrap_or_default()
}

fn terminated(
    c: &ContainerStatus,
) -> Option<&k8s_openapi::api::core::v1::ContainerStateTerminated> {
    c.state.as_ref()?.terminated.as_ref()
}

fn finished_ok(c: &ContainerStatus) -> bool {
    terminated(c).is_some_and(|t| t.exit_code == 0)
}

/// A pod whose container prints `text` and exits, with the given image and pull policy.
fn echo_spec(image: &str, policy: Option<&str>, text: &str) -> Value {
    let mut c =
        json!({"name": "c", "image": image, "command": ["sh", "-c", format!("echo {text}")]});
    if let Some(p) = policy {
        c["imagePullPolicy"] = json!(p);
    }
    json!({"restartPolicy": "Never", "containers": [c]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_image_is_pulled_from_the_registry_and_a_missing_tag_is_err_image_pull() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start("registry-node-a", 1, Some(Access::Plain), false).await;
    let host = env.registry_host();
    let image = format!("{host}/busybox:v1");
    let pushed = env.push(&image, None).await;
    let cd = env.containerd.client().await;
    assert!(cd.image_target(&image).await.unwrap().is_none());

    // Defaulted to IfNotPresent (a tag other than latest): pulled because it is absent.
    env.create_pod("pulled", echo_spec(&image, None, "pulled-ok"))
        .await;
    let pod = env
        .wait_status("pulled", "exited 0", Duration::from_secs(90), finished_ok)
        .await;
    assert_eq!(first(&pod).image_id, pushed);
    let target = cd
        .image_target(&image)
        .await
        .unwrap()
        .expect("the pull created the image record");
    assert_eq!(target.digest, pushed);
    // The container ran from the unpacked layers: its output is the command's.
    let resolved = cd.resolve_image(&image).await.unwrap();
    assert_eq!(resolved.id, pushed);

    // A tag the registry does not have: ErrImagePull with the registry's own error, then
    // ImagePullBackOff (in the Pending phase) while the agent waits to retry.
    let missing = format!("{host}/busybox:no-such-tag");
    let (_, message) = env
        .until_pull_back_off("missing", echo_spec(&missing, None, "never"))
        .await;
    assert!(
        message.contains("MANIFEST_UNKNOWN") && message.contains(&missing),
        "{message}"
    );
    assert!(cd.image_target(&missing).await.unwrap().is_none());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_policies_always_if_not_present_and_never() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start("registry-node-b", 2, Some(Access::Plain), false).await;
    let host = env.registry_host();
    let image = format!("{host}/busybox:moving");
    let first_digest = env.push(&image, None).await;
    let cd = env.containerd.client().await;

    env.create_pod("always-1", echo_spec(&image, Some("Always"), "one"))
        .await;
    let pod = env
        .wait_status("always-1", "exited 0", Duration::from_secs(90), finished_ok)
        .await;
    assert_eq!(first(&pod).image_id, first_digest);

    // The tag moves to another image at the registry.
    let second_digest = env.push(&image, Some("two")).await;
    assert_ne!(first_digest, second_digest);

    // IfNotPresent: the node has the tag, so the registry is not asked.
    env.create_pod(
        "if-not-present",
        echo_spec(&image, Some("IfNotPresent"), "two"),
    )
    .await;
    let pod = env
        .wait_status(
            "if-not-present",
            "exited 0",
            Duration::from_secs(60),
            finished_ok,
        )
        .await;
    assert_eq!(first(&pod).image_id, first_digest);
    assert_eq!(
        cd.image_target(&image).await.unwrap().unwrap().digest,
        first_digest
    );

    // Always: the registry is asked on start and the moved tag is pulled.
    env.create_pod("always-2", echo_spec(&image, Some("Always"), "three"))
        .await;
    let pod = env
        .wait_status("always-2", "exited 0", Duration::from_secs(90), finished_ok)
        .await;
    assert_eq!(first(&pod).image_id, second_digest);
    assert_eq!(
        cd.image_target(&image).await.unwrap().unwrap().digest,
        second_digest
    );

    // Never: an image on the node runs; an absent one is ErrImageNeverPull, never pulled even
    // though the registry has it.
    env.create_pod("never-present", echo_spec(&image, Some("Never"), "four"))
        .await;
    env.wait_status(
        "never-present",
        "exited 0",
        Duration::from_secs(60),
        finished_ok,
    )
    .await;
    let absent = format!("{host}/busybox:absent");
    env.push(&absent, None).await;
    env.create_pod("never-absent", echo_spec(&absent, Some("Never"), "five"))
        .await;
    let pod = env
        .wait_status(
            "never-absent",
            "ErrImageNeverPull",
            Duration::from_secs(60),
            |c| waiting_reason(c) == Some("ErrImageNeverPull"),
        )
        .await;
    let message = waiting_message(first(&pod));
    assert_eq!(
        message,
        format!("Container image \"{absent}\" is not present with pull policy of Never")
    );
    assert!(cd.image_target(&absent).await.unwrap().is_none());
    env.stop().await;
}

/// Create a `kubernetes.io/dockerconfigjson` Secret with these credentials for `registry`.
async fn pull_secret(env: &Env, name: &str, registry: &str, user: &str, password: &str) {
    let config = json!({"auths": {registry: {"username": user, "password": password}}});
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            ByteString(serde_json::to_vec(&config).unwrap()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(env.cluster.client(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// `echo_spec` with the pod's imagePullSecrets.
fn with_pull_secret(mut spec: Value, secret: &str) -> Value {
    spec["imagePullSecrets"] = json!([{ "name": secret }]);
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_registry_pulls_only_with_the_pods_own_pull_secret() {
    authenticated_pulls("registry-node-e", 5, Access::Htpasswd("alice", "s3cret")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_registry_pulls_with_a_bearer_token_for_the_pods_pull_secret() {
    authenticated_pulls("registry-node-g", 7, Access::Token("alice", "s3cret")).await;
}

/// A registry that wants alice's credentials (`access`, Basic or token auth): a pod with her
/// imagePullSecret pulls and runs; a pod without it, or with a wrong password, gets the
/// registry's 401 as ErrImagePull.
async fn authenticated_pulls(node: &str, net_index: u8, access: Access) {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start(node, net_index, Some(access), false).await;
    let host = env.registry_host();
    // The registry really asks for credentials.
    let (code, _) =
        skiff_testkit::containerd::http_get_at("127.0.0.1", env.registry().port, "/v2/")
            .await
            .unwrap();
    assert_eq!(code, 401);
    let image = format!("{host}/{TOKEN_REPOSITORY}:v1");
    let pushed = env.push(&image, None).await;
    pull_secret(&env, "regcred", &host, "alice", "s3cret").await;
    pull_secret(&env, "wrongcred", &host, "alice", "guess").await;
    let tokens_before = env.registry().tokens_issued();

    env.create_pod(
        "with-secret",
        with_pull_secret(echo_spec(&image, None, "authenticated"), "regcred"),
    )
    .await;
    let pod = env
        .wait_status(
            "with-secret",
            "exited 0",
            Duration::from_secs(90),
            finished_ok,
        )
        .await;
    assert_eq!(first(&pod).image_id, pushed);
    if matches!(access, Access::Token(..)) {
        // The agent traded the secret's credentials for a bearer token.
        assert!(env.registry().tokens_issued() > tokens_before);
    }

    // Another image, absent on the node, so it must be pulled. Without a secret, and with a
    // wrong password, the registry's 401 is in the ErrImagePull message: the credentials of the
    // pull just done are not reused for other pods.
    let other = format!("{host}/{TOKEN_REPOSITORY}:v2");
    env.push(&other, Some("v2")).await;
    let (_, message) = env
        .until_pull_back_off("no-secret", echo_spec(&other, None, "never"))
        .await;
    assert!(
        message.contains("401 Unauthorized") && message.contains(&other),
        "{message}"
    );
    let (_, message) = env
        .until_pull_back_off(
            "wrong-secret",
            with_pull_secret(echo_spec(&other, None, "never"), "wrongcred"),
        )
        .await;
    assert!(message.contains("401 Unauthorized"), "{message}");
    let cd = env.containerd.client().await;
    assert!(cd.image_target(&other).await.unwrap().is_none());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_registry_is_trusted_through_its_ca_in_the_certs_dir() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start("registry-node-f", 6, Some(Access::Tls), false).await;
    let host = env.registry_host();
    let image = format!("{host}/busybox:tls");
    let pushed = env.push(&image, None).await;

    // The agent's certs dir has no CA for the registry yet: the TLS handshake fails, and the
    // message names the certificate problem and where the CA would be trusted.
    let ca_path = env.certs_dir.join(&host).join("ca.crt");
    let (_, message) = env
        .until_pull_back_off("over-tls", echo_spec(&image, None, "tls-ok"))
        .await;
    assert!(
        message.contains("certificate") && message.contains(&ca_path.display().to_string()),
        "{message}"
    );

    // The CA placed where docker's and containerd's hosts keep it: the agent's next retry
    // (its back-off, no restart) pulls over HTTPS.
    std::fs::create_dir_all(ca_path.parent().unwrap()).unwrap();
    std::fs::write(&ca_path, env.registry().ca_pem()).unwrap();
    let pod = env
        .wait_status("over-tls", "exited 0", Duration::from_secs(90), finished_ok)
        .await;
    assert_eq!(first(&pod).image_id, pushed);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hog_is_reported_oom_killed() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    let env = Env::start("registry-node-c", 3, None, false).await;
    env.import(IMAGE).await;
    // The shell doubles a string until the 16Mi cgroup limit is hit; the kernel's OOM killer
    // then kills it (nothing else in the container could free memory).
    env.create_pod(
        "hog",
        json!({
            "restartPolicy": "Never",
            "containers": [{
                "name": "c", "image": IMAGE,
                "command": ["sh", "-c", "x=0123456789abcdef; while true; do x=$x$x; done"],
                "resources": {"limits": {"memory": "16Mi"}},
            }],
        }),
    )
    .await;
    let pod = env
        .wait_status("hog", "terminated", Duration::from_secs(90), |c| {
            terminated(c).is_some()
        })
        .await;
    let t = terminated(first(&pod)).unwrap();
    assert_eq!(t.reason.as_deref(), Some("OOMKilled"), "{t:?}");
    assert_eq!(t.exit_code, 137);
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Failed")
    );
    env.stop().await;
}

/// Run kubectl to completion against the cluster; its stdout (asserting it succeeded).
async fn kubectl(cluster: &TestCluster, args: &[&str]) -> String {
    let out = cluster.kubectl(Path::new("/usr/bin/kubectl"), args).await;
    assert!(out.success, "kubectl {args:?}: {}", out.stderr);
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_tail_and_follow_through_the_apiserver() {
    if !running_as_root() {
        eprintln!("skipped: needs root for containerd");
        return;
    }
    if !Path::new("/usr/bin/kubectl").exists() {
        eprintln!("skipped: needs /usr/bin/kubectl");
        return;
    }
    let env = Env::start("registry-node-d", 4, None, true).await;
    env.import(IMAGE).await;
    // Whole seconds: the apiserver's creationTimestamp has no fraction.
    let created = Timestamp::now()
        .checked_sub(SignedDuration::from_secs(1))
        .unwrap();
    env.create_pod(
        "echo",
        json!({
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": IMAGE,
                "command": ["sh", "-c", "echo first; echo second; echo third"]}],
        }),
    )
    .await;
    env.wait_status("echo", "exited 0", Duration::from_secs(60), finished_ok)
        .await;
    assert_eq!(
        kubectl(&env.cluster, &["logs", "echo"]).await,
        "first\nsecond\nthird\n"
    );
    assert_eq!(
        kubectl(&env.cluster, &["logs", "echo", "--tail=1"]).await,
        "third\n"
    );
    assert_eq!(
        kubectl(&env.cluster, &["logs", "pod/echo", "-c", "c", "--tail=2"]).await,
        "second\nthird\n"
    );
    // --timestamps: each line with the time the logger read it, RFC 3339 with nanoseconds,
    // between the pod's creation and now, in order.
    let stamped = kubectl(&env.cluster, &["logs", "echo", "--timestamps"]).await;
    let mut previous = created;
    let mut texts = Vec::new();
    for line in stamped.lines() {
        let (ts, text) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let at: Timestamp = ts
            .parse()
            .unwrap_or_else(|e| panic!("{ts:?} is not RFC 3339: {e}"));
        assert!(at >= previous && at <= Timestamp::now(), "{stamped}");
        previous = at;
        texts.push(text);
    }
    assert_eq!(texts, ["first", "second", "third"]);

    // A line every 0.2 s: `logs -f` shows lines written after it started, in order.
    env.create_pod(
        "ticker",
        json!({
            "containers": [{"name": "c", "image": IMAGE,
                "command": ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]}],
        }),
    )
    .await;
    env.wait_status("ticker", "running", Duration::from_secs(60), |c| {
        c.state.as_ref().is_some_and(|s| s.running.is_some())
    })
    .await;
    let written_before = kubectl(&env.cluster, &["logs", "ticker"])
        .await
        .lines()
        .count();
    let mut child = tokio::process::Command::new("/usr/bin/kubectl")
        .args(["logs", "-f", "ticker"])
        .env("KUBECONFIG", env.cluster.kubeconfig_path())
        .env("HOME", env.cluster.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Follow until a line that was not written yet when kubectl started.
    let mut seen: Vec<u32> = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let n = line
                .strip_prefix("tick ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            seen.push(n);
            if n as usize >= written_before + 3 {
                return;
            }
        }
    })
    .await;
    child.kill().await.unwrap();
    assert!(read.is_ok(), "kubectl logs -f stalled after {seen:?}");
    // From the first line on, every line once and in order.
    let expected: Vec<u32> = (0..seen.len() as u32).collect();
    assert_eq!(seen, expected);

    // --since-time and --since: only the lines logged from then on. Wait (on the log itself)
    // until the ticker has logged for more than 4 s, so both exclude some lines.
    let stamped = wait_for(
        "the ticker logging for over 4 s",
        Duration::from_secs(30),
        || async {
            let lines =
                parse_stamped(&kubectl(&env.cluster, &["logs", "ticker", "--timestamps"]).await);
            let span = lines.last()?.0.duration_since(lines.first()?.0);
            (span > SignedDuration::from_secs(4)).then_some(lines)
        },
    )
    .await;
    // kubectl sends whole seconds: the first second boundary after the first line.
    let since = Timestamp::from_second(stamped[0].0.as_second() + 1).unwrap();
    let from = stamped.iter().position(|(at, _)| *at >= since).unwrap();
    assert!(from > 0);
    let arg = format!("--since-time={since}");
    let got =
        parse_stamped(&kubectl(&env.cluster, &["logs", "ticker", "--timestamps", &arg]).await);
    // The ticker goes on writing: what came back starts with the same lines.
    assert!(got.len() >= stamped.len() - from, "{got:?}");
    assert_eq!(got[..stamped.len() - from], stamped[from..]);

    let asked = Timestamp::now();
    let got = parse_stamped(
        &kubectl(
            &env.cluster,
            &["logs", "ticker", "--timestamps", "--since=2s"],
        )
        .await,
    );
    let earliest = asked.checked_sub(SignedDuration::from_secs(2)).unwrap();
    assert!(!got.is_empty());
    assert!(got.iter().all(|(at, _)| *at >= earliest), "{got:?}");
    assert!(got[0].0 > stamped[0].0, "{got:?}");

    // --limit-bytes with -f: following goes past what is logged now and ends by itself once
    // that many bytes were sent.
    let logged = kubectl(&env.cluster, &["logs", "ticker"]).await;
    let limit = logged.len() + 30;
    let arg = format!("--limit-bytes={limit}");
    let followed = tokio::time::timeout(
        Duration::from_secs(30),
        kubectl(&env.cluster, &["logs", "-f", "ticker", &arg]),
    )
    .await
    .expect("kubectl logs -f --limit-bytes ends once the limit is reached");
    assert_eq!(followed.len(), limit);
    let now = kubectl(&env.cluster, &["logs", "ticker"]).await;
    assert_eq!(followed, now[..limit]);
    env.stop().await;
}

/// `kubectl logs --timestamps` output: each line's time and text.
fn parse_stamped(out: &str) -> Vec<(Timestamp, String)> {
    out.lines()
        .map(|line| {
            let (at, text) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
            let at = at
                .parse()
                .unwrap_or_else(|e| panic!("{at:?} is not RFC 3339: {e}"));
            (at, text.to_string())
        })
        .collect()
}
