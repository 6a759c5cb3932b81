//! `describe`: metadata, the important spec and status fields, and the object's Events.

use clap::Args;
use serde_json::Value;

use crate::client::{query, Ctx};
use crate::discovery::Resource;
use crate::error::{CtlError, Result};
use crate::get::human_age;
use crate::{printer, split_targets, Io};

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// TYPE [NAME...] or TYPE/NAME.
    pub targets: Vec<String>,
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

pub async fn describe(ctx: &Ctx, io: &mut Io<'_>, args: &DescribeArgs) -> Result<()> {
    let disc = ctx.discovery().await?;
    let mut objects: Vec<(&Resource, Value)> = Vec::new();
    for (ty, name) in split_targets(&args.targets)? {
        let res = disc.resolve(&ty)?;
        let ns = res.namespaced.then(|| ctx.namespace.clone());
        match name {
            Some(n) => objects.push((res, ctx.get(&res.item(ns.as_deref(), &n)).await?)),
            None => {
                let sel = args.selector.clone().unwrap_or_default();
                let list = ctx
                    .get(&format!(
                        "{}{}",
                        res.collection(ns.as_deref()),
                        query(&[("labelSelector", sel)])
                    ))
                    .await?;
                for item in list["items"].as_array().cloned().unwrap_or_default() {
                    objects.push((res, item));
                }
            }
        }
    }
    if objects.is_empty() {
        return Err(CtlError::usage(format!(
            "no resources found in {} namespace",
            ctx.namespace
        )));
    }
    for (i, (res, obj)) in objects.iter().enumerate() {
        if i > 0 {
            io.out("\n\n");
        }
        let mut text = describe_object(res, obj);
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        let ns = obj["metadata"]["namespace"].as_str();
        let events_path = match ns {
            Some(ns) => format!("/api/v1/namespaces/{ns}/events"),
            None => "/api/v1/events".to_string(),
        };
        let events = ctx
            .get(&format!(
                "{events_path}{}",
                query(&[("fieldSelector", format!("involvedObject.uid={uid}"))])
            ))
            .await?;
        text.push_str(&events_section(
            events["items"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            jiff::Timestamp::now(),
        ));
        io.out(&text);
    }
    Ok(())
}

fn map_lines(label: &str, v: &Value) -> String {
    let width = 13;
    let entries: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    if entries.is_empty() {
        return format!("{:<width$}<none>\n", format!("{label}:"));
    }
    let mut out = String::new();
    for (i, e) in entries.iter().enumerate() {
        let head = if i == 0 {
            format!("{label}:")
        } else {
            String::new()
        };
        out.push_str(&format!("{head:<width$}{e}\n"));
    }
    out
}

/// The text above the Events: metadata, then spec and status highlights.
pub fn describe_object(res: &Resource, obj: &Value) -> String {
    let m = &obj["metadata"];
    let s = |v: &Value| v.as_str().unwrap_or("<none>").to_string();
    let mut out = format!("{:<13}{}\n", "Name:", s(&m["name"]));
    if res.namespaced {
        out.push_str(&format!("{:<13}{}\n", "Namespace:", s(&m["namespace"])));
    }
    out.push_str(&format!("{:<13}{}\n", "Kind:", res.kind));
    out.push_str(&format!(
        "{:<13}{}\n",
        "Created:",
        s(&m["creationTimestamp"])
    ));
    out.push_str(&map_lines("Labels", &m["labels"]));
    let mut annotations = m["annotations"].clone();
    if let Some(a) = annotations.as_object_mut() {
        a.remove(crate::apply::LAST_APPLIED);
    }
    out.push_str(&map_lines("Annotations", &annotations));
    let spec = &obj["spec"];
    let status = &obj["status"];
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    match res.kind.as_str() {
        "Deployment" => {
            out.push_str(&format!(
                "Replicas:    {} desired | {} updated | {} total | {} available | {} unavailable\n",
                n(&spec["replicas"]),
                n(&status["updatedReplicas"]),
                n(&status["replicas"]),
                n(&status["availableReplicas"]),
                n(&status["unavailableReplicas"])
            ));
            out.push_str(&format!("StrategyType: {}\n", s(&spec["strategy"]["type"])));
            out.push_str(&pod_template(&spec["template"]["spec"]));
        }
        "ReplicaSet" | "StatefulSet" => {
            out.push_str(&format!(
                "Replicas:    {} current / {} desired\n",
                n(&status["replicas"]),
                n(&spec["replicas"])
            ));
            out.push_str(&pod_template(&spec["template"]["spec"]));
        }
        "Pod" => {
            out.push_str(&format!("Node:        {}\n", s(&spec["nodeName"])));
            out.push_str(&format!("Status:      {}\n", s(&status["phase"])));
            out.push_str(&format!("IP:          {}\n", s(&status["podIP"])));
            out.push_str(&pod_template(spec));
        }
        "Service" => {
            out.push_str(&format!("Type:        {}\n", s(&spec["type"])));
            out.push_str(&format!("IP:          {}\n", s(&spec["clusterIP"])));
            for p in spec["ports"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "Port:        {} {}/{}\n",
                    s(&p["name"]),
                    n(&p["port"]),
                    p["protocol"].as_str().unwrap_or("TCP")
                ));
            }
        }
        _ => {
            for (label, v) in [("Spec", spec), ("Status", status), ("Data", &obj["data"])] {
                if !v.is_null() {
                    out.push_str(&format!("{label}:\n"));
                    for line in printer::to_yaml(v).lines() {
                        out.push_str(&format!("  {line}\n"));
                    }
                }
            }
        }
    }
    for c in status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .take(1)
    {
        let _ = c;
        out.push_str("Conditions:\n  Type    Status  Reason\n  ----    ------  ------\n");
        for c in status["conditions"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {}  {}  {}\n",
                s(&c["type"]),
                s(&c["status"]),
                c["reason"].as_str().unwrap_or("")
            ));
        }
    }
    out
}

fn pod_template(spec: &Value) -> String {
    let mut out = String::from("Containers:\n");
    for c in spec["containers"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}:\n    Image:  {}\n",
            c["name"].as_str().unwrap_or(""),
            c["image"].as_str().unwrap_or("")
        ));
        for p in c["ports"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "    Port:   {}/{}\n",
                p["containerPort"],
                p["protocol"].as_str().unwrap_or("TCP")
            ));
        }
    }
    out
}

/// kubectl describe's Events table (or `Events:  <none>`).
pub fn events_section(events: &[Value], now: jiff::Timestamp) -> String {
    if events.is_empty() {
        return "Events:  <none>\n".into();
    }
    let mut sorted = events.to_vec();
    let time = |e: &Value| {
        e["lastTimestamp"]
            .as_str()
            .or(e["eventTime"].as_str())
            .or(e["firstTimestamp"].as_str())
            .unwrap_or("")
            .to_string()
    };
    sorted.sort_by_key(time);
    let mut lines = vec![
        ["Type", "Reason", "Age", "From", "Message"]
            .map(String::from)
            .to_vec(),
        ["----", "------", "----", "----", "-------"]
            .map(String::from)
            .to_vec(),
    ];
    for e in &sorted {
        let age = time(e)
            .parse::<jiff::Timestamp>()
            .map(|t| human_age(now.duration_since(t)))
            .unwrap_or_else(|_| "<unknown>".into());
        let from = e["source"]["component"]
            .as_str()
            .or(e["reportingComponent"].as_str())
            .unwrap_or("");
        lines.push(vec![
            e["type"].as_str().unwrap_or("").to_string(),
            e["reason"].as_str().unwrap_or("").to_string(),
            age,
            from.to_string(),
            e["message"].as_str().unwrap_or("").trim().to_string(),
        ]);
    }
    let table = printer::align(&lines);
    let mut out = String::from("Events:\n");
    for l in table.lines() {
        out.push_str(&format!("  {l}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_table() {
        let now: jiff::Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        let ev = json!({"type": "Normal", "reason": "ScalingReplicaSet", "lastTimestamp": "2024-01-01T00:00:50Z",
            "source": {"component": "deployment-controller"}, "message": "Scaled up replica set web-1 to 3"});
        let text = events_section(&[ev], now);
        assert!(
            text.starts_with("Events:\n  Type     Reason              Age    From"),
            "{text}"
        );
        assert!(
            text.contains("Normal   ScalingReplicaSet   10s    deployment-controller   Scaled up"),
            "{text}"
        );
        assert_eq!(events_section(&[], now), "Events:  <none>\n");
    }
}
