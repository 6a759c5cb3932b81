//! Server-side `meta.k8s.io/v1` Table rendering.
//!
//! When kubectl sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`
//! kube-apiserver answers with a `Table` whose columns and cells are produced
//! by its built-in printers. This module reproduces those printers for the
//! kinds skiff serves, so `kubectl get` (and `-o wide`, `--show-labels`, `-L`,
//! `-A`) look exactly as they do against a real cluster.
//!
//! As kube-apiserver does, every row carries all cells, wide ones included;
//! kubectl hides the columns with `priority > 0` unless `-o wide` is given.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

/// `?includeObject=` parameter: None | Metadata (default) | Object
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter; anything unrecognised or
    /// absent gives the default, `Metadata`.
    pub fn parse(s: Option<&str>) -> IncludeObject {
        match s.map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("none") => IncludeObject::None,
            Some(v) if v.eq_ignore_ascii_case("object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// True when the Accept header asks for a meta.k8s.io Table (v1 or v1beta1).
pub fn wants_table_accept(accept: &str) -> bool {
    accept.split(',').any(media_range_is_table)
}

fn media_range_is_table(range: &str) -> bool {
    let mut parts = range.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    if !matches!(
        media.as_str(),
        "application/json" | "application/*" | "*/*" | "*"
    ) {
        return false;
    }
    let (mut as_table, mut group_ok, mut version_ok, mut q_ok) = (false, false, false, true);
    for param in parts {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim().trim_matches('"');
        match key.as_str() {
            "as" => as_table = value == "Table",
            "g" => group_ok = value == "meta.k8s.io",
            "v" => version_ok = value == "v1" || value == "v1beta1",
            "q" => q_ok = value.parse::<f64>().map(|q| q > 0.0).unwrap_or(true),
            _ => {}
        }
    }
    as_table && group_ok && version_ok && q_ok
}

/// Table for a list response (`{"kind": "PodList", "metadata": {...}, "items": [...]}`) of `kind` (e.g. "Pod").
pub fn table_for_list(kind: &str, list: &Value, include_object: IncludeObject) -> Value {
    table_for_list_at(kind, list, include_object, Utc::now())
}

/// Table with one row for a single object.
pub fn table_for_object(kind: &str, obj: &Value, include_object: IncludeObject) -> Value {
    table_for_object_at(kind, obj, include_object, Utc::now())
}

/// [`table_for_list`] with an explicit "now", for deterministic ages.
pub(crate) fn table_for_list_at(
    kind: &str,
    list: &Value,
    include_object: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    let printer = printer_for(kind);
    let item_api_version = list.get("apiVersion").and_then(Value::as_str);
    let rows: Vec<Value> = arr(list, &["items"])
        .iter()
        .map(|item| {
            build_row(
                printer,
                kind_name(kind),
                item,
                item_api_version,
                include_object,
                now,
            )
        })
        .collect();
    let mut meta = Map::new();
    if let Some(rv) = get(list, &["metadata", "resourceVersion"]) {
        meta.insert("resourceVersion".into(), rv.clone());
    }
    if let Some(c) = get(list, &["metadata", "continue"]).filter(|c| !is_empty(c)) {
        meta.insert("continue".into(), c.clone());
    }
    if let Some(n) = get(list, &["metadata", "remainingItemCount"]).filter(|n| !n.is_null()) {
        meta.insert("remainingItemCount".into(), n.clone());
    }
    table_value(printer, meta, rows)
}

/// [`table_for_object`] with an explicit "now", for deterministic ages.
pub(crate) fn table_for_object_at(
    kind: &str,
    obj: &Value,
    include_object: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    let printer = printer_for(kind);
    let mut meta = Map::new();
    if let Some(rv) = get(obj, &["metadata", "resourceVersion"]) {
        meta.insert("resourceVersion".into(), rv.clone());
    }
    let row = build_row(printer, kind_name(kind), obj, None, include_object, now);
    table_value(printer, meta, vec![row])
}

fn table_value(printer: &Printer, meta: Map<String, Value>, rows: Vec<Value>) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": Value::Object(meta),
        "columnDefinitions": printer.columns.iter().map(Col::to_json).collect::<Vec<_>>(),
        "rows": rows,
    })
}

fn build_row(
    printer: &Printer,
    kind: &str,
    obj: &Value,
    api_version: Option<&str>,
    include_object: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array((printer.cells)(obj, now)));
    if let Some(conditions) = printer.conditions.and_then(|f| f(obj)) {
        row.insert("conditions".into(), conditions);
    }
    match include_object {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            let metadata = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
            row.insert(
                "object".into(),
                json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": metadata,
                }),
            );
        }
        IncludeObject::Object => {
            let mut full = obj.clone();
            if let Value::Object(m) = &mut full {
                // Items of a list usually come without kind/apiVersion; the
                // embedded object must be self-describing for the client.
                if !m.contains_key("apiVersion") {
                    if let Some(av) = api_version {
                        m.insert("apiVersion".into(), Value::String(av.to_string()));
                    }
                }
                if !m.contains_key("kind") {
                    m.insert("kind".into(), Value::String(kind.to_string()));
                }
            }
            row.insert("object".into(), full);
        }
    }
    Value::Object(row)
}

/// Accepts "Pod" as well as "PodList".
fn kind_name(kind: &str) -> &str {
    match kind.strip_suffix("List") {
        Some(base) if !base.is_empty() => base,
        _ => kind,
    }
}

// ---------------------------------------------------------------------------
// Human durations
// ---------------------------------------------------------------------------

/// Kubernetes' human duration, as in the AGE column: "0s", "45s", "5m3s", "10m", "3h2m", "2d4h", "45d", "3y50d" (port k8s.io/apimachinery/pkg/util/duration.HumanDuration semantics exactly).
pub fn human_duration(d: Duration) -> String {
    // Integer division truncates towards zero, as Go's int(d.Seconds()) does.
    let millis = d.num_milliseconds();
    let seconds = millis / 1000;
    // Up to 2 seconds (excluded) in the future is tolerated as clock skew.
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{years}y")
}

/// Elapsed time since `ts`, or `<unknown>` when there is no timestamp.
fn since(ts: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match ts {
        Some(t) => human_duration(now - t),
        None => "<unknown>".to_string(),
    }
}

fn age(obj: &Value, now: DateTime<Utc>) -> Value {
    Value::String(since(time_at(obj, &["metadata", "creationTimestamp"]), now))
}

// ---------------------------------------------------------------------------
// JSON access helpers
// ---------------------------------------------------------------------------

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(*key))
}

fn st<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn int(v: &Value, path: &[&str]) -> Option<i64> {
    get(v, path).and_then(|x| x.as_i64().or_else(|| x.as_f64().map(|f| f as i64)))
}

fn boolean(v: &Value, path: &[&str]) -> Option<bool> {
    get(v, path).and_then(Value::as_bool)
}

fn obj_len(v: &Value, path: &[&str]) -> usize {
    get(v, path)
        .and_then(Value::as_object)
        .map(Map::len)
        .unwrap_or(0)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn time_at(v: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    get(v, path).and_then(parse_time)
}

fn name(obj: &Value) -> Value {
    Value::String(st(obj, &["metadata", "name"]).to_string())
}

fn s(x: impl Into<String>) -> Value {
    Value::String(x.into())
}

fn or_none(x: &str) -> String {
    if x.is_empty() {
        "<none>".to_string()
    } else {
        x.to_string()
    }
}

fn has_deletion_timestamp(obj: &Value) -> bool {
    get(obj, &["metadata", "deletionTimestamp"]).is_some_and(|v| !is_empty(v))
}

// ---------------------------------------------------------------------------
// Label / selector / container formatting
// ---------------------------------------------------------------------------

/// `labels.FormatLabels`: sorted `k=v` pairs joined by ",", or `<none>`.
fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<(String, String)> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.LabelSelectorAsSelector(sel).String()`; `Err` for an invalid selector.
fn selector_string(sel: Option<&Value>) -> Result<String, ()> {
    let Some(sel) = sel.filter(|v| v.is_object()) else {
        return Ok(String::new());
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            let v = v.as_str().unwrap_or("");
            reqs.push((k.clone(), format!("{k}={v}")));
        }
    }
    for expr in arr(sel, &["matchExpressions"]) {
        let key = st(expr, &["key"]);
        let mut values: Vec<&str> = arr(expr, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        values.dedup();
        let text = match st(expr, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return Err(()),
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return Err(()),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(()),
        };
        reqs.push((key.to_string(), text));
    }
    // The selector keeps its requirements ordered by key.
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(","))
}

/// `metav1.FormatLabelSelector`.
fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(()) => "<error>".to_string(),
    }
}

/// Container names and images, each comma-joined.
fn layout_containers(pod_spec: Option<&Value>) -> (String, String) {
    let containers = pod_spec
        .and_then(|p| p.get("containers"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let names: Vec<&str> = containers.iter().map(|c| st(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| st(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// "a + N more..." truncation used by the endpoint-style columns.
fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count - max);
    }
    if ret.is_empty() {
        return "<unset>".to_string();
    }
    ret
}

fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// ---------------------------------------------------------------------------
// Columns
// ---------------------------------------------------------------------------

struct Col {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    priority: i32,
    description: &'static str,
}

impl Col {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

const fn c(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        priority: 0,
        description,
    }
}

const fn w(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        priority: 1,
        description,
    }
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const CONTAINERS_DESC: &str = "Names of each container in the template.";
const IMAGES_DESC: &str = "Images referenced by each container in the template.";
const SELECTOR_DESC: &str = "Label query over pods that should match the replica count.";

const NAME: Col = Col {
    name: "Name",
    ty: "string",
    format: "name",
    priority: 0,
    description: NAME_DESC,
};
const AGE: Col = c("Age", "string", AGE_DESC);

const POD_COLUMNS: &[Col] = &[
    NAME,
    c("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    c("Status", "string", "The aggregate status of the containers in this pod."),
    c("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    w("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    w("Node", "string", "NodeName indicates in which node this pod is scheduled."),
    w("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
    w("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
];

const DEPLOYMENT_COLUMNS: &[Col] = &[
    NAME,
    c("Ready", "string", "Number of the pod with ready state"),
    c("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    c("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    w("Containers", "string", CONTAINERS_DESC),
    w("Images", "string", IMAGES_DESC),
    w("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
];

const REPLICASET_COLUMNS: &[Col] = &[
    NAME,
    c(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas.",
    ),
    c(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas.",
    ),
    c(
        "Ready",
        "integer",
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    w("Containers", "string", CONTAINERS_DESC),
    w("Images", "string", IMAGES_DESC),
    w("Selector", "string", SELECTOR_DESC),
];

const REPLICATION_CONTROLLER_COLUMNS: &[Col] = REPLICASET_COLUMNS;

const STATEFULSET_COLUMNS: &[Col] = &[
    NAME,
    c("Ready", "string", "Number of the pod with ready state"),
    AGE,
    w("Containers", "string", CONTAINERS_DESC),
    w("Images", "string", IMAGES_DESC),
];

const DAEMONSET_COLUMNS: &[Col] = &[
    NAME,
    c("Desired", "integer", "The total number of nodes that should be running the daemon pod."),
    c("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
    c("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
    c("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
    c("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
    c("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
    AGE,
    w("Containers", "string", CONTAINERS_DESC),
    w("Images", "string", IMAGES_DESC),
    w("Selector", "string", "A label query over pods that are managed by the daemon set."),
];

const JOB_COLUMNS: &[Col] = &[
    NAME,
    c("Status", "string", "Status of the job."),
    c(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded.",
    ),
    c("Duration", "string", "Time required to complete the job."),
    AGE,
    w("Containers", "string", CONTAINERS_DESC),
    w("Images", "string", IMAGES_DESC),
    w(
        "Selector",
        "string",
        "A label query over pods that should match the pod count.",
    ),
];

const CRONJOB_COLUMNS: &[Col] = &[
    NAME,
    c(
        "Schedule",
        "string",
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    ),
    c(
        "Timezone",
        "string",
        "The time zone name for the given schedule.",
    ),
    c(
        "Suspend",
        "boolean",
        "This flag tells the controller to suspend subsequent executions.",
    ),
    c(
        "Active",
        "integer",
        "A list of pointers to currently running jobs.",
    ),
    c(
        "Last Schedule",
        "string",
        "Information when was the last time the job was successfully scheduled.",
    ),
    AGE,
    w("Containers", "string", CONTAINERS_DESC),
    w("Images", "string", IMAGES_DESC),
    w(
        "Selector",
        "string",
        "A label query over pods that should match the pod count.",
    ),
];

const SERVICE_COLUMNS: &[Col] = &[
    NAME,
    c("Type", "string", "type determines how the Service is exposed."),
    c("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
    c("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    c("Port(s)", "string", "The list of ports that are exposed by this service."),
    AGE,
    w("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
];

const ENDPOINTS_COLUMNS: &[Col] = &[
    NAME,
    c(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

const ENDPOINTSLICE_COLUMNS: &[Col] = &[
    NAME,
    c(
        "AddressType",
        "string",
        "addressType specifies the type of address carried by this EndpointSlice.",
    ),
    c(
        "Ports",
        "string",
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    c(
        "Endpoints",
        "string",
        "endpoints is a list of unique endpoints in this slice.",
    ),
    AGE,
];

const NODE_COLUMNS: &[Col] = &[
    NAME,
    c("Status", "string", "The status of the node"),
    c("Roles", "string", "The roles of the node"),
    AGE,
    c("Version", "string", "Kubelet Version reported by the node."),
    w("Internal-IP", "string", "List of addresses reachable to the node."),
    w("External-IP", "string", "List of addresses reachable to the node."),
    w("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    w("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    w("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];

const EVENT_COLUMNS: &[Col] = &[
    c("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    c("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    c("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    c("Object", "string", "The object that this event is about."),
    w("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."),
    w("Source", "string", "The component reporting this event. Should be a short machine understandable string."),
    c("Message", "string", "A human-readable description of the status of this operation."),
    w("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
    w("Count", "string", "The number of times this event has occurred."),
    Col {
        name: "Name",
        ty: "string",
        format: "name",
        priority: 1,
        description: NAME_DESC,
    },
];

const NAMESPACE_COLUMNS: &[Col] = &[
    NAME,
    c("Status", "string", "The status of the namespace"),
    AGE,
];

const CONFIGMAP_COLUMNS: &[Col] = &[
    NAME,
    c("Data", "string", "Data contains the configuration data."),
    AGE,
];

const SECRET_COLUMNS: &[Col] = &[
    NAME,
    c(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    c("Data", "string", "Data contains the secret data."),
    AGE,
];

const SERVICEACCOUNT_COLUMNS: &[Col] = &[
    NAME,
    c("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];

const LEASE_COLUMNS: &[Col] = &[
    NAME,
    c(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

const DEFAULT_COLUMNS: &[Col] = &[NAME, AGE];

// ---------------------------------------------------------------------------
// Printers
// ---------------------------------------------------------------------------

type CellsFn = fn(&Value, DateTime<Utc>) -> Vec<Value>;
type ConditionsFn = fn(&Value) -> Option<Value>;

struct Printer {
    columns: &'static [Col],
    cells: CellsFn,
    conditions: Option<ConditionsFn>,
}

const fn printer(columns: &'static [Col], cells: CellsFn) -> Printer {
    Printer {
        columns,
        cells,
        conditions: None,
    }
}

static POD: Printer = Printer {
    columns: POD_COLUMNS,
    cells: pod_cells,
    conditions: Some(pod_row_conditions),
};
static DEPLOYMENT: Printer = printer(DEPLOYMENT_COLUMNS, deployment_cells);
static REPLICASET: Printer = printer(REPLICASET_COLUMNS, replicaset_cells);
static REPLICATION_CONTROLLER: Printer =
    printer(REPLICATION_CONTROLLER_COLUMNS, replication_controller_cells);
static STATEFULSET: Printer = printer(STATEFULSET_COLUMNS, statefulset_cells);
static DAEMONSET: Printer = printer(DAEMONSET_COLUMNS, daemonset_cells);
static JOB: Printer = printer(JOB_COLUMNS, job_cells);
static CRONJOB: Printer = printer(CRONJOB_COLUMNS, cronjob_cells);
static SERVICE: Printer = printer(SERVICE_COLUMNS, service_cells);
static ENDPOINTS: Printer = printer(ENDPOINTS_COLUMNS, endpoints_cells);
static ENDPOINTSLICE: Printer = printer(ENDPOINTSLICE_COLUMNS, endpointslice_cells);
static NODE: Printer = printer(NODE_COLUMNS, node_cells);
static EVENT: Printer = printer(EVENT_COLUMNS, event_cells);
static NAMESPACE: Printer = printer(NAMESPACE_COLUMNS, namespace_cells);
static CONFIGMAP: Printer = printer(CONFIGMAP_COLUMNS, configmap_cells);
static SECRET: Printer = printer(SECRET_COLUMNS, secret_cells);
static SERVICEACCOUNT: Printer = printer(SERVICEACCOUNT_COLUMNS, serviceaccount_cells);
static LEASE: Printer = printer(LEASE_COLUMNS, lease_cells);
static DEFAULT: Printer = printer(DEFAULT_COLUMNS, default_cells);

fn printer_for(kind: &str) -> &'static Printer {
    match kind_name(kind) {
        "Pod" => &POD,
        "Deployment" => &DEPLOYMENT,
        "ReplicaSet" => &REPLICASET,
        "ReplicationController" => &REPLICATION_CONTROLLER,
        "StatefulSet" => &STATEFULSET,
        "DaemonSet" => &DAEMONSET,
        "Job" => &JOB,
        "CronJob" => &CRONJOB,
        "Service" => &SERVICE,
        "Endpoints" => &ENDPOINTS,
        "EndpointSlice" => &ENDPOINTSLICE,
        "Node" => &NODE,
        "Event" => &EVENT,
        "Namespace" => &NAMESPACE,
        "ConfigMap" => &CONFIGMAP,
        "Secret" => &SECRET,
        "ServiceAccount" => &SERVICEACCOUNT,
        "Lease" => &LEASE,
        _ => &DEFAULT,
    }
}

fn default_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(obj), age(obj, now)]
}

// --- Pod -------------------------------------------------------------------

fn pod_row_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match st(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    }]))
}

fn pod_condition_true(pod: &Value, ty: &str) -> bool {
    arr(pod, &["status", "conditions"])
        .iter()
        .find(|c| st(c, &["type"]) == ty)
        .is_some_and(|c| st(c, &["status"]) == "True")
}

fn has_pod_ready_condition(pod: &Value) -> bool {
    arr(pod, &["status", "conditions"])
        .iter()
        .any(|c| st(c, &["type"]) == "Ready" && st(c, &["status"]) == "True")
}

fn is_restartable_init_container(pod: &Value, container_name: &str) -> bool {
    arr(pod, &["spec", "initContainers"])
        .iter()
        .find(|c| st(c, &["name"]) == container_name)
        .is_some_and(|c| st(c, &["restartPolicy"]) == "Always")
}

fn last_termination(status: &Value) -> Option<Option<DateTime<Utc>>> {
    get(status, &["lastState", "terminated"])
        .filter(|t| t.is_object())
        .map(|t| time_at(t, &["finishedAt"]))
}

fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Reason text for a terminated container that reported no reason.
fn exit_text(terminated: &Value) -> String {
    let signal = int(terminated, &["signal"]).unwrap_or(0);
    if signal != 0 {
        format!("Signal:{signal}")
    } else {
        format!("ExitCode:{}", int(terminated, &["exitCode"]).unwrap_or(0))
    }
}

/// READY, STATUS and RESTARTS exactly as kube-apiserver's pod printer
/// derives them.
fn pod_status_summary(pod: &Value, now: DateTime<Utc>) -> (String, String, String) {
    let init_specs = arr(pod, &["spec", "initContainers"]);
    let mut total = arr(pod, &["spec", "containers"]).len();
    total += init_specs
        .iter()
        .filter(|c| st(c, &["restartPolicy"]) == "Always")
        .count();
    let mut ready = 0usize;
    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;

    let phase = st(pod, &["status", "phase"]);
    let status_reason = st(pod, &["status", "reason"]);
    // A freshly created pod that has not been given a phase yet is Pending.
    let mut reason = if !status_reason.is_empty() {
        status_reason.to_string()
    } else if phase.is_empty() {
        "Pending".to_string()
    } else {
        phase.to_string()
    };
    if arr(pod, &["status", "conditions"])
        .iter()
        .any(|c| st(c, &["type"]) == "PodScheduled" && st(c, &["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    let init_statuses = arr(pod, &["status", "initContainerStatuses"]);
    let mut initializing = false;
    for (i, cs) in init_statuses.iter().enumerate() {
        restarts += int(cs, &["restartCount"]).unwrap_or(0);
        if let Some(finished) = last_termination(cs) {
            last_restart = later(last_restart, finished);
        }
        let restartable = is_restartable_init_container(pod, st(cs, &["name"]));
        if restartable {
            sidecar_restarts += int(cs, &["restartCount"]).unwrap_or(0);
            if let Some(finished) = last_termination(cs) {
                last_sidecar_restart = later(last_sidecar_restart, finished);
            }
        }
        let terminated = get(cs, &["state", "terminated"]).filter(|t| t.is_object());
        let waiting = get(cs, &["state", "waiting"]).filter(|t| t.is_object());
        if terminated.is_some_and(|t| int(t, &["exitCode"]).unwrap_or(0) == 0) {
            continue;
        }
        if restartable && boolean(cs, &["started"]) == Some(true) {
            if boolean(cs, &["ready"]) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            let r = st(t, &["reason"]);
            reason = if r.is_empty() {
                format!("Init:{}", exit_text(t))
            } else {
                format!("Init:{r}")
            };
        } else if let Some(wr) = waiting
            .map(|w| st(w, &["reason"]))
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{wr}");
        } else {
            reason = format!("Init:{}/{}", i, init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || pod_condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in arr(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int(cs, &["restartCount"]).unwrap_or(0);
            if let Some(finished) = last_termination(cs) {
                last_restart = later(last_restart, finished);
            }
            let waiting_reason = get(cs, &["state", "waiting"])
                .filter(|w| w.is_object())
                .map(|w| st(w, &["reason"]))
                .unwrap_or("");
            let terminated = get(cs, &["state", "terminated"]).filter(|t| t.is_object());
            let running = get(cs, &["state", "running"]).is_some_and(Value::is_object);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                let r = st(t, &["reason"]);
                reason = if r.is_empty() {
                    exit_text(t)
                } else {
                    r.to_string()
                };
            } else if boolean(cs, &["ready"]) == Some(true) && running {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_pod_ready_condition(pod) {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if has_deletion_timestamp(pod) {
        if status_reason == "NodeLost" {
            reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };
    (format!("{ready}/{total}"), reason, restarts_text)
}

fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (ready, reason, restarts) = pod_status_summary(pod, now);
    let pod_ip = arr(pod, &["status", "podIPs"])
        .first()
        .map(|ip| st(ip, &["ip"]))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| st(pod, &["status", "podIP"]));
    let gates = arr(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr(pod, &["status", "conditions"]);
        let true_count = gates
            .iter()
            .filter(|g| {
                let ty = st(g, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| st(c, &["type"]) == ty)
                    .is_some_and(|c| st(c, &["status"]) == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        name(pod),
        s(ready),
        s(reason),
        s(restarts),
        age(pod, now),
        s(or_none(pod_ip)),
        s(or_none(st(pod, &["spec", "nodeName"]))),
        s(or_none(st(pod, &["status", "nominatedNodeName"]))),
        s(readiness_gates),
    ]
}

// --- Workloads -------------------------------------------------------------

fn spec_replicas(obj: &Value) -> i64 {
    // apps/v1 defaults spec.replicas to 1.
    int(obj, &["spec", "replicas"]).unwrap_or(1)
}

fn status_int(obj: &Value, field: &str) -> i64 {
    int(obj, &["status", field]).unwrap_or(0)
}

fn template_spec(obj: &Value) -> Option<&Value> {
    get(obj, &["spec", "template", "spec"])
}

fn deployment_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = layout_containers(template_spec(obj));
    let selector =
        selector_string(get(obj, &["spec", "selector"])).unwrap_or_else(|()| "<invalid>".into());
    vec![
        name(obj),
        s(format!(
            "{}/{}",
            status_int(obj, "readyReplicas"),
            spec_replicas(obj)
        )),
        json!(status_int(obj, "updatedReplicas")),
        json!(status_int(obj, "availableReplicas")),
        age(obj, now),
        s(names),
        s(images),
        s(selector),
    ]
}

fn replicaset_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = layout_containers(template_spec(obj));
    vec![
        name(obj),
        json!(spec_replicas(obj)),
        json!(status_int(obj, "replicas")),
        json!(status_int(obj, "readyReplicas")),
        age(obj, now),
        s(names),
        s(images),
        s(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

fn replication_controller_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = layout_containers(template_spec(obj));
    vec![
        name(obj),
        json!(spec_replicas(obj)),
        json!(status_int(obj, "replicas")),
        json!(status_int(obj, "readyReplicas")),
        age(obj, now),
        s(names),
        s(images),
        // A ReplicationController selector is a plain label map.
        s(format_labels(get(obj, &["spec", "selector"]))),
    ]
}

fn statefulset_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = layout_containers(template_spec(obj));
    vec![
        name(obj),
        s(format!(
            "{}/{}",
            status_int(obj, "readyReplicas"),
            spec_replicas(obj)
        )),
        age(obj, now),
        s(names),
        s(images),
    ]
}

fn daemonset_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = layout_containers(template_spec(obj));
    vec![
        name(obj),
        json!(status_int(obj, "desiredNumberScheduled")),
        json!(status_int(obj, "currentNumberScheduled")),
        json!(status_int(obj, "numberReady")),
        json!(status_int(obj, "updatedNumberScheduled")),
        json!(status_int(obj, "numberAvailable")),
        s(format_labels(get(
            obj,
            &["spec", "template", "spec", "nodeSelector"],
        ))),
        age(obj, now),
        s(names),
        s(images),
        s(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

/// First condition of `ty` decides; true only when its status is "True".
fn job_condition(obj: &Value, ty: &str) -> bool {
    arr(obj, &["status", "conditions"])
        .iter()
        .find(|c| st(c, &["type"]) == ty)
        .is_some_and(|c| st(c, &["status"]) == "True")
}

fn job_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let succeeded = status_int(obj, "succeeded");
    let completions = match int(obj, &["spec", "completions"]) {
        Some(n) => format!("{succeeded}/{n}"),
        None => {
            let parallelism = int(obj, &["spec", "parallelism"]).unwrap_or(0);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let duration = match (
        time_at(obj, &["status", "startTime"]),
        time_at(obj, &["status", "completionTime"]),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let status = if job_condition(obj, "Complete") {
        "Complete"
    } else if job_condition(obj, "Failed") {
        "Failed"
    } else if has_deletion_timestamp(obj) {
        "Terminating"
    } else if job_condition(obj, "Suspended") {
        "Suspended"
    } else if job_condition(obj, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = layout_containers(template_spec(obj));
    vec![
        name(obj),
        s(status),
        s(completions),
        s(duration),
        age(obj, now),
        s(names),
        s(images),
        s(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

fn cronjob_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let last_schedule = match time_at(obj, &["status", "lastScheduleTime"]) {
        Some(t) => since(Some(t), now),
        None => "<none>".to_string(),
    };
    let time_zone = get(obj, &["spec", "timeZone"])
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let suspend = match boolean(obj, &["spec", "suspend"]) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let job_template = get(obj, &["spec", "jobTemplate"]).unwrap_or(&Value::Null);
    let (names, images) = layout_containers(template_spec(job_template));
    vec![
        name(obj),
        s(st(obj, &["spec", "schedule"])),
        s(time_zone),
        s(suspend),
        json!(arr(obj, &["status", "active"]).len()),
        s(last_schedule),
        age(obj, now),
        s(names),
        s(images),
        s(format_label_selector(get(
            job_template,
            &["spec", "selector"],
        ))),
    ]
}

// --- Service / Endpoints ---------------------------------------------------

fn load_balancer_ingress(svc: &Value) -> Vec<String> {
    let mut out: Vec<String> = arr(svc, &["status", "loadBalancer", "ingress"])
        .iter()
        .filter_map(|i| {
            let ip = st(i, &["ip"]);
            let host = st(i, &["hostname"]);
            if !ip.is_empty() {
                Some(ip.to_string())
            } else if !host.is_empty() {
                Some(host.to_string())
            } else {
                None
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn service_type(svc: &Value) -> &str {
    match st(svc, &["spec", "type"]) {
        "" => "ClusterIP",
        t => t,
    }
}

fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = arr(svc, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match service_type(svc) {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".to_string()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut all = load_balancer_ingress(svc);
            if !external.is_empty() {
                all.extend(external.iter().map(|e| e.to_string()));
                return all.join(",");
            }
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => st(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

fn service_ports(svc: &Value) -> String {
    let pieces: Vec<String> = arr(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int(p, &["port"]).unwrap_or(0);
            let protocol = match st(p, &["protocol"]) {
                "" => "TCP",
                proto => proto,
            };
            match int(p, &["nodePort"]).filter(|n| *n > 0) {
                Some(node_port) => format!("{port}:{node_port}/{protocol}"),
                None => format!("{port}/{protocol}"),
            }
        })
        .collect();
    if pieces.is_empty() {
        "<none>".to_string()
    } else {
        pieces.join(",")
    }
}

fn service_cells(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let cluster_ip = arr(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| st(svc, &["spec", "clusterIP"]));
    vec![
        name(svc),
        s(service_type(svc)),
        s(or_none(cluster_ip)),
        s(service_external_ip(svc)),
        s(service_ports(svc)),
        age(svc, now),
        s(format_labels(get(svc, &["spec", "selector"]))),
    ]
}

/// Kubernetes' `formatEndpoints` with all ports: at most three
/// `ip:port` entries, then " + N more...".
fn format_endpoints(ep: &Value) -> String {
    const MAX: usize = 3;
    let subsets = arr(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for subset in subsets {
        let addresses = arr(subset, &["addresses"]);
        let ports = arr(subset, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(st(a, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            let port_num = int(port, &["port"]).unwrap_or(0);
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(st(a, &["ip"]), port_num));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

fn endpoints_cells(ep: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(ep), s(format_endpoints(ep)), age(ep, now)]
}

fn format_discovery_ports(slice: &Value) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for p in arr(slice, &["ports"]) {
        if list.len() < MAX {
            let text = match (int(p, &["port"]), get(p, &["name"]).and_then(Value::as_str)) {
                (Some(n), _) => n.to_string(),
                (None, Some(n)) => n.to_string(),
                (None, None) => "*".to_string(),
            };
            list.push(text);
        } else if list.len() == MAX {
            more = true;
        }
        count += 1;
    }
    list_with_more(&list, more, count, MAX)
}

fn format_discovery_endpoints(slice: &Value) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for e in arr(slice, &["endpoints"]) {
        for a in arr(e, &["addresses"]) {
            if list.len() < MAX {
                list.push(a.as_str().unwrap_or("").to_string());
            } else if list.len() == MAX {
                more = true;
            }
            count += 1;
        }
    }
    list_with_more(&list, more, count, MAX)
}

fn endpointslice_cells(slice: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(slice),
        s(st(slice, &["addressType"])),
        s(format_discovery_ports(slice)),
        s(format_discovery_endpoints(slice)),
        age(slice, now),
    ]
}

// --- Node ------------------------------------------------------------------

fn node_roles(node: &Value) -> String {
    const PREFIX: &str = "node-role.kubernetes.io/";
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = get(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix(PREFIX) {
                if !role.is_empty() {
                    roles.push(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                let v = v.as_str().unwrap_or("");
                if !v.is_empty() {
                    roles.push(v.to_string());
                }
            }
        }
    }
    roles.sort();
    roles.dedup();
    or_none(&roles.join(","))
}

fn node_address(node: &Value, ty: &str) -> String {
    arr(node, &["status", "addresses"])
        .iter()
        .find(|a| st(a, &["type"]) == ty)
        .map(|a| st(a, &["address"]).to_string())
        .unwrap_or_else(|| "<none>".to_string())
}

fn node_cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // Only the Ready condition is reported; the last one of that type wins.
    let ready = arr(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| st(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if st(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if boolean(node, &["spec", "unschedulable"]) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let info = |field: &str| match st(node, &["status", "nodeInfo", field]) {
        "" => "<unknown>".to_string(),
        v => v.to_string(),
    };
    vec![
        name(node),
        s(status.join(",")),
        s(node_roles(node)),
        age(node, now),
        s(st(node, &["status", "nodeInfo", "kubeletVersion"])),
        s(node_address(node, "InternalIP")),
        s(node_address(node, "ExternalIP")),
        s(info("osImage")),
        s(info("kernelVersion")),
        s(info("containerRuntimeVersion")),
    ]
}

// --- Event -----------------------------------------------------------------

fn event_cells(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let first_seen = match time_at(ev, &["firstTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => since(time_at(ev, &["eventTime"]), now),
    };
    let mut last_seen = match time_at(ev, &["lastTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = int(ev, &["count"]).unwrap_or(0);
    if let Some(series) = get(ev, &["series"]).filter(|v| v.is_object()) {
        last_seen = since(time_at(series, &["lastObservedTime"]), now);
        count = int(series, &["count"]).unwrap_or(0);
    } else if count == 0 {
        // Singleton events from the events.k8s.io API carry no count.
        count = 1;
    }
    let kind = st(ev, &["involvedObject", "kind"]).to_lowercase();
    let obj_name = st(ev, &["involvedObject", "name"]);
    let target = if obj_name.is_empty() {
        kind
    } else {
        format!("{kind}/{obj_name}")
    };
    let component = match st(ev, &["source", "component"]) {
        "" => st(ev, &["reportingComponent"]),
        c => c,
    };
    let host = match st(ev, &["source", "host"]) {
        "" => st(ev, &["reportingInstance"]),
        h => h,
    };
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        s(last_seen),
        s(st(ev, &["type"])),
        s(st(ev, &["reason"])),
        s(target),
        s(st(ev, &["involvedObject", "fieldPath"])),
        s(source),
        s(st(ev, &["message"]).trim()),
        s(first_seen),
        json!(count),
        name(ev),
    ]
}

// --- Simple kinds ----------------------------------------------------------

fn namespace_cells(ns: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let phase = match st(ns, &["status", "phase"]) {
        "" if has_deletion_timestamp(ns) => "Terminating",
        "" => "Active",
        p => p,
    };
    vec![name(ns), s(phase), age(ns, now)]
}

fn configmap_cells(cm: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let n = obj_len(cm, &["data"]) + obj_len(cm, &["binaryData"]);
    vec![name(cm), json!(n), age(cm, now)]
}

fn secret_cells(secret: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ty = match st(secret, &["type"]) {
        "" => "Opaque",
        t => t,
    };
    vec![
        name(secret),
        s(ty),
        json!(obj_len(secret, &["data"])),
        age(secret, now),
    ]
}

fn serviceaccount_cells(sa: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(sa), json!(arr(sa, &["secrets"]).len()), age(sa, now)]
}

fn lease_cells(lease: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(lease),
        s(st(lease, &["spec", "holderIdentity"])),
        age(lease, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-06-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// RFC 3339 timestamp `secs` seconds before `now()`.
    fn ago(secs: i64) -> String {
        (now() - Duration::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    fn table(kind: &str, obj: &Value) -> Value {
        table_for_object_at(kind, obj, IncludeObject::Metadata, now())
    }

    fn cells(kind: &str, obj: &Value) -> Vec<Value> {
        table(kind, obj)["rows"][0]["cells"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn headers(kind: &str) -> Vec<(String, i64)> {
        table(kind, &json!({}))["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["priority"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    fn names(cols: &[(String, i64)], priority: i64) -> Vec<&str> {
        cols.iter()
            .filter(|(_, p)| *p == priority)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    fn assert_headers(kind: &str, normal: &[&str], wide: &[&str]) {
        let cols = headers(kind);
        assert_eq!(names(&cols, 0), normal, "{kind} normal columns");
        assert_eq!(names(&cols, 1), wide, "{kind} wide columns");
        // Every row carries one cell per column.
        assert_eq!(
            cells(kind, &json!({})).len(),
            cols.len(),
            "{kind} cell count"
        );
    }

    fn strs(v: &[Value]) -> Vec<String> {
        v.iter()
            .map(|c| match c {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    }

    // ---- human_duration ----------------------------------------------------

    #[test]
    fn human_duration_boundaries() {
        let cases: &[(i64, &str)] = &[
            (-3, "<invalid>"),
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (1, "1s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (121, "2m1s"),
            (303, "5m3s"),
            (599, "9m59s"),
            (600, "10m"),
            (601, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 120, "3h2m"),
            (8 * 3600 - 60, "7h59m"),
            (8 * 3600, "8h"),
            (8 * 3600 + 60, "8h"),
            (48 * 3600 - 1, "47h"),
            (48 * 3600, "2d"),
            (52 * 3600, "2d4h"),
            (8 * 86400 - 3600, "7d23h"),
            (8 * 86400, "8d"),
            (45 * 86400, "45d"),
            (730 * 86400 - 1, "729d"),
            (730 * 86400, "2y"),
            ((3 * 365 + 50) * 86400, "3y50d"),
            (8 * 365 * 86400 - 1, "7y364d"),
            (8 * 365 * 86400, "8y"),
            ((8 * 365 + 100) * 86400, "8y"),
            (20 * 365 * 86400, "20y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::seconds(*secs)), *want, "{secs}s");
        }
        // Sub-second precision truncates toward zero like Go's int(d.Seconds()).
        assert_eq!(human_duration(Duration::milliseconds(-1999)), "0s");
        assert_eq!(human_duration(Duration::milliseconds(-2000)), "<invalid>");
        assert_eq!(human_duration(Duration::milliseconds(999)), "0s");
        assert_eq!(human_duration(Duration::milliseconds(120_999)), "2m");
    }

    // ---- Accept / includeObject -------------------------------------------

    #[test]
    fn accept_header_detection() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert!(wants_table_accept(kubectl));
        assert!(wants_table_accept(
            "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
        ));
        assert!(wants_table_accept(
            "application/json; as=Table; g=meta.k8s.io; v=v1"
        ));
        assert!(wants_table_accept(
            "application/json;as=\"Table\";v=\"v1\";g=\"meta.k8s.io\""
        ));
        assert!(wants_table_accept(
            "application/vnd.kubernetes.protobuf, application/json;as=Table;v=v1;g=meta.k8s.io"
        ));
        assert!(!wants_table_accept("application/json"));
        assert!(!wants_table_accept("*/*"));
        assert!(!wants_table_accept(""));
        assert!(!wants_table_accept(
            "application/json;as=Table;v=v2;g=meta.k8s.io"
        ));
        assert!(!wants_table_accept("application/json;as=Table;v=v1"));
        assert!(!wants_table_accept(
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
        ));
        assert!(!wants_table_accept(
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io"
        ));
        assert!(!wants_table_accept(
            "application/json;as=Table;v=v1;g=meta.k8s.io;q=0"
        ));
    }

    #[test]
    fn include_object_parse() {
        assert_eq!(IncludeObject::parse(None), IncludeObject::Metadata);
        assert_eq!(IncludeObject::parse(Some("None")), IncludeObject::None);
        assert_eq!(IncludeObject::parse(Some("Object")), IncludeObject::Object);
        assert_eq!(
            IncludeObject::parse(Some("Metadata")),
            IncludeObject::Metadata
        );
        assert_eq!(IncludeObject::parse(Some("bogus")), IncludeObject::Metadata);
        assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
    }

    // ---- Table shape --------------------------------------------------------

    fn pod_list() -> Value {
        json!({
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "42", "continue": "abc", "remainingItemCount": 3},
            "items": [
                {"metadata": {"name": "a", "namespace": "default", "labels": {"app": "x"},
                              "creationTimestamp": ago(60)},
                 "spec": {"containers": [{"name": "c"}]},
                 "status": {"phase": "Pending"}},
                {"metadata": {"name": "b", "namespace": "kube-system", "creationTimestamp": ago(7200)},
                 "spec": {"containers": [{"name": "c"}]},
                 "status": {"phase": "Pending"}}
            ]
        })
    }

    #[test]
    fn list_table_shape_with_metadata_objects() {
        let t = table_for_list_at("Pod", &pod_list(), IncludeObject::Metadata, now());
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "42", "continue": "abc", "remainingItemCount": 3})
        );
        let first = &t["columnDefinitions"][0];
        assert_eq!(first["name"], "Name");
        assert_eq!(first["type"], "string");
        assert_eq!(first["format"], "name");
        assert_eq!(first["priority"], 0);
        assert!(first["description"].as_str().unwrap().contains("unique"));
        let rows = t["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["cells"][0], "a");
        assert_eq!(rows[1]["cells"][4], "120m");
        assert_eq!(
            rows[0]["object"],
            json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": "a", "namespace": "default", "labels": {"app": "x"},
                             "creationTimestamp": ago(60)}
            })
        );
        assert_eq!(rows[1]["object"]["metadata"]["namespace"], "kube-system");
    }

    #[test]
    fn list_table_include_none_and_object() {
        let t = table_for_list_at("PodList", &pod_list(), IncludeObject::None, now());
        let row = t["rows"][0].as_object().unwrap();
        assert!(!row.contains_key("object"));
        assert_eq!(t["rows"][0]["cells"][0], "a");

        let t = table_for_list_at("Pod", &pod_list(), IncludeObject::Object, now());
        let obj = &t["rows"][1]["object"];
        assert_eq!(obj["kind"], "Pod");
        assert_eq!(obj["apiVersion"], "v1");
        assert_eq!(obj["status"]["phase"], "Pending");
    }

    #[test]
    fn empty_list_and_single_object_metadata() {
        let t = table_for_list_at(
            "Pod",
            &json!({"kind": "PodList", "metadata": {"resourceVersion": "7", "continue": ""}, "items": []}),
            IncludeObject::Metadata,
            now(),
        );
        assert_eq!(t["rows"], json!([]));
        assert_eq!(t["metadata"], json!({"resourceVersion": "7"}));
        let t = table_for_object_at(
            "ConfigMap",
            &json!({"metadata": {"name": "c", "resourceVersion": "99"}}),
            IncludeObject::Metadata,
            now(),
        );
        assert_eq!(t["metadata"], json!({"resourceVersion": "99"}));
        assert_eq!(t["rows"].as_array().unwrap().len(), 1);
        // Public wrappers work with the real clock.
        let t = table_for_object(
            "ConfigMap",
            &json!({"metadata": {"name": "c"}}),
            IncludeObject::None,
        );
        assert_eq!(t["rows"][0]["cells"], json!(["c", 0, "<unknown>"]));
        let t = table_for_list("Pod", &pod_list(), IncludeObject::Metadata);
        assert_eq!(t["rows"].as_array().unwrap().len(), 2);
    }

    // ---- Pod ----------------------------------------------------------------

    #[test]
    fn pod_headers() {
        assert_headers(
            "Pod",
            &["Name", "Ready", "Status", "Restarts", "Age"],
            &["IP", "Node", "Nominated Node", "Readiness Gates"],
        );
    }

    fn running_pod() -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": ago(3 * 86400 + 3600)},
            "spec": {"nodeName": "node-a", "containers": [{"name": "app"}, {"name": "sidecar"}]},
            "status": {
                "phase": "Running",
                "podIP": "10.244.0.5",
                "podIPs": [{"ip": "10.244.0.5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ago(100)}}},
                    {"name": "sidecar", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ago(100)}}}
                ]
            }
        })
    }

    #[test]
    fn pod_running_row() {
        assert_eq!(
            cells("Pod", &running_pod()),
            vec![
                json!("web-1"),
                json!("2/2"),
                json!("Running"),
                json!("0"),
                json!("3d1h"),
                json!("10.244.0.5"),
                json!("node-a"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn pod_crashloop_with_restart_age() {
        let pod = json!({
            "metadata": {"name": "crashy", "creationTimestamp": ago(3600)},
            "spec": {"containers": [{"name": "app"}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [{
                    "name": "app", "ready": false, "restartCount": 5,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}}
                }]
            }
        });
        let c = strs(&cells("Pod", &pod));
        assert_eq!(c[1..5], ["0/1", "CrashLoopBackOff", "5 (5m ago)", "60m"]);
        // Wide cells fall back to <none>.
        assert_eq!(c[5..], ["<none>", "<none>", "<none>", "<none>"]);
    }

    #[test]
    fn pod_restart_suffix_uses_latest_termination_and_needs_a_date() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(7200)}}},
                {"name": "b", "ready": true, "restartCount": 1, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(45)}}}
            ]}
        });
        let c = strs(&cells("Pod", &pod));
        assert_eq!(c[1..5], ["2/2", "Running", "3 (45s ago)", "<unknown>"]);

        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 4, "state": {"running": {}}}
            ]}
        });
        assert_eq!(cells("Pod", &pod)[3], "4");
    }

    #[test]
    fn pod_completed_and_row_conditions() {
        let pod = json!({
            "metadata": {"name": "job-x", "creationTimestamp": ago(600)},
            "spec": {"containers": [{"name": "main"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [{
                "name": "main", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": ago(500)}}
            }]}
        });
        let t = table("Pod", &pod);
        assert_eq!(
            strs(t["rows"][0]["cells"].as_array().unwrap())[1..5],
            ["0/1", "Completed", "0", "10m"]
        );
        assert_eq!(
            t["rows"][0]["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."}])
        );
        let running = table("Pod", &running_pod());
        assert!(running["rows"][0].get("conditions").is_none());
    }

    #[test]
    fn pod_completed_container_with_running_sibling() {
        let mut pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "conditions": [], "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}
            ]}
        });
        assert_eq!(cells("Pod", &pod)[2], "NotReady");
        pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        assert_eq!(cells("Pod", &pod)[2], "Running");
        assert_eq!(cells("Pod", &pod)[1], "1/2");
    }

    #[test]
    fn pod_terminated_without_reason() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 137}}}
            ]}
        });
        assert_eq!(cells("Pod", &pod)[2], "ExitCode:137");
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "signal": 9}}}
            ]}
        });
        assert_eq!(cells("Pod", &pod)[2], "Signal:9");
    }

    #[test]
    fn pod_terminating() {
        let mut pod = running_pod();
        pod["metadata"]["deletionTimestamp"] = json!(ago(5));
        assert_eq!(cells("Pod", &pod)[2], "Terminating");
        // A terminal pod keeps its final status while being deleted.
        pod["status"]["phase"] = json!("Succeeded");
        pod["status"]["containerStatuses"] = json!([
            {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "sidecar", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        ]);
        assert_eq!(cells("Pod", &pod)[2], "Completed");
        // Pods on an unreachable node show Unknown.
        let mut lost = running_pod();
        lost["metadata"]["deletionTimestamp"] = json!(ago(5));
        lost["status"]["reason"] = json!("NodeLost");
        assert_eq!(cells("Pod", &lost)[2], "Unknown");
    }

    #[test]
    fn pod_init_states() {
        let base = |init_status: Value, conditions: Value| {
            json!({
                "metadata": {"name": "p"},
                "spec": {"initContainers": [{"name": "init-a"}, {"name": "init-b"}],
                         "containers": [{"name": "app"}]},
                "status": {"phase": "Pending", "conditions": conditions,
                           "initContainerStatuses": init_status,
                           "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                                                  "state": {"waiting": {"reason": "PodInitializing"}}}]}
            })
        };
        // First init container running.
        let pod = base(
            json!([
                {"name": "init-a", "restartCount": 0, "state": {"running": {}}},
                {"name": "init-b", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
            ]),
            json!([]),
        );
        assert_eq!(strs(&cells("Pod", &pod))[1..4], ["0/1", "Init:0/2", "0"]);
        // First done, second running.
        let pod = base(
            json!([
                {"name": "init-a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "init-b", "restartCount": 0, "state": {"running": {}}}
            ]),
            json!([]),
        );
        assert_eq!(cells("Pod", &pod)[2], "Init:1/2");
        // Init container crash looping; restarts counted from init containers.
        let pod = base(
            json!([
                {"name": "init-a", "restartCount": 3,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}},
                {"name": "init-b", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
            ]),
            json!([]),
        );
        assert_eq!(
            strs(&cells("Pod", &pod))[1..4],
            ["0/1", "Init:CrashLoopBackOff", "3 (30s ago)"]
        );
        // Init container failed.
        let pod = base(
            json!([{"name": "init-a", "restartCount": 0,
                    "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]),
            json!([]),
        );
        assert_eq!(cells("Pod", &pod)[2], "Init:Error");
        let pod = base(
            json!([{"name": "init-a", "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}]),
            json!([]),
        );
        assert_eq!(cells("Pod", &pod)[2], "Init:ExitCode:2");
        // Once initialised the app containers decide.
        let pod = base(
            json!([
                {"name": "init-a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "init-b", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
            ]),
            json!([{"type": "Initialized", "status": "True"}]),
        );
        assert_eq!(cells("Pod", &pod)[2], "PodInitializing");
    }

    #[test]
    fn pod_container_creating_and_image_pull() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": ago(5)},
            "spec": {"nodeName": "n1", "containers": [{"name": "app"}]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "ContainerCreating"}}}
            ]}
        });
        assert_eq!(
            strs(&cells("Pod", &pod))[1..7],
            ["0/1", "ContainerCreating", "0", "5s", "<none>", "n1"]
        );
        let mut pull = pod.clone();
        pull["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "ErrImagePull"}});
        assert_eq!(cells("Pod", &pull)[2], "ErrImagePull");
        // Brand-new pod without status is Pending with 0/N ready.
        let fresh = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(strs(&cells("Pod", &fresh))[1..4], ["0/2", "Pending", "0"]);
        // Scheduling gates win over the phase.
        let gated = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}});
        assert_eq!(cells("Pod", &gated)[2], "SchedulingGated");
        // Evicted pods show status.reason.
        let evicted = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "reason": "Evicted"}});
        assert_eq!(cells("Pod", &evicted)[2], "Evicted");
    }

    #[test]
    fn pod_sidecar_init_container_counts() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                     "containers": [{"name": "app"}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 2,
                    "state": {"running": {}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(120)}}}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 1, "state": {"running": {}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(600)}}}]}
        });
        assert_eq!(
            strs(&cells("Pod", &pod))[1..4],
            ["2/2", "Running", "3 (2m ago)"]
        );
    }

    #[test]
    fn pod_readiness_gates_and_nominated_node() {
        let mut pod = running_pod();
        pod["spec"]["readinessGates"] = json!([
            {"conditionType": "example.com/feature-1"},
            {"conditionType": "example.com/feature-2"}
        ]);
        pod["status"]["conditions"] = json!([
            {"type": "Ready", "status": "True"},
            {"type": "example.com/feature-1", "status": "True"},
            {"type": "example.com/feature-2", "status": "False"}
        ]);
        pod["status"]["nominatedNodeName"] = json!("node-b");
        let c = strs(&cells("Pod", &pod));
        assert_eq!(c[7..], ["node-b", "1/2"]);
    }

    // ---- Workloads ----------------------------------------------------------

    fn template(containers: Value) -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
    }

    #[test]
    fn deployment_headers_and_row() {
        assert_headers(
            "Deployment",
            &["Name", "Ready", "Up-to-date", "Available", "Age"],
            &["Containers", "Images", "Selector"],
        );
        let d = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(86400 * 10)},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"}},
                     "template": template(json!([{"name": "nginx", "image": "nginx:1.25"},
                                                 {"name": "log", "image": "busybox"}]))},
            "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}
        });
        assert_eq!(
            cells("Deployment", &d),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("10d"),
                json!("nginx,log"),
                json!("nginx:1.25,busybox"),
                json!("app=web,tier=fe"),
            ]
        );
        // No status yet, default replicas.
        let d =
            json!({"metadata": {"name": "x"}, "spec": {"selector": {"matchLabels": {"a": "b"}}}});
        assert_eq!(strs(&cells("Deployment", &d))[1..4], ["0/1", "0", "0"]);
    }

    #[test]
    fn replicaset_headers_and_row() {
        assert_headers(
            "ReplicaSet",
            &["Name", "Desired", "Current", "Ready", "Age"],
            &["Containers", "Images", "Selector"],
        );
        let rs = json!({
            "metadata": {"name": "web-7d4b9c", "creationTimestamp": ago(90)},
            "spec": {"replicas": 2,
                     "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c"},
                                  "matchExpressions": [
                                      {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                      {"key": "canary", "operator": "DoesNotExist"},
                                      {"key": "zone", "operator": "NotIn", "values": ["b"]},
                                      {"key": "gpu", "operator": "Exists"}]},
                     "template": template(json!([{"name": "nginx", "image": "nginx"}]))},
            "status": {"replicas": 2, "readyReplicas": 1}
        });
        assert_eq!(
            cells("ReplicaSet", &rs),
            vec![
                json!("web-7d4b9c"),
                json!(2),
                json!(2),
                json!(1),
                json!("90s"),
                json!("nginx"),
                json!("nginx"),
                json!(
                    "app=web,!canary,env in (dev,prod),gpu,pod-template-hash=7d4b9c,zone notin (b)"
                ),
            ]
        );
        let bare = json!({"metadata": {"name": "r"}, "spec": {"replicas": 0}});
        assert_eq!(
            strs(&cells("ReplicaSet", &bare)),
            ["r", "0", "0", "0", "<unknown>", "", "", "<none>"]
        );
        let bad = json!({"metadata": {"name": "r"}, "spec": {"selector": {"matchExpressions": [
            {"key": "a", "operator": "Bogus"}]}}});
        assert_eq!(cells("ReplicaSet", &bad)[7], "<error>");
    }

    #[test]
    fn job_headers_and_rows() {
        assert_headers(
            "Job",
            &["Name", "Status", "Completions", "Duration", "Age"],
            &["Containers", "Images", "Selector"],
        );
        let job = json!({
            "metadata": {"name": "pi", "creationTimestamp": ago(600)},
            "spec": {"completions": 3, "parallelism": 1,
                     "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                     "template": template(json!([{"name": "pi", "image": "perl:5.34"}]))},
            "status": {"succeeded": 3, "startTime": ago(590), "completionTime": ago(545),
                       "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                      {"type": "Complete", "status": "True"}]}
        });
        assert_eq!(
            strs(&cells("Job", &job)),
            [
                "pi",
                "Complete",
                "3/3",
                "45s",
                "10m",
                "pi",
                "perl:5.34",
                "batch.kubernetes.io/controller-uid=abc"
            ]
        );
        let running = json!({"metadata": {"name": "j"},
            "spec": {"parallelism": 4}, "status": {"succeeded": 1, "startTime": ago(303)}});
        assert_eq!(
            strs(&cells("Job", &running))[1..4],
            ["Running", "1/1 of 4", "5m3s"]
        );
        let suspended = json!({"metadata": {"name": "j"}, "spec": {"completions": 1, "suspend": true},
            "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(
            strs(&cells("Job", &suspended))[1..4],
            ["Suspended", "0/1", ""]
        );
        let failed = json!({"metadata": {"name": "j"}, "spec": {},
            "status": {"failed": 6, "conditions": [{"type": "FailureTarget", "status": "True"},
                                                   {"type": "Failed", "status": "True"}]}});
        assert_eq!(strs(&cells("Job", &failed))[1..3], ["Failed", "0/1"]);
        let target = json!({"metadata": {"name": "j"}, "spec": {},
            "status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}});
        assert_eq!(cells("Job", &target)[1], "FailureTarget");
        let deleting = json!({"metadata": {"name": "j", "deletionTimestamp": ago(1)}, "spec": {}});
        assert_eq!(cells("Job", &deleting)[1], "Terminating");
        let not_complete = json!({"metadata": {"name": "j"}, "spec": {},
            "status": {"conditions": [{"type": "Complete", "status": "False"}]}});
        assert_eq!(cells("Job", &not_complete)[1], "Running");
    }

    #[test]
    fn statefulset_daemonset_cronjob_rc() {
        assert_headers(
            "StatefulSet",
            &["Name", "Ready", "Age"],
            &["Containers", "Images"],
        );
        let sts = json!({"metadata": {"name": "db", "creationTimestamp": ago(60)},
            "spec": {"replicas": 3, "template": template(json!([{"name": "pg", "image": "postgres:16"}]))},
            "status": {"readyReplicas": 3}});
        assert_eq!(
            strs(&cells("StatefulSet", &sts)),
            ["db", "3/3", "60s", "pg", "postgres:16"]
        );

        assert_headers(
            "DaemonSet",
            &[
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age",
            ],
            &["Containers", "Images", "Selector"],
        );
        let ds = json!({"metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                           "containers": [{"name": "a", "image": "agent:1"}]}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                       "updatedNumberScheduled": 2, "numberAvailable": 1}});
        assert_eq!(
            cells("DaemonSet", &ds),
            vec![
                json!("agent"),
                json!(2),
                json!(2),
                json!(1),
                json!(2),
                json!(1),
                json!("kubernetes.io/os=linux"),
                json!("<unknown>"),
                json!("a"),
                json!("agent:1"),
                json!("app=agent"),
            ]
        );

        assert_headers(
            "CronJob",
            &[
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
            ],
            &["Containers", "Images", "Selector"],
        );
        let cj = json!({"metadata": {"name": "hello", "creationTimestamp": ago(3600)},
            "spec": {"schedule": "*/1 * * * *", "suspend": false,
                     "jobTemplate": {"spec": {"template": template(json!([{"name": "hello", "image": "busybox"}]))}}},
            "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": ago(20)}});
        assert_eq!(
            cells("CronJob", &cj),
            vec![
                json!("hello"),
                json!("*/1 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("20s"),
                json!("60m"),
                json!("hello"),
                json!("busybox"),
                json!("<none>"),
            ]
        );

        let rc = json!({"metadata": {"name": "rc"}, "spec": {"replicas": 2, "selector": {"app": "x"}},
            "status": {"replicas": 2, "readyReplicas": 2}});
        assert_eq!(cells("ReplicationController", &rc)[7], "app=x");
    }

    // ---- Service ------------------------------------------------------------

    #[test]
    fn service_headers_and_rows() {
        assert_headers(
            "Service",
            &[
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
            ],
            &["Selector"],
        );
        let svc = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(7200)},
            "spec": {"type": "NodePort", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
                     "selector": {"app": "web", "tier": "frontend"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                               {"name": "https", "port": 443, "protocol": "TCP"},
                               {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 31053}]}
        });
        assert_eq!(
            strs(&cells("Service", &svc)),
            [
                "web",
                "NodePort",
                "10.96.12.34",
                "<none>",
                "80:30080/TCP,443/TCP,53:31053/UDP",
                "120m",
                "app=web,tier=frontend"
            ]
        );
        let kubernetes = json!({"metadata": {"name": "kubernetes"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 443}]}});
        assert_eq!(
            strs(&cells("Service", &kubernetes))[1..5],
            ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
        );
        let headless = json!({"metadata": {"name": "db"},
            "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"],
                     "externalIPs": ["1.2.3.4", "5.6.7.8"]}});
        assert_eq!(
            strs(&cells("Service", &headless))[1..7],
            [
                "ClusterIP",
                "None",
                "1.2.3.4,5.6.7.8",
                "<none>",
                "<unknown>",
                "<none>"
            ]
        );
        let lb = json!({"metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.9"],
                     "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]}});
        assert_eq!(cells("Service", &lb)[3], "<pending>");
        let mut lb_ready = lb.clone();
        lb_ready["status"] = json!({"loadBalancer": {"ingress": [
            {"ip": "203.0.113.9"}, {"hostname": "a.example.com"}, {"ip": "203.0.113.10"}]}});
        assert_eq!(
            cells("Service", &lb_ready)[3],
            "203.0.113.10,203.0.113.9,a.example.com"
        );
        lb_ready["spec"]["externalIPs"] = json!(["198.51.100.1"]);
        assert_eq!(
            cells("Service", &lb_ready)[3],
            "203.0.113.10,203.0.113.9,a.example.com,198.51.100.1"
        );
        let ext = json!({"metadata": {"name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        assert_eq!(
            strs(&cells("Service", &ext))[1..5],
            ["ExternalName", "<none>", "db.example.com", "<none>"]
        );
    }

    // ---- Endpoints / EndpointSlice -----------------------------------------

    fn addrs(ips: &[&str]) -> Value {
        Value::Array(ips.iter().map(|ip| json!({"ip": ip})).collect())
    }

    #[test]
    fn endpoints_headers_and_formatting() {
        assert_headers("Endpoints", &["Name", "Endpoints", "Age"], &[]);
        let ep = json!({"metadata": {"name": "web", "creationTimestamp": ago(30)},
            "subsets": [{"addresses": addrs(&["10.0.0.1", "10.0.0.2"]), "ports": [{"port": 80}]}]});
        assert_eq!(
            strs(&cells("Endpoints", &ep)),
            ["web", "10.0.0.1:80,10.0.0.2:80", "30s"]
        );
        let many = json!({"metadata": {"name": "web"},
            "subsets": [{"addresses": addrs(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]),
                         "ports": [{"port": 80}]}]});
        assert_eq!(
            cells("Endpoints", &many)[1],
            "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more..."
        );
        // Two ports multiply the count; exactly three fits without "more".
        let two_ports = json!({"metadata": {"name": "web"},
            "subsets": [{"addresses": addrs(&["10.0.0.1", "10.0.0.2"]),
                         "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}]});
        assert_eq!(
            cells("Endpoints", &two_ports)[1],
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
        );
        let three = json!({"metadata": {"name": "web"},
            "subsets": [{"addresses": addrs(&["10.0.0.1"]), "ports": [{"port": 1}]},
                        {"addresses": addrs(&["10.0.0.2", "10.0.0.3"]), "ports": [{"port": 2}]}]});
        assert_eq!(
            cells("Endpoints", &three)[1],
            "10.0.0.1:1,10.0.0.2:2,10.0.0.3:2"
        );
        let headless = json!({"metadata": {"name": "h"},
            "subsets": [{"addresses": addrs(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"])}]});
        assert_eq!(
            cells("Endpoints", &headless)[1],
            "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."
        );
        let v6 = json!({"metadata": {"name": "v6"},
            "subsets": [{"addresses": addrs(&["fd00::1"]), "ports": [{"port": 8080}]}]});
        assert_eq!(cells("Endpoints", &v6)[1], "[fd00::1]:8080");
        let none = json!({"metadata": {"name": "e"}});
        assert_eq!(cells("Endpoints", &none)[1], "<none>");
        let only_not_ready = json!({"metadata": {"name": "e"},
            "subsets": [{"notReadyAddresses": addrs(&["10.0.0.1"]), "ports": [{"port": 80}]}]});
        assert_eq!(cells("Endpoints", &only_not_ready)[1], "");
    }

    #[test]
    fn endpointslice_headers_and_row() {
        assert_headers(
            "EndpointSlice",
            &["Name", "AddressType", "Ports", "Endpoints", "Age"],
            &[],
        );
        let slice = json!({"metadata": {"name": "web-abc12", "creationTimestamp": ago(3 * 3600 + 120)},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics"},
                      {"port": 9090}, {"port": 9091}],
            "endpoints": [{"addresses": ["10.1.0.1"]}, {"addresses": ["10.1.0.2", "10.1.0.3"]},
                          {"addresses": ["10.1.0.4"]}]});
        assert_eq!(
            strs(&cells("EndpointSlice", &slice)),
            [
                "web-abc12",
                "IPv4",
                "80,metrics,9090 + 1 more...",
                "10.1.0.1,10.1.0.2,10.1.0.3 + 1 more...",
                "3h2m"
            ]
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv4",
            "ports": [{}], "endpoints": []});
        assert_eq!(
            strs(&cells("EndpointSlice", &empty))[2..4],
            ["*", "<unset>"]
        );
        let no_ports = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
        assert_eq!(
            strs(&cells("EndpointSlice", &no_ports))[2..4],
            ["<unset>", "<unset>"]
        );
    }

    // ---- Node ---------------------------------------------------------------

    fn node(conditions: Value, unschedulable: bool, labels: Value) -> Value {
        json!({
            "metadata": {"name": "node-1", "labels": labels, "creationTimestamp": ago(45 * 86400)},
            "spec": {"unschedulable": unschedulable},
            "status": {
                "conditions": conditions,
                "addresses": [{"type": "Hostname", "address": "node-1"},
                              {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.30.2", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.7.13"}
            }
        })
    }

    #[test]
    fn node_headers_and_rows() {
        assert_headers(
            "Node",
            &["Name", "Status", "Roles", "Age", "Version"],
            &[
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime",
            ],
        );
        let ready = json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]);
        let n = node(
            ready.clone(),
            false,
            json!({"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "node-1"}),
        );
        assert_eq!(
            strs(&cells("Node", &n)),
            [
                "node-1",
                "Ready",
                "control-plane",
                "45d",
                "v1.30.2",
                "192.168.1.10",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0-18-amd64",
                "containerd://1.7.13"
            ]
        );
        let cordoned = node(ready, true, json!({}));
        assert_eq!(
            strs(&cells("Node", &cordoned))[1..3],
            ["Ready,SchedulingDisabled", "<none>"]
        );
        let not_ready = node(
            json!([{"type": "Ready", "status": "False"}]),
            false,
            json!(null),
        );
        assert_eq!(cells("Node", &not_ready)[1], "NotReady");
        let unknown_status = node(
            json!([{"type": "Ready", "status": "Unknown"}]),
            false,
            json!({}),
        );
        assert_eq!(cells("Node", &unknown_status)[1], "NotReady");
        let no_cond = node(json!([]), true, json!({}));
        assert_eq!(cells("Node", &no_cond)[1], "Unknown,SchedulingDisabled");
        let roles = node(
            json!([]),
            false,
            json!({"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/infra": "true",
                   "kubernetes.io/role": "master", "node-role.kubernetes.io/": ""}),
        );
        assert_eq!(cells("Node", &roles)[2], "infra,master,worker");
        let bare = json!({"metadata": {"name": "n"}});
        assert_eq!(
            strs(&cells("Node", &bare))[1..],
            [
                "Unknown",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]
        );
    }

    // ---- Event --------------------------------------------------------------

    #[test]
    fn event_headers_and_row() {
        let cols = headers("Event");
        let all: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            all,
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
        assert_eq!(
            names(&cols, 0),
            ["Last Seen", "Type", "Reason", "Object", "Message"]
        );
        let ev = json!({
            "metadata": {"name": "web-1.17d9a", "namespace": "default", "creationTimestamp": ago(600)},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default",
                               "fieldPath": "spec.containers{app}"},
            "reason": "BackOff",
            "message": "Back-off restarting failed container\n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": ago(600),
            "lastTimestamp": ago(30),
            "count": 7,
            "type": "Warning"
        });
        assert_eq!(
            cells("Event", &ev),
            vec![
                json!("30s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-1"),
                json!("spec.containers{app}"),
                json!("kubelet, node-1"),
                json!("Back-off restarting failed container"),
                json!("10m"),
                json!(7),
                json!("web-1.17d9a"),
            ]
        );
        // events.k8s.io-style event: eventTime only, reporting fields, no count.
        let new_style = json!({
            "metadata": {"name": "e2"},
            "involvedObject": {"kind": "Node"},
            "reason": "Starting", "type": "Normal", "message": "Starting kubelet.",
            "eventTime": "2024-06-01T11:59:15.123456Z",
            "reportingComponent": "kubelet", "reportingInstance": ""
        });
        let c = strs(&cells("Event", &new_style));
        assert_eq!(c[0], "44s");
        assert_eq!(c[3], "node");
        assert_eq!(c[5], "kubelet");
        assert_eq!(c[7], "44s");
        assert_eq!(c[8], "1");
        let series = json!({
            "metadata": {"name": "e3"}, "involvedObject": {"kind": "Pod", "name": "p"},
            "eventTime": ago(3600), "series": {"count": 12, "lastObservedTime": "2024-06-01T11:58:00.000000Z"}
        });
        let c = strs(&cells("Event", &series));
        assert_eq!(
            (c[0].as_str(), c[7].as_str(), c[8].as_str()),
            ("2m", "60m", "12")
        );
        let nothing = json!({"metadata": {"name": "e4"}});
        assert_eq!(strs(&cells("Event", &nothing))[0], "<unknown>");
    }

    // ---- Small kinds --------------------------------------------------------

    #[test]
    fn namespace_configmap_secret_lease_serviceaccount() {
        assert_headers("Namespace", &["Name", "Status", "Age"], &[]);
        let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": ago(86400 * 400)},
            "status": {"phase": "Active"}});
        assert_eq!(
            strs(&cells("Namespace", &ns)),
            ["kube-system", "Active", "400d"]
        );
        let deleting = json!({"metadata": {"name": "x", "deletionTimestamp": ago(1)},
            "status": {"phase": "Terminating"}});
        assert_eq!(cells("Namespace", &deleting)[1], "Terminating");

        assert_headers("ConfigMap", &["Name", "Data", "Age"], &[]);
        let cm = json!({"metadata": {"name": "kube-root-ca.crt", "creationTimestamp": ago(50)},
            "data": {"ca.crt": "...", "other": "x"}, "binaryData": {"bin": "AAAA"}});
        assert_eq!(
            cells("ConfigMap", &cm),
            vec![json!("kube-root-ca.crt"), json!(3), json!("50s")]
        );

        assert_headers("Secret", &["Name", "Type", "Data", "Age"], &[]);
        let secret = json!({"metadata": {"name": "tls", "creationTimestamp": ago(86400 * 3)},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            cells("Secret", &secret),
            vec![
                json!("tls"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("3d")
            ]
        );
        let opaque = json!({"metadata": {"name": "s"}});
        assert_eq!(
            cells("Secret", &opaque),
            vec![json!("s"), json!("Opaque"), json!(0), json!("<unknown>")]
        );

        assert_headers("Lease", &["Name", "Holder", "Age"], &[]);
        let lease = json!({"metadata": {"name": "kube-scheduler", "creationTimestamp": ago(3600 * 5)},
            "spec": {"holderIdentity": "master-1_3f2a", "leaseDurationSeconds": 15}});
        assert_eq!(
            strs(&cells("Lease", &lease)),
            ["kube-scheduler", "master-1_3f2a", "5h"]
        );
        assert_eq!(cells("Lease", &json!({"metadata": {"name": "l"}}))[1], "");

        assert_headers("ServiceAccount", &["Name", "Secrets", "Age"], &[]);
        let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "t"}]});
        assert_eq!(cells("ServiceAccount", &sa)[1], json!(1));
    }

    #[test]
    fn unknown_kind_gets_name_and_age() {
        assert_headers("Widget", &["Name", "Age"], &[]);
        let obj = json!({"metadata": {"name": "w1", "creationTimestamp": ago(5 * 60 + 3)}});
        assert_eq!(strs(&cells("Widget", &obj)), ["w1", "5m3s"]);
        let future = json!({"metadata": {"name": "w2", "creationTimestamp": ago(-10)}});
        assert_eq!(cells("Widget", &future)[1], "<invalid>");
        let garbage = json!({"metadata": {"name": "w3", "creationTimestamp": "yesterday"}});
        assert_eq!(cells("Widget", &garbage)[1], "<unknown>");
    }

    #[test]
    fn column_types_match_kubernetes() {
        let ty = |kind: &str, col: &str| -> String {
            table(kind, &json!({}))["columnDefinitions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == col)
                .unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(ty("Pod", "Restarts"), "string");
        assert_eq!(ty("ReplicaSet", "Desired"), "integer");
        assert_eq!(ty("Deployment", "Up-to-date"), "string");
        assert_eq!(ty("CronJob", "Suspend"), "boolean");
        assert_eq!(ty("Event", "Count"), "string");
        // Only Name columns carry the "name" format.
        let t = table("Event", &json!({}));
        for c in t["columnDefinitions"].as_array().unwrap() {
            let expected = if c["name"] == "Name" { "name" } else { "" };
            assert_eq!(c["format"], expected);
        }
    }
}
