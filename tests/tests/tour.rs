//! The README's five-minute tour, end to end: `make up` starts a whole cluster (etcd,
//! containerd, apiserver, scheduler, controllers, an agent with proxy and DNS) and the demo app;
//! skiffctl applies, scales, rolls out a new image, reads logs, rolls back and deletes; the
//! example manifests run; `make down` leaves no process, mount, iptables chain or bridge.
//!
//! `make up` runs the binaries in the directory this test binary was built into (target/debug),
//! through SKIFF_BIN, so they must be built first: `make test` does (`cargo build --bins`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use skiff_testkit::containerd::{http_get_at, running_as_root};
use skiff_testkit::{free_port, wait_for};

/// Names this test's cluster uses, so that it cannot touch a `make up` cluster on the machine.
const NODE: &str = "tour-node";
const POD_CIDR: &str = "10.250.77.0/24";
const BRIDGE: &str = "sktour0";
const PROXY_PREFIX: &str = "SKTOUR";

/// The tests of this file share those names (and a host's ClusterIPs), so they take turns.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// target/<profile>: this test binary lives in target/<profile>/deps.
fn binaries_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary is in target/<profile>/deps")
        .to_path_buf();
    for b in [
        "skiff-apiserver",
        "skiff-scheduler",
        "skiff-controllers",
        "skiff-agent",
        "skiffctl",
    ] {
        assert!(
            dir.join(b).is_file(),
            "{} is missing: build the binaries first (`cargo build --workspace --bins`; `make test` does)",
            dir.join(b).display()
        );
    }
    dir
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// The cluster `make up` started under a temp data dir; `make down` runs when it is dropped,
/// so a failing step still leaves the machine clean.
struct Cluster {
    data: tempfile::TempDir,
    bin: PathBuf,
    env: Vec<(String, String)>,
    down: bool,
}

impl Cluster {
    fn new() -> Cluster {
        let bin = binaries_dir();
        let data = tempfile::Builder::new()
            .prefix("skiff-tour-")
            .tempdir()
            .unwrap();
        let etcd_port = loop {
            // etcd's peer port is the next one, so both must be free.
            let p = free_port();
            if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
                break p;
            }
        };
        let env = [
            ("SKIFF_BIN", bin.display().to_string()),
            ("SKIFF_API_PORT", free_port().to_string()),
            ("SKIFF_ETCD_PORT", etcd_port.to_string()),
            ("SKIFF_AGENT_PORT", free_port().to_string()),
            ("SKIFF_SCHEDULER_PORT", free_port().to_string()),
            ("SKIFF_CONTROLLERS_PORT", free_port().to_string()),
            ("SKIFF_NODE_NAME", NODE.to_string()),
            ("SKIFF_POD_CIDR", POD_CIDR.to_string()),
            ("SKIFF_CLUSTER_CIDR", POD_CIDR.to_string()),
            ("SKIFF_CNI_BRIDGE", BRIDGE.to_string()),
            ("SKIFF_PROXY_PREFIX", PROXY_PREFIX.to_string()),
            (
                "KUBECONFIG",
                data.path().join("kubeconfig").display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Cluster {
            data,
            bin,
            env,
            down: false,
        }
    }

    fn data_dir(&self) -> &Path {
        self.data.path()
    }

    async fn run(&self, program: &Path, args: &[&str], limit: Duration) -> Output {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(repo_root())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().expect("starting a command");
        let out = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .unwrap_or_else(|_| {
                panic!("{} {args:?} did not finish in {limit:?}", program.display())
            })
            .expect("waiting for a command");
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn make(&self, target: &str) -> Output {
        let data = format!("DATA_DIR={}", self.data_dir().display());
        self.run(
            Path::new("make"),
            &["--no-print-directory", target, &data],
            Duration::from_secs(600),
        )
        .await
    }

    async fn skiffctl(&self, args: &[&str]) -> Output {
        self.run(&self.bin.join("skiffctl"), args, Duration::from_secs(300))
            .await
    }

    /// skiffctl that must succeed; its stdout.
    async fn ctl(&self, args: &[&str]) -> String {
        let out = self.skiffctl(args).await;
        assert!(
            out.ok,
            "skiffctl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        serde_json::from_str(&self.ctl(&full).await).expect("skiffctl -o json prints JSON")
    }

    /// The web pods, terminating ones included, as (name, image, ready).
    async fn web_pods(&self) -> Vec<(String, String, bool)> {
        let list = self.json(&["get", "pods", "-l", "app=web"]).await;
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let terminating = !p["metadata"]["deletionTimestamp"].is_null();
                let ready = p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    && !terminating;
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    p["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    ready,
                )
            })
            .collect()
    }

    /// Waits until exactly `n` web pods exist (none terminating), all ready and running `image`.
    async fn wait_web_pods(&self, n: usize, image: &str) -> Vec<String> {
        wait_for(
            &format!("{n} ready web pods running {image}"),
            Duration::from_secs(180),
            || async {
                let pods = self.web_pods().await;
                (pods.len() == n && pods.iter().all(|(_, i, r)| i == image && *r))
                    .then(|| pods.into_iter().map(|(name, _, _)| name).collect())
            },
        )
        .await
    }

    fn pids(&self) -> Vec<(String, i32)> {
        let dir = self.data_dir().join("pids");
        std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let pid = std::fs::read_to_string(e.path())
                            .unwrap()
                            .trim()
                            .parse()
                            .unwrap();
                        (e.file_name().to_string_lossy().into_owned(), pid)
                    })
                    .collect::<Vec<_>>()
            })
            .map(|mut pids| {
                pids.sort();
                pids
            })
            .unwrap_or_default()
    }

    async fn down(&mut self) -> Output {
        self.down = true;
        self.make("down").await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.down {
            let _ = std::process::Command::new("make")
                .args(["--no-print-directory", "down"])
                .arg(format!("DATA_DIR={}", self.data_dir().display()))
                .current_dir(repo_root())
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .status();
        }
    }
}

/// Alive and not a zombie.
fn process_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

/// Running processes whose command line mentions `needle` (containerd shims name their socket).
fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if cmdline.contains(needle) && process_running(pid) {
            found.push((pid, cmdline));
        }
    }
    found
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&prefix))
        .map(String::from)
        .collect()
}

fn iptables_lines_with(needle: &str) -> Vec<String> {
    let out = std::process::Command::new("iptables-save")
        .output()
        .expect("iptables-save");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_up_tour_and_make_down_leave_nothing_behind() {
    if !running_as_root() {
        eprintln!("skipped: make up needs root");
        return;
    }
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = Cluster::new();

    // As another user, make up refuses at once and says how to run it.
    let as_nobody = cluster
        .run(
            Path::new("setpriv"),
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "make",
                "--no-print-directory",
                "up",
                &format!("DATA_DIR={}", cluster.data_dir().display()),
            ],
            Duration::from_secs(60),
        )
        .await;
    assert!(!as_nobody.ok, "make up as nobody must fail");
    assert!(
        as_nobody.stdout.contains("needs root") && as_nobody.stdout.contains("sudo make up"),
        "{}\n{}",
        as_nobody.stdout,
        as_nobody.stderr
    );
    assert!(cluster.pids().is_empty(), "nothing was started");

    // make up: the demo app is available and answers through its Service.
    let up = cluster.make("up").await;
    assert!(up.ok, "make up failed:\n{}\n{}", up.stdout, up.stderr);
    assert!(up.stdout.contains("skiff is up"), "{}", up.stdout);
    let pods = cluster.wait_web_pods(3, "skiff.local/busybox:latest").await;
    let svc = cluster.json(&["get", "service", "web"]).await;
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let (code, body) = http_get_at(&cluster_ip, 80, "/")
        .await
        .expect("the demo Service answers on its ClusterIP");
    assert_eq!(code, 200);
    assert!(
        pods.contains(&body.trim().to_string()),
        "a web pod answers with its hostname: {body:?} not in {pods:?}"
    );

    // make up again is harmless: nothing restarts, the demo is unchanged.
    let pids_before = cluster.pids();
    assert_eq!(pids_before.len(), 6, "{pids_before:?}");
    let again = cluster.make("up").await;
    assert!(
        again.ok,
        "second make up:\n{}\n{}",
        again.stdout, again.stderr
    );
    assert!(again.stdout.contains("already running"), "{}", again.stdout);
    assert_eq!(cluster.pids(), pids_before);
    let apply = cluster.ctl(&["apply", "-f", "manifests/demo.yaml"]).await;
    assert_eq!(
        apply,
        "deployment.apps/web unchanged\nservice/web unchanged\n"
    );

    // scale to 5.
    let scaled = cluster
        .ctl(&["scale", "deployment", "web", "--replicas=5"])
        .await;
    assert_eq!(scaled, "deployment.apps/web scaled\n");
    cluster.wait_web_pods(5, "skiff.local/busybox:latest").await;

    // a new image, rolled out.
    let set = cluster
        .ctl(&[
            "set",
            "image",
            "deployment/web",
            "httpd=skiff.local/busybox:v2",
        ])
        .await;
    assert_eq!(set, "deployment.apps/web image updated\n");
    let status = cluster
        .ctl(&["rollout", "status", "deployment/web", "--timeout=180s"])
        .await;
    assert!(
        status.contains("deployment \"web\" successfully rolled out"),
        "{status}"
    );
    cluster.wait_web_pods(5, "skiff.local/busybox:v2").await;
    let history = cluster.ctl(&["rollout", "history", "deployment/web"]).await;
    let revisions: Vec<u32> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(revisions, [1, 2], "{history}");

    // logs of every web pod.
    let logs = cluster.ctl(&["logs", "-l", "app=web"]).await;
    assert_eq!(
        logs.matches("web: serving").count(),
        5,
        "one start-up line per pod:\n{logs}"
    );

    // rollout undo returns to the first image.
    let undo = cluster.ctl(&["rollout", "undo", "deployment/web"]).await;
    assert_eq!(undo, "deployment.apps/web rolled back\n");
    cluster
        .ctl(&["rollout", "status", "deployment/web", "--timeout=180s"])
        .await;
    cluster.wait_web_pods(5, "skiff.local/busybox:latest").await;

    // The example manifests run as their comments say.
    let created = cluster.ctl(&["apply", "-f", "manifests/examples/"]).await;
    for object in [
        "deployment.apps/api created",
        "service/api created",
        "configmap/greeter-config created",
        "deployment.apps/greeter created",
        "job.batch/countdown created",
        "pod/two-containers created",
    ] {
        assert!(created.contains(object), "{object} in:\n{created}");
    }
    wait_for(
        "job countdown to complete 3 pods",
        Duration::from_secs(180),
        || async {
            let job = cluster.json(&["get", "job", "countdown"]).await;
            (job["status"]["succeeded"] == 3).then_some(())
        },
    )
    .await;
    wait_for(
        "the checker container to read the init container's page",
        Duration::from_secs(120),
        || async {
            let out = cluster
                .skiffctl(&["logs", "two-containers", "-c", "checker"])
                .await;
            out.stdout
                .contains("checker: written by the init container")
                .then_some(())
        },
    )
    .await;
    wait_for(
        "greeter to log its ConfigMap greeting",
        Duration::from_secs(120),
        || async {
            let out = cluster.skiffctl(&["logs", "deployment/greeter"]).await;
            out.stdout
                .contains("greeting: hello from a ConfigMap")
                .then_some(())
        },
    )
    .await;
    wait_for(
        "deployment api to be available",
        Duration::from_secs(180),
        || async {
            let d = cluster.json(&["get", "deployment", "api"]).await;
            (d["status"]["availableReplicas"] == 2).then_some(())
        },
    )
    .await;
    let node = cluster.json(&["get", "node", NODE]).await;
    let node_ip = node["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .expect("the node reports its InternalIP")
        .to_string();
    let (code, _) = http_get_at(&node_ip, 30080, "/healthz")
        .await
        .expect("NodePort 30080 answers on the node's address");
    assert_eq!(code, 200);

    let deleted = cluster.ctl(&["delete", "-f", "manifests/examples/"]).await;
    assert!(
        deleted.contains("pod \"two-containers\" deleted"),
        "{deleted}"
    );

    // describe shows the object and its Events.
    let described = cluster.ctl(&["describe", "deployment", "web"]).await;
    for part in ["Name:", "web", "Replicas:", "Events:", "ScalingReplicaSet"] {
        assert!(described.contains(part), "{part} in:\n{described}");
    }

    // drain evicts the web pods; with the only node cordoned their replacements wait, and
    // run again after uncordon.
    let drained = cluster.ctl(&["drain", NODE]).await;
    assert!(
        drained.contains(&format!("node/{NODE} drained")),
        "{drained}"
    );
    let evicted_web = drained
        .lines()
        .filter(|l| l.starts_with("pod/web-") && l.ends_with(" evicted"))
        .count();
    assert_eq!(evicted_web, 5, "{drained}");
    let node = cluster.json(&["get", "node", NODE]).await;
    assert_eq!(node["spec"]["unschedulable"], true);
    wait_for(
        "5 pending replacements on the cordoned node",
        Duration::from_secs(60),
        || async {
            let pods = cluster.json(&["get", "pods", "-l", "app=web"]).await;
            let items = pods["items"].as_array().unwrap();
            (items.len() == 5
                && items
                    .iter()
                    .all(|p| p["status"]["phase"] == "Pending" && p["spec"]["nodeName"].is_null()))
            .then_some(())
        },
    )
    .await;
    let uncordoned = cluster.ctl(&["uncordon", NODE]).await;
    assert_eq!(uncordoned, format!("node/{NODE} uncordoned\n"));
    cluster.wait_web_pods(5, "skiff.local/busybox:latest").await;

    // delete the demo; the pods go away.
    let deleted = cluster.ctl(&["delete", "-f", "manifests/demo.yaml"]).await;
    assert!(
        deleted.contains("deployment.apps \"web\" deleted"),
        "{deleted}"
    );
    wait_for("every pod to be gone", Duration::from_secs(120), || async {
        let pods = cluster.json(&["get", "pods"]).await;
        pods["items"].as_array().unwrap().is_empty().then_some(())
    })
    .await;

    // make down leaves nothing behind.
    down_leaves_nothing(&mut cluster, &pids_before).await;
    let again = cluster.make("down").await;
    assert!(
        again.ok,
        "make down twice:\n{}\n{}",
        again.stdout, again.stderr
    );
}

/// Runs `make down` and checks that no process (of `pids` or under the data dir), mount,
/// iptables rule for the proxy, the bridge or the pod addresses, or the bridge is left.
async fn down_leaves_nothing(cluster: &mut Cluster, pids: &[(String, i32)]) {
    let data_dir = cluster.data_dir().to_path_buf();
    let down = cluster.down().await;
    assert!(down.ok, "make down:\n{}\n{}", down.stdout, down.stderr);
    for (name, pid) in pids {
        assert!(!process_running(*pid), "{name} (pid {pid}) still runs");
    }
    let leftovers = processes_mentioning(&data_dir.display().to_string());
    assert!(leftovers.is_empty(), "processes left: {leftovers:?}");
    assert_eq!(mounts_under(&data_dir), Vec::<String>::new());
    for needle in [PROXY_PREFIX, BRIDGE, POD_CIDR.trim_end_matches("0/24")] {
        assert_eq!(
            iptables_lines_with(needle),
            Vec::<String>::new(),
            "{needle}"
        );
    }
    assert!(!link_exists(BRIDGE), "bridge {BRIDGE} is left");
}

/// An agent killed with its pods running (a crash, a power cut of the process): make down
/// still removes their containers, sandboxes, rules and mounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_down_cleans_up_after_a_killed_agent() {
    if !running_as_root() {
        eprintln!("skipped: make up needs root");
        return;
    }
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = Cluster::new();
    let up = cluster.make("up").await;
    assert!(up.ok, "make up failed:\n{}\n{}", up.stdout, up.stderr);
    cluster.wait_web_pods(3, "skiff.local/busybox:latest").await;
    let pids = cluster.pids();
    let agent = pids
        .iter()
        .find(|(n, _)| n == "agent")
        .expect("agent pid")
        .1;
    // SAFETY: kill(2) on the agent make up started and recorded; it is still running.
    assert_eq!(unsafe { libc::kill(agent, libc::SIGKILL) }, 0);
    wait_for("the agent to die", Duration::from_secs(10), || async {
        (!process_running(agent)).then_some(())
    })
    .await;
    assert!(
        !iptables_lines_with(POD_CIDR.trim_end_matches("0/24")).is_empty(),
        "the pods' network rules exist before make down"
    );
    down_leaves_nothing(&mut cluster, &pids).await;
}
