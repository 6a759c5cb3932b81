//! Container probes: exec (a process in the container through containerd), httpGet (to the pod
//! IP) and tcpSocket, with the Kubernetes timing and thresholds.
//!
//! One [`Prober`] per running container: a startup probe, when given, gates the liveness and
//! readiness probes; liveness failure asks the worker to restart the container; readiness
//! decides the container's `ready`. Results go to a shared [`ProbeState`] and wake the worker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, Notify};

use super::events::{ContainerEvents, UNHEALTHY};
use super::Shared;

/// What the probes of one container run have concluded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProbeState {
    /// The startup probe succeeded (or there is none).
    pub started: bool,
    /// The readiness probe says ready (or there is none and the container started).
    pub ready: bool,
    /// Set when the liveness (or startup) probe failed: the container must be restarted.
    pub failed: Option<String>,
}

/// The probe tasks of one container run; dropping it stops them.
pub struct Prober {
    pub state: Arc<Mutex<ProbeState>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Prober {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Prober {
    pub fn snapshot(&self) -> ProbeState {
        self.state.lock().expect("probe state lock").clone()
    }
}

/// Where probes reach the container.
#[derive(Clone)]
pub struct Target {
    /// Where failed probes are recorded (Unhealthy Events).
    pub events: ContainerEvents,
    pub shared: Arc<Shared>,
    pub container_id: String,
    pub container: Container,
    pub pod_ip: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// Start the probes of one container run.
pub fn start(target: Target, wake: Arc<Notify>) -> Prober {
    let c = &target.container;
    let state = Arc::new(Mutex::new(ProbeState {
        started: c.startup_probe.is_none(),
        ready: c.startup_probe.is_none() && c.readiness_probe.is_none(),
        failed: None,
    }));
    let (started_tx, started_rx) = watch::channel(c.startup_probe.is_none());
    let started_tx = Arc::new(started_tx);
    let mut tasks = Vec::new();
    let probes = [
        (Kind::Startup, c.startup_probe.clone()),
        (Kind::Liveness, c.liveness_probe.clone()),
        (Kind::Readiness, c.readiness_probe.clone()),
    ];
    for (kind, probe) in probes {
        let Some(probe) = probe else { continue };
        let target = target.clone();
        let state = state.clone();
        let wake = wake.clone();
        let started_tx = started_tx.clone();
        let mut started_rx = started_rx.clone();
        tasks.push(tokio::spawn(async move {
            if kind != Kind::Startup && started_rx.wait_for(|s| *s).await.is_err() {
                return;
            }
            run_loop(kind, &probe, &target, &state, &wake, &started_tx).await;
        }));
    }
    // With no readiness probe, the container is ready once started.
    if c.readiness_probe.is_none() && c.startup_probe.is_some() {
        let state = state.clone();
        let wake = wake.clone();
        let mut started_rx = started_rx.clone();
        tasks.push(tokio::spawn(async move {
            if started_rx.wait_for(|s| *s).await.is_ok() {
                state.lock().expect("probe state lock").ready = true;
                wake.notify_one();
            }
        }));
    }
    Prober { state, tasks }
}

fn secs(v: Option<i32>, default: i32, min: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(min) as u64)
}

async fn run_loop(
    kind: Kind,
    probe: &Probe,
    target: &Target,
    state: &Mutex<ProbeState>,
    wake: &Notify,
    started_tx: &watch::Sender<bool>,
) {
    let period = secs(probe.period_seconds, 10, 1);
    let timeout = secs(probe.timeout_seconds, 1, 1);
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    tokio::time::sleep(secs(probe.initial_delay_seconds, 0, 0)).await;
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut successes, mut failures) = (0, 0);
    loop {
        interval.tick().await;
        let outcome = run_probe(probe, target, timeout).await;
        match &outcome {
            Ok(()) => {
                failures = 0;
                successes += 1;
            }
            Err(why) => {
                successes = 0;
                failures += 1;
                let message = format!("{} probe failed: {why}", kind.name());
                target.events.warning(UNHEALTHY, &message).await;
            }
        }
        let mut changed = false;
        {
            let mut st = state.lock().expect("probe state lock");
            match kind {
                Kind::Startup => {
                    if successes >= 1 {
                        st.started = true;
                        changed = true;
                    } else if failures >= failure_threshold {
                        st.failed = Some(format!(
                            "Startup probe failed: {}",
                            outcome.as_ref().err().cloned().unwrap_or_default()
                        ));
                        changed = true;
                    }
                }
                Kind::Liveness => {
                    if failures >= failure_threshold {
                        st.failed = Some(format!(
                            "Liveness probe failed: {}",
                            outcome.as_ref().err().cloned().unwrap_or_default()
                        ));
                        changed = true;
                    }
                }
                Kind::Readiness => {
                    if successes >= success_threshold && !st.ready {
                        st.ready = true;
                        changed = true;
                    } else if failures >= failure_threshold && st.ready {
                        st.ready = false;
                        changed = true;
                    }
                }
            }
        }
        if changed {
            wake.notify_one();
        }
        match kind {
            Kind::Startup if successes >= 1 => {
                let _ = started_tx.send(true);
                return;
            }
            Kind::Startup | Kind::Liveness if failures >= failure_threshold => return,
            _ => {}
        }
    }
}

/// One probe attempt: `Ok` on success, the failure message otherwise.
async fn run_probe(probe: &Probe, target: &Target, timeout: Duration) -> Result<(), String> {
    if let Some(exec) = &probe.exec {
        let args = exec.command.clone().unwrap_or_default();
        let exec_id = format!(
            "probe-{}",
            &crate::images::sha256_digest(
                format!("{:?}{:?}", std::time::SystemTime::now(), args).as_bytes()
            )[7..19]
        );
        return match target
            .shared
            .containerd
            .exec(&target.container_id, &exec_id, &args, timeout)
            .await
        {
            Ok(Some(0)) => Ok(()),
            Ok(Some(code)) => Err(format!("command {args:?} exited with {code}")),
            Ok(None) => Err(format!("command {args:?} timed out after {timeout:?}")),
            Err(e) => Err(format!("{e:#}")),
        };
    }
    if let Some(http) = &probe.http_get {
        if http.scheme.as_deref().is_some_and(|s| s != "HTTP") {
            return Err("only HTTP probes are supported".into());
        }
        let host = http
            .host
            .clone()
            .or_else(|| target.pod_ip.clone())
            .unwrap_or_else(|| "127.0.0.1".into());
        let port = resolve_port(&http.port, &target.container)?;
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let headers: String = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| format!("{}: {}\r\n", h.name, h.value))
            .collect();
        let attempt = async {
            let mut s = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| format!("Get http://{host}:{port}{path}: {e}"))?;
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: skiff-probe/1.0\r\n{headers}Connection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            // The status line is all a probe needs.
            while !buf.windows(2).any(|w| w == b"\r\n") {
                let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let line = String::from_utf8_lossy(&buf);
            let code: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("bad HTTP response from {host}:{port}"))?;
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        };
        return tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(format!("Get http://{host}:{port}{path}: timeout")));
    }
    if let Some(tcp) = &probe.tcp_socket {
        let host = tcp
            .host
            .clone()
            .or_else(|| target.pod_ip.clone())
            .unwrap_or_else(|| "127.0.0.1".into());
        let port = resolve_port(&tcp.port, &target.container)?;
        return match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
            Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
        };
    }
    Err("probe has no handler (exec, httpGet or tcpSocket)".into())
}

/// A probe port: a number, or the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("port {name} is not a named port of the container"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_and_numeric_ports() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "ports": [{"name": "http", "containerPort": 8080}]
        }))
        .unwrap();
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(
            resolve_port(&IntOrString::String("9090".into()), &c),
            Ok(9090)
        );
        assert!(resolve_port(&IntOrString::String("nope".into()), &c).is_err());
    }
}
