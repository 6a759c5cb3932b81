//! `get`, `events` and `api-resources`. Tables come from the server, as kubectl asks for them.

use clap::Args;
use futures::StreamExt;
use http::Method;
use serde_json::Value;

use crate::apply::no_resources_message;
use crate::client::{query, Ctx, TABLE_ACCEPT};
use crate::discovery::Resource;
use crate::error::{CtlError, Result};
use crate::printer::{self, TableOptions};
use crate::{jsonpath, split_targets, Io};

#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    /// TYPE[,TYPE] [NAME...] or TYPE/NAME...
    pub targets: Vec<String>,
    /// Output format: wide, yaml, json, name, jsonpath=TEMPLATE.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Label selector (e.g. app=web,tier!=db).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (e.g. spec.nodeName=n1).
    #[arg(long)]
    pub field_selector: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Add a LABELS column.
    #[arg(long)]
    pub show_labels: bool,
    /// Omit the header line.
    #[arg(long)]
    pub no_headers: bool,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Only watch (no initial list).
    #[arg(long)]
    pub watch_only: bool,
    /// Prefix watched rows with the event type.
    #[arg(long)]
    pub output_watch_events: bool,
    /// Keep metadata.managedFields in JSON and YAML output.
    #[arg(long)]
    pub show_managed_fields: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Table { wide: bool },
    Json,
    Yaml,
    Name,
    JsonPath(String),
}

pub fn parse_output(o: Option<&str>) -> Result<Output> {
    Ok(match o {
        None | Some("") => Output::Table { wide: false },
        Some("wide") => Output::Table { wide: true },
        Some("json") => Output::Json,
        Some("yaml") => Output::Yaml,
        Some("name") => Output::Name,
        Some(o) if o.starts_with("jsonpath=") => Output::JsonPath(o["jsonpath=".len()..].to_string()),
        Some(o) => {
            return Err(CtlError::usage(format!(
                "unable to match a printer suitable for the output format \"{o}\", allowed formats are: json,jsonpath,name,wide,yaml"
            )))
        }
    })
}

struct Query<'r> {
    res: &'r Resource,
    name: Option<String>,
}

pub async fn get(ctx: &Ctx, io: &mut Io<'_>, args: &GetArgs) -> Result<()> {
    let output = parse_output(args.output.as_deref())?;
    let disc = ctx.discovery().await?;
    let mut queries: Vec<Query> = Vec::new();
    for (ty, name) in split_targets(&args.targets)? {
        queries.push(Query {
            res: disc.resolve(&ty)?,
            name,
        });
    }
    let several_types = {
        let mut kinds: Vec<&str> = queries.iter().map(|q| q.res.plural.as_str()).collect();
        kinds.dedup();
        kinds.len() > 1
    };
    let ns_of = |res: &Resource| -> Option<String> {
        (res.namespaced && !args.all_namespaces).then(|| ctx.namespace.clone())
    };
    let list_query = |extra: bool| {
        let mut pairs = vec![
            ("labelSelector", args.selector.clone().unwrap_or_default()),
            (
                "fieldSelector",
                args.field_selector.clone().unwrap_or_default(),
            ),
        ];
        if extra {
            pairs.push(("includeObject", "Metadata".to_string()));
        }
        pairs
    };

    if args.watch || args.watch_only {
        let [q] = queries.as_slice() else {
            return Err(CtlError::usage(
                "you may only specify a single resource type with --watch",
            ));
        };
        return watch_table(ctx, io, args, &output, q.res, ns_of(q.res), q.name.clone()).await;
    }

    match &output {
        Output::Table { wide } => {
            let mut printed_any = false;
            let mut errors = Vec::new();
            // Consecutive queries of one type (names) share a table.
            let mut i = 0;
            while i < queries.len() {
                let res = queries[i].res;
                let mut group = Vec::new();
                while i < queries.len() && queries[i].res == res {
                    group.push(queries[i].name.clone());
                    i += 1;
                }
                let ns = ns_of(res);
                let mut table: Option<Value> = None;
                for name in group {
                    let path = match &name {
                        Some(n) => res.item(ns.as_deref(), n),
                        None => format!(
                            "{}{}",
                            res.collection(ns.as_deref()),
                            query(&list_query(true))
                        ),
                    };
                    match ctx.request(Method::GET, &path, None, TABLE_ACCEPT).await {
                        Ok(t) => match &mut table {
                            None => table = Some(t),
                            Some(acc) => {
                                let rows = t["rows"].as_array().cloned().unwrap_or_default();
                                if let Some(r) = acc["rows"].as_array_mut() {
                                    r.extend(rows);
                                }
                            }
                        },
                        Err(e) if e.is_not_found() && name.is_some() => errors.push(e),
                        Err(e) => return Err(e),
                    }
                }
                let Some(table) = table else { continue };
                if table["rows"].as_array().is_none_or(|r| r.is_empty()) {
                    continue;
                }
                let opts = TableOptions {
                    wide: *wide,
                    namespace_column: args.all_namespaces && res.namespaced,
                    show_labels: args.show_labels,
                    no_headers: args.no_headers,
                    name_prefix: several_types.then(|| format!("{}/", res.kind_group())),
                };
                if printed_any {
                    io.out("\n");
                }
                io.out(&printer::align(&printer::table_cells(&table, &opts)));
                printed_any = true;
            }
            let had_errors = !errors.is_empty();
            for e in errors {
                io.err(&format!("{}\n", e.render()));
            }
            if had_errors {
                return Err(CtlError::usage("some objects were not found"));
            }
            if !printed_any {
                let all_cluster = queries.iter().all(|q| !q.res.namespaced);
                let ns = (!args.all_namespaces && !all_cluster).then_some(ctx.namespace.as_str());
                io.err(&no_resources_message(ns));
            }
            Ok(())
        }
        other => {
            let mut items = Vec::new();
            let single = queries.len() == 1 && queries[0].name.is_some();
            for q in &queries {
                let ns = ns_of(q.res);
                match &q.name {
                    Some(n) => items.push((q.res, ctx.get(&q.res.item(ns.as_deref(), n)).await?)),
                    None => {
                        let list = ctx
                            .get(&format!(
                                "{}{}",
                                q.res.collection(ns.as_deref()),
                                query(&list_query(false))
                            ))
                            .await?;
                        for mut item in list["items"].as_array().cloned().unwrap_or_default() {
                            // Lists omit each item's apiVersion and kind; kubectl fills them in.
                            if let Some(m) = item.as_object_mut() {
                                m.insert("apiVersion".into(), q.res.api_version().into());
                                m.insert("kind".into(), q.res.kind.clone().into());
                            }
                            items.push((q.res, item));
                        }
                    }
                }
            }
            if items.is_empty() && !single && matches!(other, Output::Name) {
                io.err(&no_resources_message(
                    (!args.all_namespaces).then_some(ctx.namespace.as_str()),
                ));
                return Ok(());
            }
            if !args.show_managed_fields {
                for (_, item) in &mut items {
                    if let Some(m) = item["metadata"].as_object_mut() {
                        m.remove("managedFields");
                    }
                }
            }
            let doc = if single {
                items[0].1.clone()
            } else {
                printer::list_of(items.iter().map(|(_, v)| v.clone()).collect())
            };
            match other {
                Output::Json => io.out(&printer::to_json(&doc)),
                Output::Yaml => io.out(&printer::to_yaml(&doc)),
                Output::Name => {
                    for (res, item) in &items {
                        let n = item["metadata"]["name"].as_str().unwrap_or_default();
                        io.out(&format!("{}/{n}\n", res.kind_group()));
                    }
                }
                Output::JsonPath(t) => {
                    let text = jsonpath::render(t, &doc)
                        .map_err(|e| CtlError::usage(format!("error parsing jsonpath {t}: {e}")))?;
                    io.out(&text);
                }
                Output::Table { .. } => unreachable!("handled above"),
            }
            Ok(())
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn watch_table(
    ctx: &Ctx,
    io: &mut Io<'_>,
    args: &GetArgs,
    output: &Output,
    res: &Resource,
    ns: Option<String>,
    name: Option<String>,
) -> Result<()> {
    let mut pairs = vec![
        ("labelSelector", args.selector.clone().unwrap_or_default()),
        (
            "fieldSelector",
            args.field_selector.clone().unwrap_or_default(),
        ),
        ("includeObject", "Metadata".to_string()),
    ];
    if let Some(n) = &name {
        pairs[1].1 = format!("metadata.name={n}");
    }
    let wide = matches!(output, Output::Table { wide: true });
    let mut opts = TableOptions {
        wide,
        namespace_column: args.all_namespaces && res.namespaced,
        show_labels: args.show_labels,
        no_headers: args.no_headers,
        name_prefix: None,
    };
    let mut rv = String::new();
    let mut widths_from: Vec<Vec<String>> = Vec::new();
    if !args.watch_only {
        let list_path = format!("{}{}", res.collection(ns.as_deref()), query(&pairs));
        let table = ctx
            .request(Method::GET, &list_path, None, TABLE_ACCEPT)
            .await?;
        rv = table["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let cells = printer::table_cells(&table, &opts);
        if table["rows"].as_array().is_some_and(|r| !r.is_empty()) {
            io.out(&printer::align(&with_event_column(
                cells.clone(),
                args.output_watch_events,
                None,
            )));
            opts.no_headers = true;
        }
        widths_from = cells;
    }
    pairs.push(("resourceVersion", rv));
    let events =
        crate::watch::watch(ctx, &res.collection(ns.as_deref()), &pairs, TABLE_ACCEPT).await?;
    futures::pin_mut!(events);
    while let Some(ev) = events.next().await {
        let ev = ev?;
        if ev.kind == "BOOKMARK" || ev.kind == "ERROR" {
            continue;
        }
        let cells = printer::table_cells(&ev.object, &opts);
        let with_events = with_event_column(cells, args.output_watch_events, Some(&ev.kind));
        // Align new rows with the columns printed so far.
        let mut all = with_event_column(widths_from.clone(), args.output_watch_events, None);
        let start = all.len();
        all.extend(with_events);
        let text = printer::align(&all);
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[start..] {
            io.out(&format!("{line}\n"));
        }
        opts.no_headers = true;
    }
    Ok(())
}

fn with_event_column(
    mut cells: Vec<Vec<String>>,
    on: bool,
    kind: Option<&str>,
) -> Vec<Vec<String>> {
    if on {
        for (i, line) in cells.iter_mut().enumerate() {
            let first = match kind {
                Some(k) => k.to_string(),
                None if i == 0 => "EVENT".to_string(),
                None => "ADDED".to_string(),
            };
            line.insert(0, first);
        }
    }
    cells
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// All namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only the events of this object (TYPE/NAME or NAME of a pod).
    #[arg(long = "for")]
    pub for_object: Option<String>,
    /// Watch for new events.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// `kubectl events`: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, oldest first.
pub async fn events(ctx: &Ctx, io: &mut Io<'_>, args: &EventsArgs) -> Result<()> {
    let disc = ctx.discovery().await?;
    let res = disc.resolve("events")?.clone();
    let mut field_selector = String::new();
    if let Some(target) = &args.for_object {
        let (ty, name) = target.split_once('/').unwrap_or(("pod", target));
        let target_res = disc.resolve(ty)?;
        field_selector = format!(
            "involvedObject.kind={},involvedObject.name={name}",
            target_res.kind
        );
    }
    let ns = (!args.all_namespaces).then(|| ctx.namespace.clone());
    let path = format!(
        "{}{}",
        res.collection(ns.as_deref()),
        query(&[("fieldSelector", field_selector.clone())])
    );
    let list = ctx.get(&path).await?;
    let mut items = list["items"].as_array().cloned().unwrap_or_default();
    items.sort_by_key(event_time);
    if items.is_empty() && !args.watch {
        io.err(&no_resources_message(ns.as_deref()));
        return Ok(());
    }
    let now = jiff::Timestamp::now();
    let mut lines = vec![Vec::new()];
    if args.all_namespaces {
        lines[0].push("NAMESPACE".to_string());
    }
    lines[0].extend(["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"].map(String::from));
    for ev in &items {
        lines.push(event_line(ev, now, args.all_namespaces));
    }
    io.out(&printer::align(&lines));
    if args.watch {
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let pairs = [("fieldSelector", field_selector), ("resourceVersion", rv)];
        let stream = crate::watch::watch(
            ctx,
            &res.collection(ns.as_deref()),
            &pairs,
            "application/json",
        )
        .await?;
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            let ev = ev?;
            if ev.kind == "ADDED" || ev.kind == "MODIFIED" {
                let mut all = lines.clone();
                all.push(event_line(
                    &ev.object,
                    jiff::Timestamp::now(),
                    args.all_namespaces,
                ));
                let text = printer::align(&all);
                if let Some(last) = text.lines().last() {
                    io.out(&format!("{last}\n"));
                }
            }
        }
    }
    Ok(())
}

fn event_time(ev: &Value) -> String {
    for f in ["lastTimestamp", "eventTime", "firstTimestamp"] {
        if let Some(t) = ev[f].as_str() {
            return t.to_string();
        }
    }
    ev["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn event_line(ev: &Value, now: jiff::Timestamp, namespace: bool) -> Vec<String> {
    let mut line = Vec::new();
    if namespace {
        line.push(
            ev["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    let last_seen = event_time(ev)
        .parse::<jiff::Timestamp>()
        .map(|t| human_age(now.duration_since(t)))
        .unwrap_or_else(|_| "<unknown>".into());
    let obj = &ev["involvedObject"];
    line.push(last_seen);
    line.push(ev["type"].as_str().unwrap_or_default().to_string());
    line.push(ev["reason"].as_str().unwrap_or_default().to_string());
    line.push(format!(
        "{}/{}",
        obj["kind"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase(),
        obj["name"].as_str().unwrap_or_default()
    ));
    line.push(
        ev["message"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string(),
    );
    line
}

/// kubectl's short duration: `45s`, `5m3s`, `2d4h`, `3y`.
pub fn human_age(d: jiff::SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let (m, h, day) = (60, 3600, 86400);
    if secs < m * 2 {
        return format!("{secs}s");
    }
    let minutes = secs / m;
    if minutes < 10 {
        let s = secs % m;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = secs / h;
    if hours < 8 {
        let mm = minutes % 60;
        return if mm == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{mm}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let hh = hours % 24;
        let days = secs / day;
        return if hh == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{hh}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", secs / day);
    }
    if hours < 24 * 365 * 8 {
        let days = secs / day;
        let rem = days % 365;
        return if rem == 0 {
            format!("{}y", days / 365)
        } else {
            format!("{}y{rem}d", days / 365)
        };
    }
    format!("{}y", secs / day / 365)
}

/// `kubectl api-resources`.
pub async fn api_resources(ctx: &Ctx, io: &mut Io<'_>) -> Result<()> {
    let disc = ctx.discovery().await?;
    let mut lines = vec![["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
        .map(String::from)
        .to_vec()];
    let mut seen = std::collections::HashSet::new();
    for r in &disc.resources {
        if !seen.insert((r.group.clone(), r.plural.clone())) {
            continue;
        }
        lines.push(vec![
            r.plural.clone(),
            r.short_names.join(","),
            r.api_version(),
            r.namespaced.to_string(),
            r.kind.clone(),
        ]);
    }
    io.out(&printer::align(&lines));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration as Duration;

    #[test]
    fn ages_like_kubectl() {
        assert_eq!(human_age(Duration::from_secs(45)), "45s");
        assert_eq!(human_age(Duration::from_secs(303)), "5m3s");
        assert_eq!(human_age(Duration::from_mins(42)), "42m");
        assert_eq!(human_age(Duration::from_mins(250)), "4h10m");
        assert_eq!(human_age(Duration::from_hours(52)), "2d4h");
        assert_eq!(human_age(Duration::from_hours(30 * 24)), "30d");
    }

    #[test]
    fn output_formats() {
        assert_eq!(
            parse_output(Some("wide")).unwrap(),
            Output::Table { wide: true }
        );
        assert_eq!(
            parse_output(Some("jsonpath={.a}")).unwrap(),
            Output::JsonPath("{.a}".into())
        );
        assert!(parse_output(Some("xml")).is_err());
    }
}
