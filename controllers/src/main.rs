//! skiff controllers. Not built yet: see the project's open issues.

use clap::Parser;

/// skiff controllers (not implemented yet).
#[derive(Parser)]
#[command(version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("skiff-controllers is not implemented yet")
}
