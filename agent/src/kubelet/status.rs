//! Pure pieces of the pod lifecycle: restart decisions, back-off and pod status computation.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Restart back-off after the `restarts`-th restart: the first restart is immediate, then 10 s
/// doubling up to 5 minutes (as the kubelet does).
pub fn backoff(restarts: u32) -> Duration {
    if restarts == 0 {
        return Duration::ZERO;
    }
    let secs = 10u64.saturating_mul(1u64 << (restarts - 1).min(16));
    Duration::from_secs(secs.min(300))
}

/// Whether a container that exited with `code` restarts under the pod's restartPolicy.
pub fn should_restart(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// Terminated state of one container run.
#[derive(Clone, Debug, PartialEq)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub container_id: String,
}

/// Observed state of one container, in the agent's terms.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    Waiting { reason: String, message: String },
    Running { started_at: Option<Timestamp> },
    Terminated(Terminated),
}

/// Everything the status of one container is computed from.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: State,
    pub last: Option<Terminated>,
    pub restart_count: i32,
    pub ready: bool,
}

fn time(t: Option<Timestamp>) -> Option<Time> {
    t.map(Time)
}

fn terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        reason: Some(t.reason.clone()),
        started_at: time(t.started_at),
        finished_at: time(t.finished_at),
        container_id: Some(t.container_id.clone()),
        ..Default::default()
    }
}

pub fn container_status(v: &ContainerView) -> ContainerStatus {
    let state = match &v.state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: (!message.is_empty()).then(|| message.clone()),
            }),
            ..Default::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: time(*started_at),
            }),
            ..Default::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(terminated(t)),
            ..Default::default()
        },
    };
    ContainerStatus {
        name: v.name.clone(),
        image: v.image.clone(),
        image_id: v.image_id.clone(),
        container_id: v.container_id.clone(),
        state: Some(state),
        last_state: Some(
            v.last
                .as_ref()
                .map(|t| ContainerState {
                    terminated: Some(terminated(t)),
                    ..Default::default()
                })
                .unwrap_or_default(),
        ),
        ready: v.ready,
        restart_count: v.restart_count,
        started: Some(matches!(v.state, State::Running { .. })),
        ..Default::default()
    }
}

/// The pod phase from its containers, following the kubelet's rules.
pub fn phase(restart_policy: &str, views: &[ContainerView]) -> &'static str {
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for v in views {
        match &v.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } if v.last.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if views.is_empty() || waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match restart_policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        }
    } else {
        "Pending"
    }
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    previous: Option<&PodStatus>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    // Keep the transition time while the condition's status does not change.
    let last = previous
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: kind.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        last_transition_time: Some(last),
        ..Default::default()
    }
}

/// The whole pod status the agent writes through pods/status.
pub fn pod_status(
    pod: &Pod,
    init_views: &[ContainerView],
    views: &[ContainerView],
    host_ip: &str,
    pod_ip: Option<&str>,
    now: Timestamp,
) -> PodStatus {
    let previous = pod.status.as_ref();
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    let initialized = init_views
        .iter()
        .all(|v| matches!(&v.state, State::Terminated(t) if t.exit_code == 0));
    // An init container that failed for good fails the pod; until all succeed it is Pending.
    let init_failed = init_views
        .iter()
        .any(|v| matches!(&v.state, State::Terminated(t) if t.exit_code != 0) && policy == "Never");
    let phase = if init_failed {
        "Failed"
    } else if !initialized {
        "Pending"
    } else {
        phase(&policy, views)
    };
    let all_ready = !views.is_empty() && views.iter().all(|v| v.ready);
    let not_ready_reason = match phase {
        "Succeeded" | "Failed" => Some("PodCompleted"),
        _ if !all_ready => Some("ContainersNotReady"),
        _ => None,
    };
    let ready = all_ready && phase == "Running";
    let conditions = vec![
        condition("PodScheduled", true, None, previous, now),
        condition(
            "Initialized",
            initialized,
            (!initialized).then_some("ContainersNotInitialized"),
            previous,
            now,
        ),
        condition("ContainersReady", ready, not_ready_reason, previous, now),
        condition("Ready", ready, not_ready_reason, previous, now),
    ];
    let start_time = previous
        .and_then(|s| s.start_time.clone())
        .unwrap_or(Time(now));
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(host_ip.to_string()),
        host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP {
            ip: host_ip.to_string(),
        }]),
        pod_ip: pod_ip.map(str::to_string),
        pod_ips: pod_ip.map(|ip| vec![k8s_openapi::api::core::v1::PodIP { ip: ip.to_string() }]),
        start_time: Some(start_time),
        container_statuses: Some(views.iter().map(container_status).collect()),
        init_container_statuses: (!init_views.is_empty())
            .then(|| init_views.iter().map(container_status).collect()),
        qos_class: previous.and_then(|s| s.qos_class.clone()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: State, last: Option<Terminated>) -> ContainerView {
        ContainerView {
            name: "c".into(),
            image: "img".into(),
            image_id: "sha256:x".into(),
            container_id: Some("containerd://1".into()),
            ready: matches!(state, State::Running { .. }),
            state,
            last,
            restart_count: 0,
        }
    }

    fn term(code: i32) -> Terminated {
        Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            started_at: None,
            finished_at: None,
            container_id: "containerd://1".into(),
        }
    }

    fn waiting(reason: &str) -> State {
        State::Waiting {
            reason: reason.into(),
            message: String::new(),
        }
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_to_five_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(100).as_secs(), 300);
    }

    #[test]
    fn restart_policies() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("Always", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(should_restart("OnFailure", 2));
        assert!(!should_restart("Never", 1));
    }

    #[test]
    fn phases_follow_the_kubelet() {
        let running = State::Running { started_at: None };
        assert_eq!(
            phase("Always", &[view(waiting("ContainerCreating"), None)]),
            "Pending"
        );
        assert_eq!(phase("Always", &[view(running.clone(), None)]), "Running");
        assert_eq!(
            phase(
                "Always",
                &[
                    view(running, None),
                    view(waiting("ContainerCreating"), None)
                ]
            ),
            "Pending"
        );
        assert_eq!(
            phase("Never", &[view(State::Terminated(term(0)), None)]),
            "Succeeded"
        );
        assert_eq!(
            phase("Never", &[view(State::Terminated(term(1)), None)]),
            "Failed"
        );
        assert_eq!(
            phase("OnFailure", &[view(State::Terminated(term(0)), None)]),
            "Succeeded"
        );
        assert_eq!(
            phase(
                "OnFailure",
                &[view(waiting("CrashLoopBackOff"), Some(term(1)))]
            ),
            "Running"
        );
        assert_eq!(
            phase(
                "Always",
                &[view(waiting("CrashLoopBackOff"), Some(term(1)))]
            ),
            "Running"
        );
        assert_eq!(
            phase("Always", &[view(State::Terminated(term(0)), None)]),
            "Running"
        );
    }

    #[test]
    fn pod_status_conditions_and_container_statuses() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}
        }))
        .unwrap();
        let now = Timestamp::now();
        let s = pod_status(
            &pod,
            &[],
            &[view(
                State::Running {
                    started_at: Some(now),
                },
                None,
            )],
            "10.0.0.1",
            Some("10.1.0.2"),
            now,
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let ready = s
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(cs.state.as_ref().unwrap().running.is_some());
        assert_eq!(s.pod_ip.as_deref(), Some("10.1.0.2"));

        let done = pod_status(
            &pod,
            &[],
            &[view(State::Terminated(term(0)), None)],
            "10.0.0.1",
            None,
            now,
        );
        assert_eq!(done.phase.as_deref(), Some("Succeeded"));
        let ready = done
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
    }

    #[test]
    fn init_containers_gate_phase_and_initialized() {
        let pod = |policy: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"restartPolicy": policy, "containers": [{"name": "c"}]}
            }))
            .unwrap()
        };
        let now = Timestamp::now();
        let app = [view(waiting("PodInitializing"), None)];
        let cond = |s: &PodStatus, kind: &str| {
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == kind)
                .unwrap()
                .status
                .clone()
        };
        let running = [view(State::Running { started_at: None }, None)];
        let s = pod_status(&pod("Always"), &running, &app, "h", None, now);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, "Initialized"), "False");
        assert_eq!(s.init_container_statuses.as_ref().unwrap().len(), 1);
        let failed = [view(State::Terminated(term(1)), None)];
        let s = pod_status(&pod("Never"), &failed, &app, "h", None, now);
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let s = pod_status(&pod("OnFailure"), &failed, &app, "h", None, now);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let done = [view(State::Terminated(term(0)), None)];
        let app = [view(State::Running { started_at: None }, None)];
        let s = pod_status(&pod("Always"), &done, &app, "h", None, now);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Initialized"), "True");
        assert_eq!(cond(&s, "Ready"), "True");
    }
}
