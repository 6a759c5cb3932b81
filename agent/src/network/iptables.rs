//! The one wrapper around the iptables tools, shared by the pod network ([`super`]) and the
//! service proxy ([`crate::proxy`]): `iptables -w`, `iptables-save` and
//! `iptables-restore --noflush` (all or nothing).

use std::process::{Output, Stdio};

use tokio::io::AsyncWriteExt;

/// An iptables tool could not be run or refused its input.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    #[error("running {tool}: {source}")]
    Spawn {
        tool: &'static str,
        source: std::io::Error,
    },
    #[error("{tool} failed: {stderr}")]
    Failed { tool: &'static str, stderr: String },
}

fn spawn_error(tool: &'static str) -> impl FnOnce(std::io::Error) -> IptablesError {
    move |source| IptablesError::Spawn { tool, source }
}

fn failed(tool: &'static str, stderr: &[u8]) -> IptablesError {
    IptablesError::Failed {
        tool,
        stderr: String::from_utf8_lossy(stderr).trim().to_string(),
    }
}

/// `iptables -w ARGS`; the caller reads the exit status (a failed `-C` check is an answer).
pub async fn iptables(args: &[&str]) -> Result<Output, IptablesError> {
    tokio::process::Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(spawn_error("iptables"))
}

/// Output of `iptables-save` (all tables).
pub async fn save() -> Result<String, IptablesError> {
    let out = tokio::process::Command::new("iptables-save")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(spawn_error("iptables-save"))?;
    if !out.status.success() {
        return Err(failed("iptables-save", &out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `iptables-restore --noflush` with `payload` on stdin: all or nothing.
pub async fn restore(payload: &str) -> Result<(), IptablesError> {
    const TOOL: &str = "iptables-restore";
    let mut child = tokio::process::Command::new(TOOL)
        .args(["--noflush", "--wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_error(TOOL))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(payload.as_bytes())
        .await
        .map_err(spawn_error(TOOL))?;
    drop(stdin);
    let out = child.wait_with_output().await.map_err(spawn_error(TOOL))?;
    if !out.status.success() {
        return Err(failed(TOOL, &out.stderr));
    }
    Ok(())
}

/// [`save`] without a runtime (for `Drop` guards in tests).
pub fn save_blocking() -> Result<String, IptablesError> {
    let out = std::process::Command::new("iptables-save")
        .output()
        .map_err(spawn_error("iptables-save"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`restore`] without a runtime (for `Drop` guards in tests).
pub fn restore_blocking(payload: &str) -> Result<(), IptablesError> {
    use std::io::Write;
    const TOOL: &str = "iptables-restore";
    let mut child = std::process::Command::new(TOOL)
        .args(["--noflush", "--wait"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error(TOOL))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(payload.as_bytes())
        .map_err(spawn_error(TOOL))?;
    let out = child.wait_with_output().map_err(spawn_error(TOOL))?;
    if !out.status.success() {
        return Err(failed(TOOL, &out.stderr));
    }
    Ok(())
}
