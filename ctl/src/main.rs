//! kubectl-like command line for skiff. Not built yet: see the project's open issues.

use clap::Parser;

/// kubectl-like command line for skiff (not implemented yet).
#[derive(Parser)]
#[command(version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("skiffctl is not implemented yet")
}
