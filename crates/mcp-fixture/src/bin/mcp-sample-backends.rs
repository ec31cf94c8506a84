//! Demo binary: starts sample MCP backends on fixed loopback ports for the README walkthrough.
//!
//! `mcp-sample-backends [--base-port 18081]` starts:
//! - base+0: a healthy server,
//! - base+1: a per-user-OAuth server answering 401 with RFC 9728 resource metadata,
//! - base+2: a slow server (3 s before every answer),
//! - base+3: deliberately NOT started, so the port is closed (a "down" backend).
//!
//! It prints what it started and runs until Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use mcp_fixture::{Behavior, FixtureOptions, FixtureServer};

fn parse_base_port() -> Result<u16, String> {
    let mut args = std::env::args().skip(1);
    let mut base = 18081u16;
    while let Some(a) = args.next() {
        let value = match a.as_str() {
            "--base-port" => args.next().ok_or("--base-port needs a value")?,
            s if s.starts_with("--base-port=") => s["--base-port=".len()..].to_owned(),
            "-h" | "--help" => {
                println!("usage: mcp-sample-backends [--base-port PORT]   (default 18081)");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument: {other}")),
        };
        base = value.parse().map_err(|_| format!("bad port: {value}"))?;
    }
    if base > u16::MAX - 3 {
        return Err(format!("--base-port {base} leaves no room for base+3"));
    }
    Ok(base)
}

async fn start(port: u16, name: &str, b: Behavior) -> std::io::Result<FixtureServer> {
    let opts = FixtureOptions {
        server_name: name.to_owned(),
        ..Default::default()
    };
    let s = FixtureServer::start_on(SocketAddr::from(([127, 0, 0, 1], port)), opts).await?;
    s.set_behavior(b);
    Ok(s)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let base = match parse_base_port() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mcp-sample-backends: {e}");
            return ExitCode::from(2);
        }
    };
    let specs = [
        (base, "healthy", Behavior::Healthy, "healthy"),
        (
            base + 1,
            "oauth",
            Behavior::Unauthorized { resource_metadata: true },
            "401 + OAuth resource metadata",
        ),
        (base + 2, "slow", Behavior::Slow(Duration::from_secs(3)), "slow (3s per answer)"),
    ];
    let mut servers = Vec::new();
    for (port, name, behavior, what) in specs {
        match start(port, name, behavior).await {
            Ok(s) => {
                println!("{:<32} {}", what, s.url());
                servers.push(s);
            }
            Err(e) => {
                eprintln!("mcp-sample-backends: cannot listen on 127.0.0.1:{port}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("{:<32} http://127.0.0.1:{}/mcp (not started: connection refused)", "down", base + 3);
    println!("Ctrl-C to stop.");
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("mcp-sample-backends: waiting for Ctrl-C failed: {e}");
    }
    for s in &servers {
        s.stop().await;
    }
    ExitCode::SUCCESS
}
