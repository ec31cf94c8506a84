//! `mcp-healthctl`: the command line (clap derive), its exit codes and the
//! dispatch of each command to the gRPC API.

mod apply;
mod cluster;
mod connect;
mod error;
mod history;
mod render;
mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

pub use connect::Connection;
pub use error::CliError;
use render::{Output, Style};

use crate::proto::grpc_health_v1::HealthCheckRequest;
use crate::proto::grpc_health_v1::health_check_response::ServingStatus;
use crate::proto::v1::*;

const EXIT_CODES: &str = "\
Exit codes: 0 success; 1 usage or request error (invalid input, not found, refused);
2 cannot connect. `check` follows grpc_health_probe: 0 SERVING, 2 connection
failure, 3 RPC failure, 4 not SERVING.";

/// Inspect and manage mcp-healthd: groups, backends and their health.
#[derive(Debug, Parser)]
#[command(name = "mcp-healthctl", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub connection: Connection,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table", env = "MCP_HEALTH_OUTPUT")]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human tables; colour on a terminal unless NO_COLOR is set.
    Table,
    /// The tables with more columns: each backend's URL.
    Wide,
    /// The proto3 JSON mapping of the response.
    Json,
    /// The same, as YAML.
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every group with its phase and routable count (ListGroups).
    Groups,
    /// One group and each backend's verdict (GetGroupHealth).
    Get { group: String },
    /// Follow health live: redraws on a terminal, one line per change when piped.
    Watch {
        /// Watch one group; every group when omitted.
        group: Option<String>,
    },
    /// Create or replace groups from a file ('-' for stdin): a document with
    /// `groups:` (the config file format) or a single GroupSpec, YAML or JSON.
    Apply {
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
        /// Validate on the server only; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a group applied over the API.
    Delete { group: String },
    /// Probe one backend now and show the fresh verdict (rate-limited per backend).
    Probe { group: String, backend: String },
    /// One backend's recent transitions and latency over the last hour
    /// (GetBackendHistory; kept in memory, so a daemon restart starts afresh).
    History { group: String, backend: String },
    /// Drain a backend: no new traffic (DRAINING in xDS, not routable), still
    /// probed and its verdict still shown (SetBackendDrain; API groups).
    Drain {
        group: String,
        backend: String,
        /// Only this endpoint of a discovered backend (IP:port, as `get -o wide` shows it).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// End a backend's drain, or one endpoint's (SetBackendDrain).
    Undrain {
        group: String,
        backend: String,
        /// Only this endpoint of a discovered backend (IP:port).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// grpc.health.v1 Check of a service ("" is the server, a group name is that group).
    Check {
        #[arg(default_value = "")]
        service: String,
    },
    /// Tool catalogs (depth TOOLS): accept one, or show what changed.
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Report outcomes of real traffic to a backend, as a gateway does
    /// (ReportOutcomes, admin-guarded): `--count` failures in a row eject it
    /// at the group's policy.outlier consecutiveFailures.
    Report {
        group: String,
        backend: String,
        #[arg(value_enum)]
        outcome: OutcomeArg,
        /// With http-status: the HTTP status (100 to 599).
        #[arg(long)]
        http_status: Option<u32>,
        /// With json-rpc-error: the JSON-RPC error code.
        #[arg(long, allow_hyphen_values = true)]
        json_rpc_code: Option<i32>,
        /// The request's JSON-RPC method (default tools/call).
        #[arg(long)]
        method: Option<String>,
        /// How many times to report it, in one stream.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Cluster mode: the members, their leases and the backends each owns.
    Cluster,
    /// The config file: its path, groups, last good load and the last
    /// reload's error, if it failed (GetConfigStatus).
    ConfigStatus,
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
}

/// What a gateway saw of one request (OutcomeKind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutcomeArg {
    Ok,
    ConnectFailure,
    Reset,
    Timeout,
    HttpStatus,
    JsonRpcError,
    ToolError,
}

impl OutcomeArg {
    fn kind(self) -> OutcomeKind {
        match self {
            OutcomeArg::Ok => OutcomeKind::Ok,
            OutcomeArg::ConnectFailure => OutcomeKind::ConnectFailure,
            OutcomeArg::Reset => OutcomeKind::Reset,
            OutcomeArg::Timeout => OutcomeKind::Timeout,
            OutcomeArg::HttpStatus => OutcomeKind::HttpStatus,
            OutcomeArg::JsonRpcError => OutcomeKind::JsonRpcError,
            OutcomeArg::ToolError => OutcomeKind::ToolError,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum CatalogAction {
    /// Accept the catalog a backend shows now (or --fingerprint) for its
    /// catalog policy (AcceptCatalog, admin-guarded; API groups): stored in
    /// the group's spec like an apply.
    Accept {
        group: String,
        backend: String,
        /// The fingerprint to accept instead of the one the backend shows now.
        #[arg(long)]
        fingerprint: Option<String>,
    },
    /// A backend's catalog fingerprint and the changes history kept (since
    /// the daemon started), by tool name.
    Diff { group: String, backend: String },
}

/// Parses arguments and runs; usage errors exit 1, like grpc_health_probe.
pub async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let style = Style::detect();
    match run(cli, style).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.report(&style);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Deadline of each unary call (not of `watch`).
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

fn unary<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(RPC_TIMEOUT);
    req
}

pub async fn run(cli: Cli, style: Style) -> Result<(), CliError> {
    let out = Output::new(cli.output, style);
    let conn = cli.connection;
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "mcp-healthctl", &mut std::io::stdout());
            Ok(())
        }
        Command::Cluster => {
            let mut c = conn.group_client().await?;
            cluster::show(&mut c, &out).await
        }
        Command::ConfigStatus => {
            let mut c = conn.group_client().await?;
            let resp = c.get_config_status(unary(GetConfigStatusRequest {})).await?.into_inner();
            out.print(&resp, |s| render::config_status(&resp, s))
        }
        Command::Groups => {
            let mut c = conn.group_client().await?;
            let resp = c.list_groups(unary(ListGroupsRequest {})).await?.into_inner();
            out.print(&resp, |s| render::groups_table(&resp.groups, s))
        }
        Command::Get { group } => {
            let mut c = conn.group_client().await?;
            let resp = c.get_group_health(unary(GetGroupHealthRequest { group })).await?.into_inner();
            let health = resp.health.clone().unwrap_or_default();
            out.print(&resp, |s| render::group_view(&health, s))
        }
        Command::Watch { group } => {
            let mut c = conn.group_client().await?;
            let stream = c
                .watch_group_health(WatchGroupHealthRequest {
                    group: group.clone().unwrap_or_default(),
                })
                .await?
                .into_inner();
            watch::follow(stream, group, &out).await
        }
        Command::Apply { file, dry_run } => {
            let specs = apply::read_specs(&file)?;
            let mut c = conn.group_client().await?;
            apply::apply_all(&mut c, &conn, specs, dry_run, &out).await
        }
        Command::Delete { group } => {
            let mut c = conn.group_client().await?;
            let resp = c
                .delete_group(conn.authorize(unary(DeleteGroupRequest { group: group.clone() }))?)
                .await?
                .into_inner();
            out.print(&resp, |_| format!("group {group} deleted\n"))
        }
        Command::Probe { group, backend } => {
            let mut c = conn.group_client().await?;
            let resp = c
                .probe_backend(conn.authorize(unary(ProbeBackendRequest { group: group.clone(), backend }))?)
                .await?
                .into_inner();
            let b = resp.backend.clone().unwrap_or_default();
            let phase = GroupPhase::try_from(resp.phase).unwrap_or_default();
            out.print(&resp, |s| {
                format!("{}\ngroup {group} is {}\n", render::backends_table(std::slice::from_ref(&b), s), s.phase(phase))
            })
        }
        Command::History { group, backend } => {
            let mut c = conn.group_client().await?;
            let resp = c.get_backend_history(unary(GetBackendHistoryRequest { group, backend })).await?.into_inner();
            out.print(&resp, |s| history::view(&resp, s))
        }
        Command::Catalog {
            action: CatalogAction::Accept { group, backend, fingerprint },
        } => {
            let mut c = conn.group_client().await?;
            let req = AcceptCatalogRequest {
                group: group.clone(),
                backend: backend.clone(),
                fingerprint: fingerprint.unwrap_or_default(),
            };
            let resp = c.accept_catalog(conn.authorize(unary(req))?).await?.into_inner();
            let what = if resp.changed { "accepts" } else { "already accepted" };
            out.print(&resp, |_| {
                format!(
                    "backend {backend} of group {group} {what} catalog {} (generation {})\n",
                    resp.fingerprint, resp.generation
                )
            })
        }
        Command::Catalog {
            action: CatalogAction::Diff { group, backend },
        } => {
            let mut c = conn.group_client().await?;
            let resp = c
                .get_backend_history(unary(GetBackendHistoryRequest {
                    group: group.clone(),
                    backend: backend.clone(),
                }))
                .await?
                .into_inner();
            let health = c.get_group_health(unary(GetGroupHealthRequest { group: group.clone() })).await?.into_inner();
            let shown = health
                .health
                .and_then(|h| h.backends.into_iter().find(|b| b.name == backend))
                .unwrap_or_default();
            out.print(&resp.catalog_changes, |_| history::catalog_view(&group, &shown, &resp.catalog_changes))
        }
        Command::Report {
            group,
            backend,
            outcome,
            http_status,
            json_rpc_code,
            method,
            count,
        } => {
            let report = OutcomeReport {
                group,
                backend,
                outcome: outcome.kind() as i32,
                http_status: http_status.unwrap_or(0),
                json_rpc_code: json_rpc_code.unwrap_or(0),
                method: method.unwrap_or_default(),
                latency: None,
            };
            let reports = futures_util::stream::iter(std::iter::repeat_n(report, count as usize));
            let mut req = tonic::Request::new(reports);
            req.set_timeout(RPC_TIMEOUT);
            let mut c = conn.group_client().await?;
            let resp = c.report_outcomes(conn.authorize(req)?).await?.into_inner();
            out.print(&resp, |_| {
                let mut text = format!(
                    "{} accepted, {} for an unknown group or backend, {} invalid\n",
                    resp.accepted, resp.unknown_backend, resp.invalid
                );
                if resp.forwarded > 0 {
                    text.push_str(&format!("{} forwarded to the replica that owns the backend\n", resp.forwarded));
                }
                if resp.dropped > 0 {
                    text.push_str(&format!(
                        "{} for another replica's backend dropped (the queue to the owners was full)\n",
                        resp.dropped
                    ));
                }
                if resp.not_owned > 0 {
                    text.push_str(&format!(
                        "{} for a backend another replica owns, not folded (no live owner known)\n",
                        resp.not_owned
                    ));
                }
                for b in &resp.ejected {
                    text.push_str(&format!("ejected {b}\n"));
                }
                text
            })
        }
        Command::Drain { group, backend, endpoint } => set_drain(&conn, &out, group, backend, endpoint, true).await,
        Command::Undrain { group, backend, endpoint } => set_drain(&conn, &out, group, backend, endpoint, false).await,
        Command::Check { service } => {
            let mut c = conn.health_client().await?;
            let resp = c.check(unary(HealthCheckRequest { service })).await.map_err(CliError::CheckRpc)?.into_inner();
            let status = ServingStatus::try_from(resp.status).unwrap_or(ServingStatus::Unknown);
            let name = status.as_str_name();
            let doc = serde_json::json!({ "status": name });
            out.print(&doc, |s| format!("status: {}\n", s.serving(status)))?;
            if status == ServingStatus::Serving {
                Ok(())
            } else {
                Err(CliError::NotServing(name.to_owned()))
            }
        }
    }
}

/// `drain` / `undrain`: SetBackendDrain, admin-guarded like apply.
async fn set_drain(conn: &Connection, out: &Output, group: String, backend: String, endpoint: Option<String>, drain: bool) -> Result<(), CliError> {
    let mut c = conn.group_client().await?;
    let req = SetBackendDrainRequest {
        group: group.clone(),
        backend: backend.clone(),
        drain,
        endpoint: endpoint.clone().unwrap_or_default(),
    };
    let resp = c.set_backend_drain(conn.authorize(unary(req))?).await?.into_inner();
    let what = match (drain, resp.changed) {
        (true, true) => "is draining",
        (true, false) => "was already draining",
        (false, true) => "is no longer draining",
        (false, false) => "was not draining",
    };
    let subject = match &endpoint {
        Some(e) => format!("endpoint {e} of backend {backend}"),
        None => format!("backend {backend}"),
    };
    out.print(&resp, |_| format!("{subject} of group {group} {what} (generation {})\n", resp.generation))
}

/// Writes to stdout, treating a closed pipe (`| head`) as the end, not an error.
pub(crate) fn write_stdout(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Output(e.to_string())),
        _ => Ok(()),
    }
}
