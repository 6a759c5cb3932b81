//! skiff-testkit: starts the real parts a test needs in a temp dir (etcd on random ports, the
//! apiserver in-process) and stops them when dropped, by PID. Nothing is ever killed by name.

pub mod bench;
pub mod containerd;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use tempfile::TempDir;

pub use skiff_apiserver;

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port on loopback")
}

/// Wait until `check` returns `Some`, polling every 50 ms, failing after `timeout` with a
/// message naming what was awaited.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Run `fut` to completion on a fresh single-thread runtime in a scoped thread: async clean-up
/// from `Drop`, which may run on a runtime thread (where `block_on` is not allowed) while a
/// test panics. A panic in `fut` is reported and gives `None` (panicking again in a `Drop` that
/// runs during unwinding would abort the process).
pub fn block_on_side<F>(fut: F) -> Option<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        let joined = s
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("building a clean-up runtime")
                    .block_on(fut)
            })
            .join();
        if joined.is_err() {
            eprintln!("clean-up panicked (see above); continuing");
        }
        joined.ok()
    })
}

/// A child process that is killed (by its PID) and reaped when dropped.
pub struct OwnedChild {
    pub name: &'static str,
    child: Child,
}

impl OwnedChild {
    /// Take ownership of a child that was just spawned.
    pub fn new(name: &'static str, child: Child) -> OwnedChild {
        OwnedChild { name, child }
    }

    /// Whether the process has not exited yet.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM and wait up to `grace` for the process to exit, then SIGKILL.
    pub fn terminate(&mut self, grace: Duration) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on a PID we spawned and have not reaped, so it cannot have been reused.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnedChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// An etcd server on random loopback ports with its data in a temp dir.
pub struct Etcd {
    pub endpoint: String,
    process: OwnedChild,
    _dir: TempDir,
}

impl Etcd {
    pub async fn start() -> anyhow::Result<Etcd> {
        let dir = tempfile::Builder::new().prefix("skiff-etcd-").tempdir()?;
        let binary = which("etcd")
            .context("etcd is not installed: run `make deps` (Debian package etcd-server)")?;
        for _attempt in 0..5 {
            let (client_port, peer_port) = (free_port(), free_port());
            let endpoint = format!("http://127.0.0.1:{client_port}");
            let log = std::fs::File::create(dir.path().join("etcd.log"))?;
            let child = Command::new(&binary)
                .arg("--name=skiff-test")
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--listen-client-urls={endpoint}"))
                .arg(format!("--advertise-client-urls={endpoint}"))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
                ))
                .arg(format!(
                    "--initial-cluster=skiff-test=http://127.0.0.1:{peer_port}"
                ))
                .arg("--log-level=error")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting etcd")?;
            let mut process = OwnedChild {
                name: "etcd",
                child,
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(status)) = process.child.try_wait() {
                    tracing::warn!(%status, "etcd exited during start-up (port taken?); retrying");
                    break;
                }
                if etcd_client::Client::connect([endpoint.as_str()], None)
                    .await
                    .ok()
                    .is_some()
                    && etcd_ready(&endpoint).await
                {
                    return Ok(Etcd {
                        endpoint,
                        process,
                        _dir: dir,
                    });
                }
                if std::time::Instant::now() > deadline {
                    bail!(
                        "etcd did not become ready; log:\n{}",
                        std::fs::read_to_string(dir.path().join("etcd.log")).unwrap_or_default()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        bail!("etcd could not start on any free port")
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub async fn client(&self) -> anyhow::Result<etcd_client::Client> {
        Ok(etcd_client::Client::connect([self.endpoint.as_str()], None).await?)
    }
}

async fn etcd_ready(endpoint: &str) -> bool {
    match etcd_client::Client::connect([endpoint], None).await {
        Ok(mut c) => c.get("/", None).await.is_ok(),
        Err(_) => false,
    }
}

/// Find an executable on PATH (or the extra system dirs Debian uses for daemons).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// etcd plus an in-process apiserver on a random port, secured as in production (TLS, client
/// certificates, RBAC) with its cert dir in a temp dir, and an admin kubeconfig for it.
pub struct TestCluster {
    pub api: skiff_apiserver::RunningServer,
    pub etcd: Etcd,
    client_config: kube::Config,
    dir: TempDir,
}

impl TestCluster {
    pub async fn start() -> anyhow::Result<TestCluster> {
        Self::start_with(|_| {}).await
    }

    /// Start with a tweaked apiserver configuration.
    pub async fn start_with(
        tweak: impl FnOnce(&mut skiff_apiserver::Config),
    ) -> anyhow::Result<TestCluster> {
        init_tracing();
        let etcd = Etcd::start().await?;
        let dir = tempfile::Builder::new()
            .prefix("skiff-cluster-")
            .tempdir()?;
        let mut config = skiff_apiserver::Config {
            etcd_servers: vec![etcd.endpoint.clone()],
            port: 0,
            compaction_interval: None,
            security: skiff_apiserver::Security::Secure(skiff_apiserver::SecureServing {
                cert_dir: dir.path().join("pki"),
                ..Default::default()
            }),
            // Secrets encrypted at rest, as `make up` runs it.
            encryption_provider_config: Some(dir.path().join("encryption-config.yaml")),
            ..Default::default()
        };
        tweak(&mut config);
        let api = skiff_apiserver::start(config).await?;
        let kubeconfig_path = dir.path().join("kubeconfig");
        match &api.cert_dir {
            Some(cert_dir) => {
                std::fs::copy(cert_dir.join("admin.kubeconfig"), &kubeconfig_path)?;
            }
            None => std::fs::write(&kubeconfig_path, insecure_kubeconfig(&api.url()))?,
        }
        let client_config = client_config(&kubeconfig_path).await?;
        Ok(TestCluster {
            api,
            etcd,
            client_config,
            dir,
        })
    }

    /// A kubeconfig for `user` in `group`, with a client certificate from the cluster CA.
    pub fn kubeconfig_for(&self, user: &str, group: Option<&str>) -> anyhow::Result<String> {
        let cert_dir = self
            .api
            .cert_dir
            .as_ref()
            .context("the cluster runs without TLS, so it has no CA")?;
        let pki = skiff_pki::ClusterPki::ensure(cert_dir, &Default::default(), &self.url())?;
        Ok(pki.kubeconfig_for(&self.url(), user, group)?)
    }

    /// A kube-rs client acting as `user` in `group` (a client certificate from the CA).
    pub async fn client_as(&self, user: &str, group: Option<&str>) -> anyhow::Result<kube::Client> {
        let path = self
            .dir
            .path()
            .join(format!("kubeconfig-{}", user.replace(':', "_")));
        std::fs::write(&path, self.kubeconfig_for(user, group)?)?;
        Ok(kube::Client::try_from(client_config(&path).await?)?)
    }

    pub fn url(&self) -> String {
        self.api.url()
    }

    /// The cluster CA (PEM); `None` when the cluster runs without TLS.
    pub fn ca_pem(&self) -> Option<String> {
        let dir = self.api.cert_dir.as_ref()?;
        std::fs::read_to_string(dir.join("ca.crt")).ok()
    }

    /// GET `path` from an agent's API on `port` as the apiserver does (HTTPS with the
    /// `kube-apiserver-kubelet-client` certificate; the agent's certificate is self-signed).
    /// `None` when the agent does not answer in 10 s.
    pub async fn agent_get(&self, port: u16, path: &str) -> Option<(u16, String)> {
        let pki = self.api.cert_dir.as_ref()?;
        let out = tokio::process::Command::new("curl")
            .args([
                "-sk",
                "--max-time",
                "10",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                "--cert",
            ])
            .arg(pki.join("apiserver-kubelet-client.crt"))
            .arg("--key")
            .arg(pki.join("apiserver-kubelet-client.key"))
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .await
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n')?;
        let code: u16 = code.trim().parse().ok()?;
        (code != 0).then(|| (code, body.to_string()))
    }

    /// Controllers configured for this cluster: `names` (from the controllers' registry),
    /// always with the two every pod needs (the `default` ServiceAccount and the
    /// `kube-root-ca.crt` ConfigMap of each namespace), and the cluster CA to publish.
    pub fn controllers_config(&self, names: &[&str]) -> skiff_controllers::Config {
        let mut controllers: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        for needed in POD_IDENTITY_CONTROLLERS {
            if !controllers.iter().any(|c| c == needed) {
                controllers.push(needed.to_string());
            }
        }
        skiff_controllers::Config {
            controllers,
            root_ca: self.ca_pem(),
            ..Default::default()
        }
    }

    /// Run only the controllers pods need to start (see [`Self::controllers_config`]) until
    /// the returned run is stopped.
    pub fn start_pod_identity_controllers(&self) -> ControllersRun {
        ControllersRun::spawn(self.client(), self.controllers_config(&[]))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A kube-rs client for the apiserver, as the cluster admin.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.client_config.clone()).expect("building a kube client")
    }

    /// Run a kubectl binary against this cluster (without blocking the in-process apiserver).
    pub async fn kubectl(&self, kubectl: &Path, args: &[&str]) -> KubectlOutput {
        self.kubectl_with_stdin(kubectl, args, None).await
    }

    pub async fn kubectl_with_stdin(
        &self,
        kubectl: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> KubectlOutput {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(kubectl)
            .args(args)
            .env("KUBECONFIG", self.kubeconfig_path())
            .env("HOME", self.dir.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", kubectl.display()));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            pipe.write_all(input.as_bytes())
                .await
                .expect("writing kubectl stdin");
        }
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within 120 s"))
            .expect("waiting for kubectl");
        KubectlOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub async fn stop(self) {
        self.api.stop().await;
    }
}

#[derive(Debug)]
pub struct KubectlOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl KubectlOutput {
    /// Panic with both streams unless kubectl succeeded.
    pub fn ok(self) -> Self {
        assert!(
            self.success,
            "kubectl failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The kube-rs configuration a kubeconfig file describes.
pub async fn client_config(path: &Path) -> anyhow::Result<kube::Config> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?)
}

/// A kubeconfig for an apiserver in the test-only plain-HTTP mode.
pub fn insecure_kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: {server}
contexts:
- name: skiff
  context:
    cluster: skiff
    user: skiff
    namespace: default
current-context: skiff
users:
- name: skiff
  user: {{}}
"
    )
}

/// The kubectl binaries the compatibility tests drive: the default one, 1.27 and the newest
/// (from [`tools_dir`]), those that are installed.
pub fn kubectl_binaries() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(k) = which("kubectl") {
        out.push(k);
    }
    let old = PathBuf::from("/usr/lib/google-cloud-sdk/bin/kubectl.1.27");
    if old.is_file() {
        out.push(old);
    }
    let newest = tools_dir().join(NEWEST_KUBECTL);
    if newest.is_file() {
        out.push(newest);
    }
    out
}

/// Where `scripts/test-tools.sh` (run by `make test`) installs the newest kubectl, helm and
/// the official Python client: `$SKIFF_TEST_TOOLS`, or `.tools/` in the repository.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("SKIFF_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools"))
}

const NEWEST_KUBECTL: &str = "kubectl-1.37/kubectl";

/// A tool `scripts/test-tools.sh` installs, or a panic saying how to install it.
fn installed_tool(relative: &str) -> PathBuf {
    let path = tools_dir().join(relative);
    assert!(
        path.is_file(),
        "{} is missing: run `scripts/test-tools.sh` (`make test` does) to install the test tools",
        path.display()
    );
    path
}

/// The newest kubectl (1.37).
pub fn newest_kubectl() -> PathBuf {
    installed_tool(NEWEST_KUBECTL)
}

/// The Python interpreter of the virtualenv that holds the official Kubernetes Python client.
pub fn python_with_kubernetes_client() -> PathBuf {
    installed_tool("python/bin/python")
}

/// The repository root (for manifests/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf()
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SKIFF_TEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// The controllers without which no pod with a ServiceAccount token starts.
pub const POD_IDENTITY_CONTROLLERS: &[&str] = &["serviceaccount", "root-ca-cert-publisher"];

/// Controllers running in this process, stopped by [`ControllersRun::stop`].
pub struct ControllersRun {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl ControllersRun {
    pub fn spawn(client: kube::Client, config: skiff_controllers::Config) -> ControllersRun {
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(skiff_controllers::run(client, config, async move {
            let _ = rx.await;
        }));
        ControllersRun {
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}
