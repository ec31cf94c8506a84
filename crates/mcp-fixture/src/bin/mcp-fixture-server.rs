//! One fixture MCP server for tests in other languages (the browser test):
//! `mcp-fixture-server [--name NAME] [--slow-ms MS] [--tools-call-status CODE]`
//! listens on 127.0.0.1:0, prints `URL http://127.0.0.1:PORT/mcp` on stdout,
//! and serves until killed. `--name` sets `serverInfo.name` (any text, e.g.
//! markup a page must escape); `--tools-call-status` answers every
//! `tools/call` with that bare HTTP status while the handshake works (real
//! traffic failing where a probe does not: the Envoy access-log test).

use std::process::ExitCode;
use std::time::Duration;

use mcp_fixture::{Behavior, FixtureOptions, FixtureServer};

fn main() -> ExitCode {
    let mut name = "mcp-fixture".to_owned();
    let mut slow_ms: Option<u64> = None;
    let mut tools_call_status: Option<u16> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--name", Some(v)) => name = v,
            ("--slow-ms", Some(v)) => match v.parse() {
                Ok(ms) => slow_ms = Some(ms),
                Err(_) => {
                    eprintln!("mcp-fixture-server: bad --slow-ms {v:?}");
                    return ExitCode::from(2);
                }
            },
            ("--tools-call-status", Some(v)) => match v.parse() {
                Ok(code) if (100..600).contains(&code) => tools_call_status = Some(code),
                _ => {
                    eprintln!("mcp-fixture-server: bad --tools-call-status {v:?} (an HTTP status)");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("usage: mcp-fixture-server [--name NAME] [--slow-ms MS] [--tools-call-status CODE]");
                return ExitCode::from(2);
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-fixture-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let opts = FixtureOptions {
            server_name: name,
            ..FixtureOptions::default()
        };
        let server = match FixtureServer::start_with(opts).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mcp-fixture-server: cannot listen: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(ms) = slow_ms {
            server.set_behavior(Behavior::Slow(Duration::from_millis(ms)));
        }
        if let Some(code) = tools_call_status {
            server.set_behavior(Behavior::ToolsCallStatus(code));
        }
        println!("URL {}", server.url());
        // Serves until killed (or Ctrl-C).
        let _ = tokio::signal::ctrl_c().await;
        server.stop().await;
        ExitCode::SUCCESS
    })
}
