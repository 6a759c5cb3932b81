//! `skiffctl set image`: change container images of a workload or pod, as `kubectl set image`
//! does, with a strategic merge patch that names only the containers it changes.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::Ctx;
use crate::error::{CtlError, Result};
use crate::{split_targets, Io};

const STRATEGIC: &str = "application/strategic-merge-patch+json";

#[derive(Args, Debug)]
pub struct SetArgs {
    #[command(subcommand)]
    pub command: SetCommand,
}

#[derive(Subcommand, Debug)]
pub enum SetCommand {
    /// Update container images: TYPE/NAME CONTAINER=IMAGE... (`*=IMAGE` for every container).
    Image {
        /// TYPE/NAME (or TYPE NAME) followed by CONTAINER=IMAGE pairs.
        #[arg(required = true, num_args = 2..)]
        args: Vec<String>,
    },
}

pub async fn set(ctx: &Ctx, io: &mut Io<'_>, args: &SetArgs) -> Result<()> {
    let SetCommand::Image { args } = &args.command;
    let (objects, images) = split_images(args)?;
    let disc = ctx.discovery().await?;
    for (ty, name) in split_targets(&objects)? {
        let res = disc.resolve(&ty)?;
        let name = name.ok_or_else(|| {
            CtlError::usage(
                "set image needs a name: skiffctl set image deployment/NAME CONTAINER=IMAGE",
            )
        })?;
        let ns = res.namespaced.then(|| ctx.namespace.clone());
        let path = res.item(ns.as_deref(), &name);
        let object = ctx.get(&path).await?;
        let patch = image_patch(&object, &images)?;
        ctx.patch(&path, &patch, STRATEGIC).await?;
        io.out(&format!("{}/{name} image updated\n", res.kind_group()));
    }
    Ok(())
}

/// `(container, image)` pairs to set.
pub type ImageUpdates = Vec<(String, String)>;

/// Splits `CONTAINER=IMAGE` pairs from the object arguments.
pub fn split_images(args: &[String]) -> Result<(Vec<String>, ImageUpdates)> {
    let mut objects = Vec::new();
    let mut images = Vec::new();
    for a in args {
        match a.split_once('=') {
            Some((c, i)) if !c.is_empty() && !i.is_empty() => {
                images.push((c.to_string(), i.to_string()))
            }
            Some(_) => {
                return Err(CtlError::usage(format!(
                    "invalid image update {a:?}: expected CONTAINER=IMAGE, e.g. httpd=skiff.local/busybox:v2"
                )))
            }
            None => objects.push(a.clone()),
        }
    }
    if images.is_empty() {
        return Err(CtlError::usage(
            "at least one CONTAINER=IMAGE is required, e.g. skiffctl set image deployment/web httpd=skiff.local/busybox:v2",
        ));
    }
    Ok((objects, images))
}

/// The strategic merge patch that sets `images` on `object`'s containers (its pod template's,
/// or its own for a Pod). Every named container must exist, as in kubectl.
pub fn image_patch(object: &Value, images: &[(String, String)]) -> Result<Value> {
    let is_pod = object["kind"] == "Pod";
    let pod_spec = if is_pod {
        &object["spec"]
    } else {
        &object["spec"]["template"]["spec"]
    };
    let mut lists = serde_json::Map::new();
    for (container, image) in images {
        let mut found = false;
        for list in ["initContainers", "containers"] {
            let names = pod_spec[list]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str());
            for n in names {
                if container == "*" || container == n {
                    found = true;
                    let entries = lists
                        .entry(list)
                        .or_insert_with(|| Value::Array(vec![]))
                        .as_array_mut()
                        .expect("always an array");
                    entries.retain(|e| e["name"] != n);
                    entries.push(json!({"name": n, "image": image}));
                }
            }
        }
        if !found {
            return Err(CtlError::usage(format!(
                "unable to find container named {container:?}; list them with: skiffctl get {} {} -o jsonpath='{{.spec{}.containers[*].name}}'",
                object["kind"].as_str().unwrap_or("").to_ascii_lowercase(),
                object["metadata"]["name"].as_str().unwrap_or(""),
                if is_pod { "" } else { ".template.spec" },
            )));
        }
    }
    let spec = Value::Object(lists);
    Ok(if is_pod {
        json!({ "spec": spec })
    } else {
        json!({ "spec": { "template": { "spec": spec } } })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"template": {"spec": {
                "initContainers": [{"name": "init", "image": "a"}],
                "containers": [{"name": "httpd", "image": "a"}, {"name": "side", "image": "b"}],
            }}},
        })
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn patch_names_only_the_changed_containers() {
        let patch = image_patch(&deployment(), &[("httpd".into(), "x:2".into())]).unwrap();
        assert_eq!(
            patch,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "httpd", "image": "x:2"}]}}}})
        );
    }

    #[test]
    fn star_sets_every_container_including_init_containers() {
        let patch = image_patch(&deployment(), &[("*".into(), "x:2".into())]).unwrap();
        let spec = &patch["spec"]["template"]["spec"];
        assert_eq!(spec["containers"].as_array().unwrap().len(), 2);
        assert_eq!(
            spec["initContainers"][0],
            json!({"name": "init", "image": "x:2"})
        );
    }

    #[test]
    fn pods_are_patched_in_their_own_spec() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "a"}]}});
        let patch = image_patch(&pod, &[("c".into(), "b".into())]).unwrap();
        assert_eq!(
            patch,
            json!({"spec": {"containers": [{"name": "c", "image": "b"}]}})
        );
    }

    #[test]
    fn unknown_container_is_an_error_that_names_it() {
        let err = image_patch(&deployment(), &[("nope".into(), "x".into())]).unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
    }

    #[test]
    fn arguments_split_into_objects_and_images() {
        let (objects, images) = split_images(&s(&["deployment/web", "httpd=x:2"])).unwrap();
        assert_eq!(objects, s(&["deployment/web"]));
        assert_eq!(images, vec![("httpd".to_string(), "x:2".to_string())]);
        assert!(split_images(&s(&["deployment/web"])).is_err());
        assert!(split_images(&s(&["deployment/web", "httpd="])).is_err());
    }
}
