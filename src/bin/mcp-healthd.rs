//! `mcp-healthd`: the mcp-health daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mcp_health::api::tls::ServerTls;
use mcp_health::daemon::{Daemon, DaemonOptions};
use mcp_health::engine::EngineConfig;
use mcp_health::spec::Limits;
use mcp_health::telemetry::{self, LogFormat, TraceExport};

/// Every probe allocates short-lived buffers on many threads; mimalloc's
/// thread-local free lists cost measurably less CPU than glibc malloc there
/// (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Add per-address series for DNS-discovered endpoints
    /// (mcp_health_endpoint_status{group,backend,address,status}): 5 series per
    /// address. Without it, discovered backends get endpoint counts only
    /// (mcp_health_backend_endpoints{state}: 4 series per backend).
    #[arg(long, env = "MCP_HEALTH_METRICS_ENDPOINT_SERIES", value_parser = clap::builder::BoolishValueParser::new())]
    metrics_endpoint_series: bool,
    /// Serve the read-only status page on http://ADDR/ (off by default). A bare
    /// port means 127.0.0.1:PORT; give another address to expose it beyond loopback.
    #[arg(long, env = "MCP_HEALTH_UI_LISTEN", value_name = "ADDR", value_parser = ui_addr)]
    ui_listen: Option<SocketAddr>,
    /// Also serve grpc.health.v1 (only) in plaintext on ADDR, for Kubernetes
    /// and Envoy probes when the main listener uses TLS (off by default).
    #[arg(long, env = "MCP_HEALTH_HEALTH_LISTEN", value_name = "ADDR")]
    health_listen: Option<SocketAddr>,
    /// Log format (one JSON object per line with `json`). Which lines are
    /// written is set by MCP_HEALTH_LOG (an EnvFilter: `info` by default,
    /// e.g. `debug` or `info,mcp_health_probe=debug`; targets are crate paths).
    #[arg(long, env = "MCP_HEALTH_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Export a span per probe to this OTLP/gRPC collector, e.g.
    /// http://127.0.0.1:4317 or https://collector:4317 (needs a build with
    /// `--features otel`). Sampling follows OTEL_TRACES_SAMPLER and
    /// OTEL_TRACES_SAMPLER_ARG.
    #[arg(long, env = "MCP_HEALTH_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// PEM CA bundle to verify an https OTLP collector with (default: the
    /// webpki roots).
    #[arg(long, env = "MCP_HEALTH_OTLP_CA_CERT", value_name = "FILE", requires = "otlp_endpoint")]
    otlp_ca_cert: Option<PathBuf>,
    /// The service.name of exported spans.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "mcp-healthd")]
    otel_service_name: String,
    /// Probes in flight at once, across all backends.
    #[arg(long, default_value_t = 1024)]
    max_concurrent_probes: usize,
    /// First probes (after start-up or an apply) started per second at most,
    /// across all backends; a tenth of it may start at once. Each backend's
    /// first probe still waits no longer than min(interval, initialSpread).
    #[arg(long, default_value_t = 1000)]
    initial_probes_per_second: u32,
    /// DNS server (IP:PORT, UDP then TCP) that probes resolve backend host
    /// names with, instead of the system's configuration (/etc/resolv.conf).
    /// Answers are cached for their TTL (at most 5 minutes) either way.
    #[arg(long, env = "MCP_HEALTH_DNS_SERVER", value_name = "IP:PORT")]
    dns_server: Option<std::net::SocketAddr>,
    /// Self-doubt canary (repeatable, or comma-separated): a HOST:PORT that
    /// must always accept a TCP connection from here, e.g. a fixture beside
    /// the fleet, behind the same network path. When no canary accepts one,
    /// the prober doubts itself and failing probes move no verdict (for at
    /// most --doubt-max-hold-seconds). Prefer IP literals: a name resolves
    /// through the system resolver.
    #[arg(long = "doubt-canary", env = "MCP_HEALTH_DOUBT_CANARIES", value_name = "HOST:PORT", value_delimiter = ',')]
    doubt_canaries: Vec<String>,
    /// Self-doubt: a name the probes' resolver (--dns-server or the system's)
    /// must answer at every check; no answer (timeout, SERVFAIL, no server)
    /// is doubt. NXDOMAIN is an answer.
    #[arg(long, env = "MCP_HEALTH_DOUBT_RESOLVE", value_name = "NAME")]
    doubt_resolve: Option<String>,
    /// Self-doubt: milliseconds between the end of one check of this node's
    /// own evidence and the next.
    #[arg(long, default_value_t = 1000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    doubt_interval_ms: u64,
    /// Self-doubt: how long a canary connect or the resolver check may take.
    #[arg(long, default_value_t = 1000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    doubt_timeout_ms: u64,
    /// Self-doubt: a check whose timer the runtime fired later than this is doubt
    /// (a starved runtime turns good answers into timeouts).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    doubt_max_lag_ms: u64,
    /// Self-doubt: consecutive checks without a cause that end a doubt.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    doubt_clear_checks: u32,
    /// Self-doubt: how long a doubt holds failing probes back at most, from
    /// its start; past it verdicts move again and the doubt stays shown
    /// (a canary that is down itself cannot freeze verdicts for longer).
    /// 0: show doubt, hold nothing.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    doubt_max_hold_seconds: u64,
    /// Self-doubt in a cluster: new failures (of backends not yet UNHEALTHY)
    /// within --doubt-burst-window-ms that make a burst, at least. A burst
    /// asks other replicas to probe the same backends; if they reach them,
    /// this replica doubts itself (cause peers_reach) and hands its backends
    /// to them. While they are asked, failing probes are held back (a real
    /// outage is seen that much later). 0: no bursts, no indirect probes.
    #[arg(long, default_value_t = 3, value_name = "BACKENDS")]
    doubt_burst_backends: usize,
    /// Self-doubt in a cluster: the share of the backends probed in the
    /// window (percent) whose new failures a burst needs, too.
    #[arg(long, default_value_t = 50, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    doubt_burst_percent: u8,
    /// Self-doubt in a cluster: how far back failures count toward a burst
    /// (at least one probe interval), and the least time between two bursts.
    #[arg(long, default_value_t = 10_000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    doubt_burst_window_ms: u64,
    /// Most backends one group may have.
    #[arg(long, default_value_t = 1000)]
    max_backends_per_group: usize,
    /// Most groups in total.
    #[arg(long, default_value_t = 1000)]
    max_groups: usize,
    /// Directory of the durable store of groups applied over the API. Without
    /// it, API groups live in memory only and are lost on restart.
    #[arg(long, env = "MCP_HEALTH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// File holding the bearer token that ApplyGroup, DeleteGroup,
    /// ProbeBackend, SetBackendDrain, AcceptCatalog and ReportOutcomes require
    /// ("authorization: Bearer <token>"). Read at every such call, so a
    /// rotated token takes effect without a restart.
    #[arg(long, env = "MCP_HEALTH_ADMIN_TOKEN_FILE", value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// PEM certificate chain of the gRPC server; enables TLS (with --tls-key).
    #[arg(long, env = "MCP_HEALTH_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the gRPC server.
    #[arg(long, env = "MCP_HEALTH_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA bundle for client certificates (mTLS): mutating RPCs then need a
    /// client certificate it signed. Read RPCs stay open.
    #[arg(long, env = "MCP_HEALTH_TLS_CLIENT_CA", value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Start on a non-loopback address with no token and no mTLS, leaving
    /// ApplyGroup, DeleteGroup, ProbeBackend, SetBackendDrain, AcceptCatalog and ReportOutcomes open to anyone. Dangerous.
    #[arg(long)]
    insecure_allow_open_mutations: bool,
    /// Allow backend URLs that are or resolve to link-local and cloud-metadata
    /// addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254, 0.0.0.0, ::).
    #[arg(long)]
    allow_link_local_backends: bool,
    /// Largest request message accepted, in bytes.
    #[arg(long, default_value_t = mcp_health::daemon::DEFAULT_MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// Most concurrent watch streams (WatchGroupHealth and grpc.health Watch together).
    #[arg(long, default_value_t = mcp_health::daemon::DEFAULT_MAX_WATCH_STREAMS)]
    max_watch_streams: usize,
    /// Serve Envoy's xDS (ADS and EDS, state-of-the-world and delta) on the
    /// listener: each group is the ClusterLoadAssignment `mcp-health/<group>`.
    /// MCP_HEALTH_XDS takes 1/0, true/false, yes/no or on/off.
    #[arg(long, env = "MCP_HEALTH_XDS", value_parser = clap::builder::BoolishValueParser::new())]
    xds: bool,
    /// Serve Envoy's Access Log Service (envoy.service.accesslog.v3) on the
    /// listener: each HTTP entry is an outcome of real traffic for the backend
    /// at (upstream cluster `mcp-health/<group>` or `<group>`, upstream address,
    /// path), which may eject it (the group's policy.outlier). Guarded like
    /// ReportOutcomes (admin token / mTLS).
    #[arg(long, env = "MCP_HEALTH_ACCESS_LOG_SERVICE", value_parser = clap::builder::BoolishValueParser::new())]
    access_log_service: bool,
    /// Milliseconds xDS collects a burst of verdict changes before one push.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    xds_debounce_ms: u64,
    /// Most concurrent xDS streams (ADS and EDS, SotW and delta together);
    /// past it a new stream gets RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = mcp_health::xds::DEFAULT_MAX_XDS_STREAMS)]
    max_xds_streams: usize,
    /// Cluster mode (high availability on etcd); absent: a single node.
    #[command(flatten)]
    etcd: mcp_health::cluster::EtcdFlags,
}

/// `ADDR` or a bare `PORT` (loopback).
fn ui_addr(s: &str) -> Result<SocketAddr, String> {
    match s.parse::<u16>() {
        Ok(port) => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        Err(_) => s.parse().map_err(|e| format!("{e}: want HOST:PORT or PORT")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let export = TraceExport {
        otlp_endpoint: args.otlp_endpoint.clone(),
        otlp_ca_cert: args.otlp_ca_cert.clone(),
        service_name: args.otel_service_name.clone(),
    };
    let telemetry = match telemetry::init(args.log_format, &export) {
        Ok(t) => t,
        Err(e) => {
            // No subscriber yet (or a broken one): stderr is all there is.
            eprintln!("mcp-healthd cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let engine = EngineConfig {
        limits: Limits {
            max_backends_per_group: args.max_backends_per_group,
            max_groups: args.max_groups,
            allow_link_local_backends: args.allow_link_local_backends,
        },
        max_concurrent_probes: args.max_concurrent_probes.max(1),
        initial_probes_per_second: args.initial_probes_per_second.max(1),
        dns: mcp_health::probe::DnsSettings { server: args.dns_server },
        doubt: mcp_health::core::doubt::DoubtPolicy {
            max_lag: std::time::Duration::from_millis(args.doubt_max_lag_ms),
            clear_checks: args.doubt_clear_checks,
            max_hold: std::time::Duration::from_secs(args.doubt_max_hold_seconds),
        },
        doubt_checks: Some(mcp_health::engine::DoubtChecks {
            interval: std::time::Duration::from_millis(args.doubt_interval_ms),
            canaries: args.doubt_canaries,
            resolve: args.doubt_resolve,
            timeout: std::time::Duration::from_millis(args.doubt_timeout_ms),
        }),
        burst: (args.doubt_burst_backends > 0).then(|| mcp_health::core::burst::BurstPolicy {
            window: std::time::Duration::from_millis(args.doubt_burst_window_ms),
            min_backends: args.doubt_burst_backends,
            min_percent: args.doubt_burst_percent,
            ..Default::default()
        }),
        ..EngineConfig::default()
    };
    let cluster = match args.etcd.options() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "mcp-healthd cannot start");
            telemetry.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls {
            cert,
            key,
            client_ca: args.tls_client_ca,
        }),
        // clap's `requires` makes the two go together.
        _ => None,
    };
    let opts = DaemonOptions {
        listen: args.listen,
        config: args.config,
        engine,
        prober: None,
        metrics_listen: args.metrics_listen,
        ui_listen: args.ui_listen,
        health_listen: args.health_listen,
        data_dir: args.data_dir,
        admin_token_file: args.admin_token_file,
        tls,
        insecure_allow_open_mutations: args.insecure_allow_open_mutations,
        max_message_bytes: args.max_message_bytes,
        max_watch_streams: args.max_watch_streams.max(1),
        xds: args.xds,
        xds_debounce: std::time::Duration::from_millis(args.xds_debounce_ms),
        max_xds_streams: args.max_xds_streams.max(1),
        access_log_service: args.access_log_service,
        metrics_endpoint_series: args.metrics_endpoint_series,
        cluster,
    };
    let daemon = match Daemon::start(opts).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %mcp_health::daemon::chain(&e), "mcp-healthd cannot start");
            telemetry.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    // Until a signal (exit 0) or a server that stops on its own (exit 1, logged).
    let code = match daemon.run().await {
        Ok(()) => {
            tracing::info!("mcp-healthd stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %mcp_health::daemon::chain(&e), "mcp-healthd stopped with an error");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}
