//! skiffctl: kubectl-like command line for skiff.

use std::io::IsTerminal;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tty = std::io::stdout().is_terminal();
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let code = skiffctl::run_with_terminal(args, &mut out, &mut err, tty).await;
    std::process::exit(code);
}
