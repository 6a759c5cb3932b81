//! Cell formatting shared by the printers: ages, labels, selectors, lists, as kubectl's
//! printers render them.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------
// Human durations
// ---------------------------------------------------------------------------

/// Kubernetes' human duration, as in the AGE column: "0s", "45s", "5m3s", "10m", "3h2m", "2d4h", "45d", "3y50d" (port k8s.io/apimachinery/pkg/util/duration.HumanDuration semantics exactly).
pub fn human_duration(d: SignedDuration) -> String {
    // Integer division truncates towards zero, as Go's int(d.Seconds()) does.
    let millis = d.as_millis();
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
pub fn since(ts: Option<Timestamp>, now: Timestamp) -> String {
    match ts {
        Some(t) => human_duration(now.duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

pub fn age(obj: &Value, now: Timestamp) -> Value {
    Value::String(since(time_at(obj, &["metadata", "creationTimestamp"]), now))
}

// ---------------------------------------------------------------------------
// JSON access helpers
// ---------------------------------------------------------------------------

pub fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(*key))
}

pub fn st<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

pub fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub fn int(v: &Value, path: &[&str]) -> Option<i64> {
    get(v, path).and_then(|x| x.as_i64().or_else(|| x.as_f64().map(|f| f as i64)))
}

pub fn boolean(v: &Value, path: &[&str]) -> Option<bool> {
    get(v, path).and_then(Value::as_bool)
}

pub fn obj_len(v: &Value, path: &[&str]) -> usize {
    get(v, path)
        .and_then(Value::as_object)
        .map(Map::len)
        .unwrap_or(0)
}

pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

pub fn parse_time(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

pub fn time_at(v: &Value, path: &[&str]) -> Option<Timestamp> {
    get(v, path).and_then(parse_time)
}

pub fn name(obj: &Value) -> Value {
    Value::String(st(obj, &["metadata", "name"]).to_string())
}

pub fn s(x: impl Into<String>) -> Value {
    Value::String(x.into())
}

pub fn or_none(x: &str) -> String {
    if x.is_empty() {
        "<none>".to_string()
    } else {
        x.to_string()
    }
}

pub fn has_deletion_timestamp(obj: &Value) -> bool {
    get(obj, &["metadata", "deletionTimestamp"]).is_some_and(|v| !is_empty(v))
}

// ---------------------------------------------------------------------------
// Label / selector / container formatting
// ---------------------------------------------------------------------------

/// `labels.FormatLabels`: sorted `k=v` pairs joined by ",", or `<none>`.
pub fn format_labels(map: Option<&Value>) -> String {
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
pub(crate) fn selector_string(sel: Option<&Value>) -> Result<String, ()> {
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
pub fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(()) => "<error>".to_string(),
    }
}

/// Container names and images, each comma-joined.
pub fn layout_containers(pod_spec: Option<&Value>) -> (String, String) {
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
pub fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count - max);
    }
    if ret.is_empty() {
        return "<unset>".to_string();
    }
    ret
}

pub fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// --- Workloads -------------------------------------------------------------

pub fn spec_replicas(obj: &Value) -> i64 {
    // apps/v1 defaults spec.replicas to 1.
    int(obj, &["spec", "replicas"]).unwrap_or(1)
}

pub fn status_int(obj: &Value, field: &str) -> i64 {
    int(obj, &["status", field]).unwrap_or(0)
}

pub fn template_spec(obj: &Value) -> Option<&Value> {
    get(obj, &["spec", "template", "spec"])
}
