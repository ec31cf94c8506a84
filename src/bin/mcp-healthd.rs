//! `mcp-healthd`: the mcp-health daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use mcp_health::daemon::{Daemon, DaemonOptions};
use mcp_health::engine::EngineConfig;
use mcp_health::spec::Limits;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Probes groups of MCP servers and serves their routable health over gRPC.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// YAML (or JSON) file of groups: the proto3 JSON mapping of mcphealth.v1.HealthConfig.
    #[arg(long, env = "MCP_HEALTH_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the gRPC server.
    #[arg(long, env = "MCP_HEALTH_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Serve Prometheus metrics on http://ADDR/metrics (off by default).
    #[arg(long, env = "MCP_HEALTH_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Log format.
    #[arg(long, env = "MCP_HEALTH_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Probes in flight at once, across all backends.
    #[arg(long, default_value_t = 1024)]
    max_concurrent_probes: usize,
    /// Most backends one group may have.
    #[arg(long, default_value_t = 1000)]
    max_backends_per_group: usize,
    /// Most groups in total.
    #[arg(long, default_value_t = 1000)]
    max_groups: usize,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("MCP_HEALTH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let engine = EngineConfig {
        limits: Limits { max_backends_per_group: args.max_backends_per_group, max_groups: args.max_groups },
        max_concurrent_probes: args.max_concurrent_probes.max(1),
        ..EngineConfig::default()
    };
    let opts = DaemonOptions { listen: args.listen, config: args.config, engine, prober: None, metrics_listen: args.metrics_listen };
    let daemon = match Daemon::start(opts).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "mcp-healthd cannot start");
            return ExitCode::FAILURE;
        }
    };
    Daemon::wait_for_signal().await;
    match daemon.stop().await {
        Ok(()) => {
            tracing::info!("mcp-healthd stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "mcp-healthd stopped with an error");
            ExitCode::FAILURE
        }
    }
}
