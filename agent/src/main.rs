//! skiff agent. Not built yet: see the project's open issues.

use clap::Parser;

/// skiff agent (not implemented yet).
#[derive(Parser)]
#[command(version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("skiff-agent is not implemented yet")
}
