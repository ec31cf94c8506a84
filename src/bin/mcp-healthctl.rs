//! `mcp-healthctl`: the command-line client of mcp-healthd (see `mcp_health::cli`).

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    mcp_health::cli::main().await
}
