//! Watching: newline-delimited watch events, and waiting for a condition on one object
//! (get, then watch from its resourceVersion; re-get when the watch ends).

use futures::{Stream, StreamExt};
use serde_json::Value;

use crate::client::{query, Ctx, LineBuffer};
use crate::discovery::Resource;
use crate::error::{CtlError, Result};

/// A watch event: `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`, and its object.
#[derive(Clone, Debug)]
pub struct Event {
    pub kind: String,
    pub object: Value,
}

/// Watches `collection_path` with extra query pairs (`accept` may ask for Tables).
pub async fn watch(
    ctx: &Ctx,
    collection_path: &str,
    pairs: &[(&str, String)],
    accept: &str,
) -> Result<impl Stream<Item = Result<Event>> + use<>> {
    let mut all = vec![("watch", "true".to_string())];
    all.extend(pairs.iter().cloned());
    let path = format!("{collection_path}{}", query(&all));
    let chunks = ctx.stream(&path, accept).await?;
    let lines = chunks
        .scan(LineBuffer::new(), |buf, chunk| {
            let out: Vec<Result<String>> = match chunk {
                Ok(bytes) => buf.push(&bytes).into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::future::ready(Some(futures::stream::iter(out)))
        })
        .flatten();
    Ok(lines.filter_map(|line| async move {
        match line {
            Err(e) => Some(Err(e)),
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(
                serde_json::from_str::<Value>(&l)
                    .map(|v| Event {
                        kind: v["type"].as_str().unwrap_or_default().to_string(),
                        object: v["object"].clone(),
                    })
                    .map_err(|e| CtlError::Other(anyhow::anyhow!("bad watch event {l:?}: {e}"))),
            ),
        }
    }))
}

/// Calls `check` with the object (or `None` once it is gone) until it returns `Some`.
pub async fn wait_for_object<T>(
    ctx: &Ctx,
    res: &Resource,
    namespace: Option<&str>,
    name: &str,
    mut check: impl FnMut(Option<&Value>) -> Option<T>,
) -> Result<T> {
    loop {
        let selector = format!("metadata.name={name}");
        let list_path = format!(
            "{}{}",
            res.collection(namespace),
            query(&[("fieldSelector", selector.clone())])
        );
        let list = ctx.get(&list_path).await?;
        let current = list["items"].as_array().and_then(|i| i.first()).cloned();
        if let Some(done) = check(current.as_ref()) {
            return Ok(done);
        }
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let pairs = [
            ("fieldSelector", selector),
            ("resourceVersion", rv),
            ("allowWatchBookmarks", "true".to_string()),
        ];
        let events = watch(ctx, &res.collection(namespace), &pairs, "application/json").await?;
        futures::pin_mut!(events);
        while let Some(ev) = events.next().await {
            let ev = ev?;
            match ev.kind.as_str() {
                "DELETED" => {
                    if let Some(done) = check(None) {
                        return Ok(done);
                    }
                }
                "ADDED" | "MODIFIED" => {
                    if let Some(done) = check(Some(&ev.object)) {
                        return Ok(done);
                    }
                }
                "ERROR" => break,
                _ => {}
            }
        }
    }
}
