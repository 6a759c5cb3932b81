//! skiffctl: a kubectl-like command line for skiff. Tables come from the server (`as=Table`),
//! exactly as kubectl asks for them; apply computes kubectl's three-way strategic merge patch.
//!
//! [`run`] is the whole program with its output streams passed in, so tests drive it in-process.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub mod apply;
pub mod client;
pub mod describe;
pub mod discovery;
pub mod error;
pub mod get;
pub mod jsonpath;
pub mod manifest;
pub mod ops;
pub mod printer;
pub mod rollout;
pub mod set;
pub mod watch;

use client::{ConnectionFlags, Ctx};
use error::{CtlError, Result};

/// kubectl-like command line for skiff.
#[derive(Parser, Debug)]
#[command(name = "skiffctl", version, about, long_about = None)]
pub struct Cli {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The address of the apiserver, overriding the kubeconfig's.
    #[arg(short = 's', long, global = true)]
    pub server: Option<String>,
    /// The namespace to act in (default: the context's, else "default").
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create or update objects from manifests (client-side apply, like kubectl).
    Apply(FileArgs),
    /// Create objects from manifests.
    Create(FileArgs),
    /// Display objects (TYPE[,TYPE] [NAME...] or TYPE/NAME).
    Get(get::GetArgs),
    /// Delete objects by file, by name or by label selector.
    Delete(apply::DeleteArgs),
    /// Show details of objects, with their Events.
    Describe(describe::DescribeArgs),
    /// Set the replica count of a deployment, replicaset or statefulset.
    Scale(ops::ScaleArgs),
    /// Manage the rollout of deployments.
    Rollout(rollout::RolloutArgs),
    /// Change fields of objects (`set image`).
    Set(set::SetArgs),
    /// Print the logs of a container.
    Logs(ops::LogsArgs),
    /// Add, change or remove labels (`key=value`, `key-`).
    Label(ops::MetaArgs),
    /// Add, change or remove annotations (`key=value`, `key-`).
    Annotate(ops::MetaArgs),
    /// Mark a node unschedulable.
    Cordon(ops::NodeArgs),
    /// Mark a node schedulable.
    Uncordon(ops::NodeArgs),
    /// Cordon a node and evict its pods.
    Drain(ops::DrainArgs),
    /// List events.
    Events(get::EventsArgs),
    /// Show where the control plane runs.
    ClusterInfo,
    /// Print the client and server versions.
    Version,
    /// List the resource types the server serves.
    ApiResources,
}

#[derive(Args, Debug)]
pub struct FileArgs {
    /// Manifest file, directory, or - for stdin (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Descend into sub-directories of the -f directories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// Where output goes, and whether it is a terminal (for progress that rewrites a line).
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub tty: bool,
}

impl Io<'_> {
    pub fn out(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    pub fn err(&mut self, text: &str) {
        let _ = self.err.write_all(text.as_bytes());
        let _ = self.err.flush();
    }

    /// A progress line: rewritten in place on a terminal, one line each when piped.
    pub fn progress(&mut self, line: &str) {
        if self.tty {
            self.out(&format!("\r\x1b[K{line}"));
        } else {
            self.out(&format!("{line}\n"));
        }
    }

    /// Ends a progress line on a terminal.
    pub fn progress_done(&mut self) {
        if self.tty {
            self.out("\r\x1b[K");
        }
    }
}

/// Runs skiffctl with `args` (including the program name), writing to `out` and `err`, and
/// returns the exit code. Output is treated as piped (no progress rewriting).
pub async fn run(args: Vec<String>, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    run_with_terminal(args, out, err, false).await
}

/// [`run`], with `tty` saying whether `out` is a terminal.
pub async fn run_with_terminal(
    args: Vec<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
    tty: bool,
) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            return if e.use_stderr() {
                let _ = err.write_all(text.as_bytes());
                2
            } else {
                let _ = out.write_all(text.as_bytes());
                0
            };
        }
    };
    let mut io = Io { out, err, tty };
    match dispatch(cli, &mut io).await {
        Ok(()) => 0,
        Err(e) => {
            io.err(&format!("{}\n", e.render()));
            1
        }
    }
}

async fn dispatch(cli: Cli, io: &mut Io<'_>) -> Result<()> {
    let flags = ConnectionFlags {
        kubeconfig: cli.kubeconfig,
        context: cli.context,
        server: cli.server,
        namespace: cli.namespace,
    };
    let ctx = Ctx::connect(&flags).await?;
    match cli.command {
        Command::Apply(a) => apply::apply(&ctx, io, &a).await,
        Command::Create(a) => apply::create(&ctx, io, &a).await,
        Command::Get(a) => get::get(&ctx, io, &a).await,
        Command::Delete(a) => apply::delete(&ctx, io, &a).await,
        Command::Describe(a) => describe::describe(&ctx, io, &a).await,
        Command::Scale(a) => ops::scale(&ctx, io, &a).await,
        Command::Rollout(a) => rollout::rollout(&ctx, io, &a).await,
        Command::Set(a) => set::set(&ctx, io, &a).await,
        Command::Logs(a) => ops::logs(&ctx, io, &a).await,
        Command::Label(a) => ops::label(&ctx, io, &a, "labels", "labeled").await,
        Command::Annotate(a) => ops::label(&ctx, io, &a, "annotations", "annotated").await,
        Command::Cordon(a) => ops::cordon(&ctx, io, &a, true).await,
        Command::Uncordon(a) => ops::cordon(&ctx, io, &a, false).await,
        Command::Drain(a) => ops::drain(&ctx, io, &a).await,
        Command::Events(a) => get::events(&ctx, io, &a).await,
        Command::ClusterInfo => ops::cluster_info(&ctx, io).await,
        Command::Version => ops::version(&ctx, io).await,
        Command::ApiResources => get::api_resources(&ctx, io).await,
    }
}

/// `TYPE NAME...`, `TYPE[,TYPE]`, or `TYPE/NAME...` into (type, name) pairs.
pub fn split_targets(args: &[String]) -> Result<Vec<(String, Option<String>)>> {
    let Some(first) = args.first() else {
        return Err(CtlError::usage(
            "you must specify the type of resource, e.g. `skiffctl get pods`",
        ));
    };
    if first.contains('/') {
        return args
            .iter()
            .map(|a| match a.split_once('/') {
                Some((t, n)) if !t.is_empty() && !n.is_empty() => {
                    Ok((t.to_string(), Some(n.to_string())))
                }
                _ => Err(CtlError::usage(format!(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (got {a:?})"
                ))),
            })
            .collect();
    }
    let types: Vec<String> = first.split(',').map(String::from).collect();
    if args.len() == 1 {
        return Ok(types.into_iter().map(|t| (t, None)).collect());
    }
    let mut out = Vec::new();
    for t in &types {
        for name in &args[1..] {
            out.push((t.clone(), Some(name.clone())));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn targets_in_every_form() {
        assert_eq!(
            split_targets(&s(&["deploy,svc"])).unwrap(),
            vec![("deploy".into(), None), ("svc".into(), None)]
        );
        assert_eq!(
            split_targets(&s(&["po", "a", "b"])).unwrap(),
            vec![
                ("po".into(), Some("a".into())),
                ("po".into(), Some("b".into()))
            ]
        );
        assert_eq!(
            split_targets(&s(&["deploy/web", "svc/web"])).unwrap(),
            vec![
                ("deploy".into(), Some("web".into())),
                ("svc".into(), Some("web".into()))
            ]
        );
        assert!(split_targets(&[]).is_err());
        assert!(split_targets(&s(&["deploy/web", "x"])).is_err());
    }
}
