//! Building the OCI runtime spec of one container from its pod spec and its image config.
//!
//! Pure functions: no I/O, so they are unit-tested directly.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use oci_spec::image::Config as ImageConfig;
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

/// Node- and pod-level facts the spec needs besides the pod and image.
#[derive(Clone, Debug, Default)]
pub struct SpecContext {
    /// Hostname inside the container (the pod name, as Kubernetes does).
    pub hostname: String,
    /// cgroup path for the container (cgroupfs driver), e.g. `/skiff/<pod-uid>/<container-id>`.
    pub cgroups_path: String,
    /// Network namespace to join (the pod's); `None` gives the container a fresh one.
    pub netns_path: Option<String>,
    /// IPC namespace to join (the pod's); `None` gives the container a fresh one.
    pub ipc_path: Option<String>,
    /// UTS namespace to join (the pod's); `None` gives the container a fresh one.
    pub uts_path: Option<String>,
    /// hostNetwork pods share the host's network and UTS namespaces.
    pub host_network: bool,
    /// Pod IP, for `status.podIP` env references.
    pub pod_ip: Option<String>,
    /// Node name, for `spec.nodeName` env references.
    pub node_name: String,
    /// Service variables (`KUBERNETES_SERVICE_HOST` …), set before the container's own env.
    pub service_env: Vec<(String, String)>,
}

/// The process arguments: Kubernetes semantics over the image's Entrypoint/Cmd.
///
/// - neither command nor args: Entrypoint + Cmd
/// - command only: command (image Cmd ignored)
/// - args only: Entrypoint + args
/// - both: command + args
pub fn process_args(container: &Container, image: Option<&ImageConfig>) -> Vec<String> {
    let entrypoint = image
        .and_then(|c| c.entrypoint().clone())
        .unwrap_or_default();
    let cmd = image.and_then(|c| c.cmd().clone()).unwrap_or_default();
    match (&container.command, &container.args) {
        (Some(command), Some(args)) if !command.is_empty() => {
            command.iter().chain(args.iter()).cloned().collect()
        }
        (Some(command), None) if !command.is_empty() => command.clone(),
        (_, Some(args)) if !args.is_empty() => {
            entrypoint.iter().chain(args.iter()).cloned().collect()
        }
        _ => entrypoint.into_iter().chain(cmd).collect(),
    }
}

/// Environment: the image's, then the container's (later entries win), with `$(VAR)` expansion
/// of earlier variables as Kubernetes does. `valueFrom` fieldRefs are resolved from the pod;
/// configMap/secret references come resolved in `resolved` (name → value).
pub fn environment(
    pod: &Pod,
    container: &Container,
    image: Option<&ImageConfig>,
    ctx: &SpecContext,
    resolved: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<String>> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(slot) = vars.iter_mut().find(|(name, _)| *name == k) {
            slot.1 = v;
        } else {
            vars.push((k, v));
        }
    };
    for entry in image.and_then(|c| c.env().clone()).unwrap_or_default() {
        let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        set(&mut vars, k.to_string(), v.to_string());
    }
    if !vars.iter().any(|(k, _)| k == "PATH") {
        set(
            &mut vars,
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    set(&mut vars, "HOSTNAME".into(), ctx.hostname.clone());
    for (k, v) in &ctx.service_env {
        set(&mut vars, k.clone(), v.clone());
    }
    for env in container.env.iter().flatten() {
        let value = if let Some(v) = &env.value {
            let lookup: BTreeMap<String, String> = vars.iter().cloned().collect();
            expand(v, &lookup)
        } else if let Some(from) = &env.value_from {
            if let Some(field) = &from.field_ref {
                field_value(pod, &field.field_path, ctx)
                    .with_context(|| format!("env {}: fieldRef {}", env.name, field.field_path))?
            } else if let Some(v) = resolved.get(&env.name) {
                v.clone()
            } else {
                // An optional reference that did not resolve: leave the variable out.
                continue;
            }
        } else {
            String::new()
        };
        set(&mut vars, env.name.clone(), value);
    }
    Ok(vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// `$(NAME)` expansion against earlier variables; `$$(NAME)` escapes; unknown names stay as is.
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix("$(") {
            out.push_str("$(");
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The downward-API fields a fieldRef may name.
pub fn field_value(pod: &Pod, path: &str, ctx: &SpecContext) -> anyhow::Result<String> {
    let meta = &pod.metadata;
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => ctx.node_name.clone(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => ctx.pod_ip.clone().unwrap_or_default(),
        "status.hostIP" => pod
            .status
            .as_ref()
            .and_then(|s| s.host_ip.clone())
            .unwrap_or_default(),
        p => {
            if let Some(key) = label_key(p, "metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&key).cloned())
                    .unwrap_or_default()
            } else if let Some(key) = label_key(p, "metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|l| l.get(&key).cloned())
                    .unwrap_or_default()
            } else {
                bail!("unsupported fieldPath {p}")
            }
        }
    })
}

fn label_key(path: &str, prefix: &str) -> Option<String> {
    let rest = path.strip_prefix(prefix)?;
    let inner = rest.strip_prefix("['")?.strip_suffix("']")?;
    Some(inner.to_string())
}

/// CPU quantity in millicores ("500m", "2", "0.5").
pub fn cpu_millis(q: &Quantity) -> anyhow::Result<i64> {
    let s = q.0.trim();
    if let Some(m) = s.strip_suffix('m') {
        return Ok(m.parse::<i64>()?);
    }
    let v: f64 = s.parse().with_context(|| format!("bad cpu quantity {s}"))?;
    Ok((v * 1000.0).round() as i64)
}

/// Memory (or any byte) quantity in bytes: plain, e notation, SI and binary suffixes.
pub fn quantity_bytes(q: &Quantity) -> anyhow::Result<i64> {
    let s = q.0.trim();
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("m", 0.001),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, mult) in SUFFIXES {
        if let Some(num) = s.strip_suffix(suffix) {
            let v: f64 = num.parse().with_context(|| format!("bad quantity {s}"))?;
            return Ok((v * mult).ceil() as i64);
        }
    }
    let v: f64 = s.parse().with_context(|| format!("bad quantity {s}"))?;
    Ok(v.ceil() as i64)
}

/// CFS period used for cpu limits, as the kubelet does.
pub const CPU_PERIOD: u64 = 100_000;

/// cgroup resources from the container's requests and limits.
pub fn resources(container: &Container) -> anyhow::Result<Value> {
    let mut res = json!({});
    let reqs = container.resources.as_ref();
    let limits = reqs.and_then(|r| r.limits.as_ref());
    let requests = reqs.and_then(|r| r.requests.as_ref());
    // Requests default to limits, as the apiserver defaults them.
    let cpu_request = requests
        .and_then(|r| r.get("cpu"))
        .or_else(|| limits.and_then(|l| l.get("cpu")));
    let mut cpu = serde_json::Map::new();
    if let Some(q) = cpu_request {
        // 1024 shares per core, at least 2 (kernel minimum), as the kubelet computes.
        let shares = (cpu_millis(q)? * 1024 / 1000).max(2);
        cpu.insert("shares".into(), json!(shares));
    }
    if let Some(q) = limits.and_then(|l| l.get("cpu")) {
        let quota = (cpu_millis(q)? * CPU_PERIOD as i64 / 1000).max(1000);
        cpu.insert("quota".into(), json!(quota));
        cpu.insert("period".into(), json!(CPU_PERIOD));
    }
    if !cpu.is_empty() {
        res["cpu"] = Value::Object(cpu);
    }
    if let Some(q) = limits.and_then(|l| l.get("memory")) {
        res["memory"] = json!({"limit": quantity_bytes(q)?});
    }
    Ok(res)
}

/// One host path mounted into the container.
#[derive(Clone, Debug, PartialEq)]
pub struct BindMount {
    pub host_path: String,
    pub container_path: String,
    pub read_only: bool,
}

/// The full runtime spec. `args` come from [`process_args`], `env` from [`environment`].
pub fn build_spec(
    container: &Container,
    image: Option<&ImageConfig>,
    ctx: &SpecContext,
    args: Vec<String>,
    env: Vec<String>,
    binds: &[BindMount],
) -> anyhow::Result<Spec> {
    if args.is_empty() {
        bail!("no command specified: the container has no command and the image no entrypoint");
    }
    let sc = container.security_context.as_ref();
    let (image_uid, image_gid) = image
        .and_then(|c| c.user().clone())
        .map(|u| parse_numeric_user(&u))
        .unwrap_or((0, 0));
    let uid = sc.and_then(|s| s.run_as_user).unwrap_or(image_uid);
    let gid = sc.and_then(|s| s.run_as_group).unwrap_or(image_gid);
    let cwd = container
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| image.and_then(|c| c.working_dir().clone()))
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let caps = if privileged {
        json!(ALL_CAPS.to_vec())
    } else {
        json!(DEFAULT_CAPS.to_vec())
    };

    let joined = |kind: &str, path: &Option<String>| match path {
        Some(p) => json!({"type": kind, "path": p}),
        None => json!({"type": kind}),
    };
    let mut namespaces = vec![
        json!({"type": "pid"}),
        joined("ipc", &ctx.ipc_path),
        json!({"type": "mount"}),
    ];
    if !ctx.host_network {
        namespaces.push(joined("uts", &ctx.uts_path));
        match &ctx.netns_path {
            Some(path) => namespaces.push(json!({"type": "network", "path": path})),
            None => namespaces.push(json!({"type": "network"})),
        }
    }

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    for b in binds {
        let mut options = vec!["rbind", "rprivate"];
        options.push(if b.read_only { "ro" } else { "rw" });
        mounts.push(json!({
            "destination": b.container_path, "type": "bind", "source": b.host_path, "options": options,
        }));
    }

    let spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": !privileged && !sc.and_then(|s| s.allow_privilege_escalation).unwrap_or(true),
        },
        "root": {"path": "rootfs", "readonly": sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false)},
        "mounts": mounts,
        "linux": {
            "cgroupsPath": ctx.cgroups_path,
            "resources": {
                "devices": [{"allow": false, "access": "rwm"}],
            },
            "namespaces": namespaces,
            "maskedPaths": if privileged { json!([]) } else { json!(MASKED_PATHS.to_vec()) },
            "readonlyPaths": if privileged { json!([]) } else { json!(READONLY_PATHS.to_vec()) },
        },
    });
    let mut spec = spec;
    if !ctx.host_network {
        spec["hostname"] = json!(ctx.hostname);
    }
    let res = resources(container)?;
    if let Some(obj) = res.as_object() {
        for (k, v) in obj {
            spec["linux"]["resources"][k] = v.clone();
        }
    }
    serde_json::from_value(spec).context("building the OCI runtime spec")
}

/// A numeric `uid[:gid]` image user; names would need the image's /etc/passwd, so they map to root.
fn parse_numeric_user(user: &str) -> (i64, i64) {
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let uid = u.parse().unwrap_or(0);
    let gid = g
        .parse()
        .unwrap_or(if u.parse::<i64>().is_ok() { uid } else { 0 });
    (uid, gid)
}

/// The capabilities container runtimes grant by default.
const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const ALL_CAPS: [&str; 38] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
];

const MASKED_PATHS: [&str; 9] = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

const READONLY_PATHS: [&str; 6] = [
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn container(v: Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    fn image(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfig {
        let mut c = ImageConfig::default();
        c.set_entrypoint(entrypoint.map(|e| e.iter().map(|s| s.to_string()).collect()));
        c.set_cmd(cmd.map(|e| e.iter().map(|s| s.to_string()).collect()));
        c.set_env(Some(vec!["PATH=/bin".into(), "A=image".into()]));
        c
    }

    #[test]
    fn command_and_args_override_image() {
        let img = image(Some(&["/bin/sh", "-c"]), Some(&["echo img"]));
        let c = |v| container(v);
        assert_eq!(
            process_args(&c(json!({"name": "a"})), Some(&img)),
            ["/bin/sh", "-c", "echo img"]
        );
        assert_eq!(
            process_args(
                &c(json!({"name": "a", "command": ["echo", "x"]})),
                Some(&img)
            ),
            ["echo", "x"]
        );
        assert_eq!(
            process_args(&c(json!({"name": "a", "args": ["echo y"]})), Some(&img)),
            ["/bin/sh", "-c", "echo y"]
        );
        assert_eq!(
            process_args(
                &c(json!({"name": "a", "command": ["echo"], "args": ["z"]})),
                Some(&img)
            ),
            ["echo", "z"]
        );
    }

    #[test]
    fn env_merges_expands_and_resolves_field_refs() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"containers": []}
        }))
        .unwrap();
        let c = container(json!({"name": "a", "env": [
            {"name": "A", "value": "pod"},
            {"name": "B", "value": "$(A)-x-$$(A)-$(NOPE)"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            {"name": "API", "value": "https://$(KUBERNETES_SERVICE_HOST)"},
        ]}));
        let ctx = SpecContext {
            hostname: "p".into(),
            node_name: "n1".into(),
            service_env: vec![("KUBERNETES_SERVICE_HOST".into(), "10.96.0.1".into())],
            pod_ip: Some("10.1.0.5".into()),
            ..Default::default()
        };
        let resolved = BTreeMap::from([("CM".to_string(), "from-cm".to_string())]);
        let env = environment(&pod, &c, Some(&image(None, None)), &ctx, &resolved).unwrap();
        assert_eq!(
            env,
            [
                "PATH=/bin",
                "A=pod",
                "HOSTNAME=p",
                "KUBERNETES_SERVICE_HOST=10.96.0.1",
                "B=pod-x-$(A)-$(NOPE)",
                "POD=p",
                "NS=ns",
                "NODE=n1",
                "IP=10.1.0.5",
                "APP=web",
                "CM=from-cm",
                "API=https://10.96.0.1"
            ]
        );
    }

    #[test]
    fn quantities() {
        let q = |s: &str| Quantity(s.into());
        assert_eq!(cpu_millis(&q("500m")).unwrap(), 500);
        assert_eq!(cpu_millis(&q("2")).unwrap(), 2000);
        assert_eq!(cpu_millis(&q("0.25")).unwrap(), 250);
        assert_eq!(quantity_bytes(&q("64Mi")).unwrap(), 64 * 1024 * 1024);
        assert_eq!(quantity_bytes(&q("1G")).unwrap(), 1_000_000_000);
        assert_eq!(quantity_bytes(&q("128974848")).unwrap(), 128974848);
        assert_eq!(quantity_bytes(&q("129e6")).unwrap(), 129_000_000);
    }

    #[test]
    fn spec_has_limits_user_cwd_and_pod_netns() {
        let c = container(json!({
            "name": "a", "image": "x", "workingDir": "/work",
            "securityContext": {"runAsUser": 1000, "runAsGroup": 2000},
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}}
        }));
        let ctx = SpecContext {
            hostname: "pod-a".into(),
            cgroups_path: "/skiff/uid/cid".into(),
            netns_path: Some("/var/run/netns/x".into()),
            ..Default::default()
        };
        let binds = [BindMount {
            host_path: "/h".into(),
            container_path: "/c".into(),
            read_only: true,
        }];
        let spec = build_spec(&c, None, &ctx, vec!["sh".into()], vec![], &binds).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["process"]["user"]["uid"], 1000);
        assert_eq!(v["process"]["user"]["gid"], 2000);
        assert_eq!(v["process"]["cwd"], "/work");
        assert_eq!(v["hostname"], "pod-a");
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64 * 1024 * 1024);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(v["linux"]["resources"]["cpu"]["period"], 100_000);
        assert_eq!(v["linux"]["resources"]["cpu"]["shares"], 256);
        assert_eq!(v["linux"]["cgroupsPath"], "/skiff/uid/cid");
        let ns = v["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.contains(&json!({"type": "network", "path": "/var/run/netns/x"})));
        let mounts = v["mounts"].as_array().unwrap();
        assert!(mounts
            .iter()
            .any(|m| m["destination"] == "/c" && m["options"][2] == "ro"));
    }

    #[test]
    fn no_command_is_an_error() {
        let c = container(json!({"name": "a"}));
        assert!(build_spec(&c, None, &SpecContext::default(), vec![], vec![], &[]).is_err());
    }
}
