//! The interop matrix: MCP servers people run, each a real process on
//! loopback, probed by the real `mcp-healthd` binary. One helper
//! (`lifecycle`) drives every row: the prober starts first (start-up race),
//! then the server; HEALTHY while up, not routable once killed, HEALTHY again
//! after a restart on the same port. Rows: the TypeScript SDK 1.x in every
//! transport mode (tests/interop/node/sdk_server.mjs), its bearer-auth
//! middleware with RFC 9728 metadata, the TypeScript SDK 2.x
//! (`@modelcontextprotocol/server` with `@modelcontextprotocol/node`,
//! tests/interop/node/sdk2_server.mjs: 2026-07-28 only, both eras, and the
//! 2025 stateful wiring with SSE and JSON replies), the reference server
//! `@modelcontextprotocol/server-everything`, the Python SDK 1.x (FastMCP 1.0
//! API, tests/interop/mcp1_server.py) and 2.x (tests/interop/mcp_servers.py),
//! the Rust SDK rmcp (crates/interop-rmcp), and the stdio bridges supergateway
//! (npm) and mcp-proxy (PyPI). Installed by scripts/setup-interop.sh; a missing
//! install fails the test, it never skips.

use crate::common;
use crate::lifecycle_bin;

use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{backend, phase, reason, status};
use mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient;
use mcp_health::proto::v1::{BackendHealth, BackendStatus, GetGroupHealthRequest, GroupHealth, GroupPhase, ReasonCode};
use serde_json::{Value, json};
use tonic::transport::Channel;

/// How long one step of a row may take on a loaded 2-core machine. A bound,
/// not a measurement: steps usually take a second or two.
const PATIENCE: Duration = Duration::from_secs(120);
/// Rows run this many at a time.
const PARALLEL: usize = 4;
/// The valid token of the TypeScript bearer-auth server.
const TS_TOKEN: &str = "interop-ts-token";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn node_dir() -> PathBuf {
    repo().join("tests/interop/node")
}

/// A file the setup script installs; a missing one fails with what to run.
fn installed(path: PathBuf) -> PathBuf {
    assert!(path.exists(), "{} is missing: run scripts/setup-interop.sh", path.display());
    path
}

/// How a row's server process starts, on `port`.
#[derive(Clone, Copy, Debug)]
enum Launch {
    /// tests/interop/node/sdk_server.mjs --mode MODE (TypeScript SDK 1.x).
    Ts(&'static str),
    /// tests/interop/node/sdk2_server.mjs --mode MODE (TypeScript SDK 2.x).
    Ts2(&'static str),
    /// `mcp-server-everything MODE` (streamableHttp, sse), listening on $PORT.
    Everything(&'static str),
    /// tests/interop/mcp1_server.py --mode MODE in .venv-mcp1 (Python SDK 1.x).
    Py1(&'static str),
    /// tests/interop/mcp_servers.py --only KEY in .venv (Python SDK 2.x).
    Py2(&'static str),
    /// crates/interop-rmcp, with `--stateless` when true.
    Rmcp(bool),
    /// supergateway --outputTransport MODE in front of server-everything over stdio.
    Supergateway(&'static str),
    /// mcp-proxy (PyPI) in front of the Python 1.x server over stdio; serves /sse and /mcp.
    McpProxy,
}

impl Launch {
    fn command(self, port: u16) -> Command {
        let port = port.to_string();
        let node_script = |script: &str| installed(node_dir().join(script));
        let mut cmd = match self {
            Launch::Ts(mode) => {
                let mut c = Command::new("node");
                c.arg(node_script("sdk_server.mjs")).args(["--mode", mode, "--port", &port]);
                c
            }
            Launch::Ts2(mode) => {
                let mut c = Command::new("node");
                c.arg(node_script("sdk2_server.mjs")).args(["--mode", mode, "--port", &port]);
                c
            }
            Launch::Everything(mode) => {
                let mut c = Command::new("node");
                c.current_dir(node_dir())
                    .args(["--import", "./loopback.mjs"])
                    .arg(node_script("node_modules/@modelcontextprotocol/server-everything/dist/index.js"))
                    .arg(mode)
                    .env("PORT", &port);
                c
            }
            Launch::Py1(mode) => {
                let mut c = Command::new(installed(repo().join(".venv-mcp1/bin/python")));
                c.arg(repo().join("tests/interop/mcp1_server.py")).args(["--mode", mode, "--port", &port]);
                c
            }
            Launch::Py2(key) => {
                let mut c = Command::new(installed(repo().join(".venv/bin/python")));
                c.arg(repo().join("tests/interop/mcp_servers.py")).args(["--only", key, "--port", &port]);
                c
            }
            Launch::Rmcp(stateless) => {
                let mut c = Command::new(installed(target_dir().join("interop-rmcp")));
                c.args(["--port", &port]);
                if stateless {
                    c.arg("--stateless");
                }
                c
            }
            Launch::Supergateway(mode) => {
                let everything = node_script("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
                let mut c = Command::new("node");
                c.current_dir(node_dir())
                    .args(["--import", "./loopback.mjs"])
                    .arg(node_script("node_modules/supergateway/dist/index.js"))
                    .args(["--stdio", &format!("node {} stdio", everything.display())])
                    .arg("--outputTransport")
                    .args(mode.split(' '))
                    .args(["--port", &port, "--logLevel", "none"]);
                c
            }
            Launch::McpProxy => {
                let venv = repo().join(".venv-mcp1/bin");
                let mut c = Command::new(installed(venv.join("mcp-proxy")));
                c.args(["--host", "127.0.0.1", "--port", &port, "--log-level", "WARNING", "--"])
                    .arg(venv.join("python"))
                    .arg(repo().join("tests/interop/mcp1_server.py"))
                    .args(["--mode", "stdio"]);
                c
            }
        };
        cmd.stdin(Stdio::piped()).stdout(Stdio::null());
        cmd
    }
}

/// The directory of the workspace's binaries (interop-rmcp is built there by
/// `cargo build --workspace`): this test binary lives in its `deps/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf()
}

/// A running server process group; killed (SIGKILL to the whole group, so a
/// bridge's stdio child goes too) when dropped.
struct Running {
    child: Child,
}

impl Running {
    fn start(launch: Launch, port: u16, log: &Path) -> Running {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("server log file");
        let mut cmd = launch.command(port);
        cmd.stderr(stderr).process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {launch:?}: {e}"));
        Running { child }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one backend of a row must read while its server is up.
#[derive(Clone, Copy, Debug)]
struct Want {
    status: BackendStatus,
    routable: bool,
    reason: ReasonCode,
    tools: Tools,
}

#[derive(Clone, Copy, Debug)]
enum Tools {
    Exactly(u32),
    AtLeastOne,
    NotAsked,
}

const HEALTHY: Want = Want {
    status: BackendStatus::Healthy,
    routable: true,
    reason: ReasonCode::Ok,
    tools: Tools::AtLeastOne,
};

impl Want {
    const fn tools(self, tools: Tools) -> Want {
        Want {
            status: self.status,
            routable: self.routable,
            reason: self.reason,
            tools,
        }
    }

    fn holds(&self, b: &BackendHealth) -> bool {
        let tools = match self.tools {
            Tools::Exactly(n) => b.tool_count == Some(n),
            Tools::AtLeastOne => b.tool_count.is_some_and(|n| n > 0),
            Tools::NotAsked => b.tool_count.is_none(),
        };
        status(b) == self.status && b.routable == self.routable && reason(b) == self.reason && tools
    }
}

/// How a backend authenticates.
#[derive(Clone, Copy, Debug)]
enum Auth {
    None,
    PerUser,
    Token(&'static str),
}

/// One backend of a row: a name suffix, the auth, what it must read when up.
#[derive(Clone, Copy, Debug)]
struct Probe {
    suffix: &'static str,
    auth: Auth,
    want: Want,
}

const PLAIN: &[Probe] = &[Probe {
    suffix: "",
    auth: Auth::None,
    want: HEALTHY,
}];
const TWO_TOOLS: &[Probe] = &[Probe {
    suffix: "",
    auth: Auth::None,
    want: HEALTHY.tools(Tools::Exactly(2)),
}];

/// One row of the matrix.
#[derive(Clone, Copy, Debug)]
struct Row {
    name: &'static str,
    launch: Launch,
    path: &'static str,
    /// Legacy HTTP+SSE (the backend's transport TRANSPORT_SSE).
    legacy: bool,
    probes: &'static [Probe],
    /// The probe timeout in milliseconds; the interval is 100 ms longer.
    timeout_ms: u32,
}

const fn row(name: &'static str, launch: Launch, path: &'static str, legacy: bool, probes: &'static [Probe]) -> Row {
    Row {
        name,
        launch,
        path,
        legacy,
        probes,
        timeout_ms: 1400,
    }
}

impl Row {
    /// A row whose every request takes long by design.
    const fn slow(self) -> Row {
        Row { timeout_ms: 8000, ..self }
    }
}

const MATRIX: &[Row] = &[
    row("ts-sse", Launch::Ts("sse"), "/mcp", false, TWO_TOOLS),
    row("ts-eventstore", Launch::Ts("eventstore"), "/mcp", false, TWO_TOOLS),
    row("ts-json", Launch::Ts("json"), "/mcp", false, TWO_TOOLS),
    row("ts-stateless", Launch::Ts("stateless"), "/mcp", false, TWO_TOOLS),
    row("ts-legacy", Launch::Ts("legacy"), "/sse", true, TWO_TOOLS),
    row(
        "ts-notools",
        Launch::Ts("notools"),
        "/mcp",
        false,
        &[Probe {
            suffix: "",
            auth: Auth::None,
            want: Want {
                reason: ReasonCode::NoTools,
                ..HEALTHY.tools(Tools::NotAsked)
            },
        }],
    ),
    row(
        "ts-auth",
        Launch::Ts("auth"),
        "/mcp",
        false,
        &[
            Probe {
                suffix: "-per-user",
                auth: Auth::PerUser,
                want: Want {
                    status: BackendStatus::Unauthenticated,
                    routable: true,
                    reason: ReasonCode::AuthRequired,
                    tools: Tools::NotAsked,
                },
            },
            Probe {
                suffix: "-token",
                auth: Auth::Token(TS_TOKEN),
                want: HEALTHY.tools(Tools::Exactly(2)),
            },
            Probe {
                suffix: "-wrong-token",
                auth: Auth::Token("not-the-token"),
                want: Want {
                    status: BackendStatus::Unauthenticated,
                    routable: false,
                    reason: ReasonCode::CredentialsRejected,
                    tools: Tools::NotAsked,
                },
            },
        ],
    ),
    row("ts2-modern", Launch::Ts2("modern"), "/mcp", false, TWO_TOOLS),
    row("ts2-dual", Launch::Ts2("dual"), "/mcp", false, TWO_TOOLS),
    row("ts2-sessions", Launch::Ts2("sessions"), "/mcp", false, TWO_TOOLS),
    row("ts2-json", Launch::Ts2("json"), "/mcp", false, TWO_TOOLS),
    row("everything-streamable", Launch::Everything("streamableHttp"), "/mcp", false, PLAIN),
    row("everything-sse", Launch::Everything("sse"), "/sse", true, PLAIN),
    row("py1-streamable", Launch::Py1("streamable"), "/mcp", false, TWO_TOOLS),
    row("py1-json", Launch::Py1("json"), "/mcp", false, TWO_TOOLS),
    row("py1-stateless", Launch::Py1("stateless"), "/mcp", false, TWO_TOOLS),
    row("py1-sse", Launch::Py1("sse"), "/sse", true, TWO_TOOLS),
    row("py2-streamable", Launch::Py2("streamable_sse"), "/mcp", false, TWO_TOOLS),
    row("py2-sse", Launch::Py2("legacy_sse"), "/sse", true, TWO_TOOLS),
    row("rmcp-session", Launch::Rmcp(false), "/mcp", false, TWO_TOOLS),
    row("rmcp-stateless", Launch::Rmcp(true), "/mcp", false, TWO_TOOLS),
    row("supergateway-sse", Launch::Supergateway("sse"), "/sse", true, PLAIN),
    // supergateway starts a new stdio server for every session (stateful) or
    // every request (stateless): about a second each here.
    row(
        "supergateway-streamable",
        Launch::Supergateway("streamableHttp --stateful"),
        "/mcp",
        false,
        PLAIN,
    )
    .slow(),
    row(
        "supergateway-streamable-stateless",
        Launch::Supergateway("streamableHttp"),
        "/mcp",
        false,
        PLAIN,
    )
    .slow(),
    row("mcp-proxy-sse", Launch::McpProxy, "/sse", true, TWO_TOOLS),
    row("mcp-proxy-streamable", Launch::McpProxy, "/mcp", false, TWO_TOOLS),
];

fn backend_spec(row: &Row, probe: &Probe, url: &str, dir: &Path) -> Value {
    let mut b = json!({"name": format!("{}{}", row.name, probe.suffix), "url": url, "depth": "PROBE_DEPTH_TOOLS"});
    if row.legacy {
        b["transport"] = json!("TRANSPORT_SSE");
    }
    match probe.auth {
        Auth::None => {}
        Auth::PerUser => b["auth"] = json!({"mode": "AUTH_MODE_PER_USER"}),
        Auth::Token(token) => {
            let file = dir.join(format!("{}{}.token", row.name, probe.suffix));
            std::fs::write(&file, token).expect("token file");
            b["auth"] = json!({"mode": "AUTH_MODE_STATIC_HEADER",
                "staticHeader": {"header": "Authorization", "valuePrefix": "Bearer ", "value": {"file": file}}});
        }
    }
    b
}

/// Milliseconds as a proto3 JSON duration.
fn seconds(ms: u32) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// One backend's verdict, as a table cell.
fn verdict(b: &BackendHealth) -> String {
    let mut s = format!(
        "{} {}{}",
        status(b).as_str_name().trim_start_matches("BACKEND_STATUS_"),
        reason(b).as_str_name().trim_start_matches("REASON_CODE_"),
        if b.routable { "" } else { " (not routable)" }
    );
    if status(b) == BackendStatus::Healthy {
        let _ = write!(s, " {}", b.protocol_version);
        if let Some(n) = b.tool_count {
            let _ = write!(s, " tools={n}");
        }
    }
    s
}

struct Step<'a> {
    client: &'a GroupHealthServiceClient<Channel>,
    row: &'a Row,
    log: &'a Path,
}

impl Step<'_> {
    /// Polls the row's group until `pred` holds for it; on timeout, fails with
    /// the last health and the server's log.
    async fn wait(&self, what: &str, pred: impl Fn(&GroupHealth) -> bool) -> GroupHealth {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut last = None;
        loop {
            let request = GetGroupHealthRequest { group: self.row.name.into() };
            if let Ok(resp) = self.client.clone().get_group_health(request).await
                && let Some(h) = resp.into_inner().health
            {
                if pred(&h) {
                    return h;
                }
                last = Some(h);
            }
            if tokio::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(self.log).unwrap_or_default();
                let tail: String = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
                panic!(
                    "{}: timed out waiting for {what}; last health: {last:#?}\nserver log tail:\n{tail}",
                    self.row.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn backends<'h>(&self, h: &'h GroupHealth) -> Vec<(&'h BackendHealth, Probe)> {
        self.row
            .probes
            .iter()
            .map(|p| (backend(h, &format!("{}{}", self.row.name, p.suffix)), *p))
            .collect()
    }

    async fn up(&self, what: &str) -> GroupHealth {
        let h = self.wait(what, |h| self.backends(h).into_iter().all(|(b, p)| p.want.holds(b))).await;
        if self.row.probes.iter().all(|p| p.want.status == BackendStatus::Healthy) {
            assert_eq!(phase(&h), GroupPhase::Ready, "{}: {h:#?}", self.row.name);
        }
        for (b, p) in self.backends(&h) {
            if p.want.status == BackendStatus::Healthy {
                assert!(!b.server_name.is_empty() && !b.protocol_version.is_empty(), "{b:#?}");
            }
        }
        h
    }

    async fn down(&self, what: &str) -> GroupHealth {
        let h = self
            .wait(what, |h| {
                self.backends(h).into_iter().all(|(b, _)| status(b) == BackendStatus::Unhealthy && !b.routable)
            })
            .await;
        assert_eq!(phase(&h), GroupPhase::Failed, "{}: {h:#?}", self.row.name);
        h
    }
}

/// The verdicts of one backend over the row's life.
#[derive(Debug, Default)]
struct Seen {
    backend: String,
    race: String,
    up: String,
    killed: String,
    restarted: String,
}

/// The whole life of one row against the daemon at `addr`.
async fn lifecycle(client: GroupHealthServiceClient<Channel>, row: Row, dir: PathBuf) -> Vec<Seen> {
    let port = mcp_fixture::reserve_port().port();
    let url = format!("http://127.0.0.1:{port}{}", row.path);
    let log = dir.join(format!("{}.log", row.name));
    let backends: Vec<Value> = row.probes.iter().map(|p| backend_spec(&row, p, &url, &dir)).collect();
    let spec = json!({"name": row.name,
        "policy": {"interval": seconds(row.timeout_ms + 100), "timeout": seconds(row.timeout_ms),
            "degradedLatency": seconds(row.timeout_ms), "unhealthyThreshold": 1, "healthyThreshold": 1},
        "backends": backends});
    let mut c = client.clone();
    c.apply_group(common::apply_request(serde_json::from_value(spec).expect("spec")))
        .await
        .expect("apply");
    let step = Step {
        client: &client,
        row: &row,
        log: &log,
    };
    let mut seen: Vec<Seen> = row
        .probes
        .iter()
        .map(|p| Seen {
            backend: format!("{}{}", row.name, p.suffix),
            ..Seen::default()
        })
        .collect();
    let record = |seen: &mut Vec<Seen>, h: &GroupHealth, field: fn(&mut Seen) -> &mut String| {
        for s in seen.iter_mut() {
            *field(s) = verdict(backend(h, &s.backend));
        }
    };

    // Start-up race: the prober runs first, the server comes later.
    let h = step.down("a failed probe before the server starts").await;
    record(&mut seen, &h, |s| &mut s.race);
    let server = Running::start(row.launch, port, &log);
    let h = step.up("the expected verdicts once the server is up").await;
    record(&mut seen, &h, |s| &mut s.up);

    drop(server);
    let h = step.down("not routable once the server is killed").await;
    record(&mut seen, &h, |s| &mut s.killed);

    let server = Running::start(row.launch, port, &log);
    let h = step.up("the expected verdicts after a restart").await;
    record(&mut seen, &h, |s| &mut s.restarted);
    drop(server);

    c.delete_group(mcp_health::proto::v1::DeleteGroupRequest { group: row.name.into() })
        .await
        .expect("delete");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_and_mode_reads_right_through_start_kill_and_restart() {
    let d = lifecycle_bin::Daemon::spawn(&[]);
    let client = d.client().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, row) in MATRIX.iter().enumerate() {
        let (client, dir, limit, row) = (client.clone(), dir.path().to_path_buf(), limit.clone(), *row);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore open");
            (i, lifecycle(client, row, dir).await)
        });
    }
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(r) => rows.push(r),
            Err(e) => failures.push(e.to_string()),
        }
    }
    rows.sort_by_key(|(i, _)| *i);
    println!("\n| backend | start-up race (prober first) | up | killed | restarted |\n|---|---|---|---|---|");
    for s in rows.iter().flat_map(|(_, seen)| seen) {
        println!("| {} | {} | {} | {} | {} |", s.backend, s.race, s.up, s.killed, s.restarted);
    }
    assert!(failures.is_empty(), "{} rows failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(rows.len(), MATRIX.len());
    d.stop().await;
}

/// The session counters the TypeScript server exposes at GET /sessions, or
/// None while it does not answer yet.
async fn ts_sessions(port: u16) -> Option<Value> {
    common::install_crypto();
    let resp = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/sessions")).send().await.ok()?;
    serde_json::from_slice(&resp.bytes().await.ok()?).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_probes_leave_no_session_open_on_a_stateful_typescript_server() {
    let port = mcp_fixture::reserve_port().port();
    let dir = tempfile::tempdir().expect("tempdir");
    let _server = Running::start(Launch::Ts("eventstore"), port, &dir.path().join("ts.log"));
    let d = lifecycle_bin::Daemon::spawn(&[]);
    let mut client = d.client().await;
    common::eventually("the TypeScript server answers", || ts_sessions(port), |_| true).await;
    // Back-to-back probes at depth TOOLS: initialize, notifications/initialized,
    // tools/list, DELETE, each on a session of its own.
    let spec = json!({"name": "leak", "policy": {"interval": "0.2s", "timeout": "0.19s", "degradedLatency": "0.19s"},
        "backends": [{"name": "ts", "url": format!("http://127.0.0.1:{port}/mcp"), "depth": "PROBE_DEPTH_TOOLS"}]});
    client
        .apply_group(common::apply_request(serde_json::from_value(spec).expect("spec")))
        .await
        .expect("apply");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let counts = ts_sessions(port).await.expect("GET /sessions");
        if counts["opened"].as_u64() >= Some(100) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "fewer than 100 probes: {counts}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let h = client
        .get_group_health(GetGroupHealthRequest { group: "leak".into() })
        .await
        .expect("get")
        .into_inner()
        .health
        .expect("health");
    let b = backend(&h, "ts");
    assert_eq!((status(b), b.tool_count), (BackendStatus::Healthy, Some(2)), "{b:#?}");
    // A leaked session never closes (the SDK has no idle timeout), so `open`
    // would stay above zero from the leak on. Once probing stops, none is
    // open. (Waiting for a moment between two probes instead depends on
    // the machine's load: back to back, a session is nearly always open.)
    client
        .delete_group(mcp_health::proto::v1::DeleteGroupRequest { group: "leak".into() })
        .await
        .expect("delete");
    let counts = loop {
        let counts = ts_sessions(port).await.expect("GET /sessions");
        if counts["open"] == json!(0) {
            break counts;
        }
        assert!(
            tokio::time::Instant::now() < deadline + PATIENCE,
            "a session is still open after probing stopped: {counts}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("TypeScript SDK server (stateful, event store) after 100+ probes: {counts}");
    assert_eq!(counts["deleted"], counts["opened"], "every session ended with DELETE: {counts}");
    d.stop().await;
}
