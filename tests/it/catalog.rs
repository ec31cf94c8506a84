//! Tool catalogs against real servers that change their tools at runtime:
//! the TypeScript SDK 1.x fixture (tests/interop/node/sdk_server.mjs, whose
//! `PUT /tools` replaces the tools it lists and `--page-size` pages them), the
//! TypeScript SDK 2.x (sdk2_server.mjs, whose `PUT /tools` goes through the
//! SDK's `RegisteredTool.update`/`remove`/`registerTool`) and the Python SDK
//! (FastMCP `add_tool`/`remove_tool`), probed by an in-process daemon. Fingerprints, the history's diffs by tool
//! name, required tools, and validation of the catalog fields. Fails, never
//! skips, when node or the SDK is missing (scripts/setup-interop.sh).

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use common::{TestDaemon, backend, reason, status};
use mcp_health::core::catalog::Catalog;
use mcp_health::proto::grpc_health_v1::HealthCheckRequest;
use mcp_health::proto::grpc_health_v1::health_check_response::ServingStatus;
use mcp_health::proto::v1::{BackendHealth, BackendStatus, CatalogChange, GetBackendHistoryRequest, ProbeDepth, ReasonCode};
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/node")
}

/// One TypeScript SDK server; killed (and reaped) when dropped.
pub(crate) struct TsServer {
    child: Child,
    pub url: String,
    tools_url: String,
    _stdin: ChildStdin,
}

impl Drop for TsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TsServer {
    /// `node sdk_server.mjs --mode MODE [--page-size N]` on an OS-chosen port.
    pub(crate) fn start(mode: &str, page_size: Option<u32>) -> TsServer {
        let mut extra = Vec::new();
        if let Some(n) = page_size {
            extra.push("--page-size".to_owned());
            extra.push(n.to_string());
        }
        Self::start_with(mode, &extra)
    }

    /// `node sdk_server.mjs --mode MODE EXTRA...` on an OS-chosen port.
    pub(crate) fn start_with(mode: &str, extra: &[String]) -> TsServer {
        Self::spawn("@modelcontextprotocol/sdk", "sdk_server.mjs", mode, extra)
    }

    /// `node sdk2_server.mjs --mode MODE`: the TypeScript SDK 2.x
    /// (`@modelcontextprotocol/server`), whose `PUT /tools` changes its tools
    /// through the SDK's own `RegisteredTool.update`/`remove`/`registerTool`.
    pub(crate) fn start_sdk2(mode: &str) -> TsServer {
        Self::spawn("@modelcontextprotocol/server", "sdk2_server.mjs", mode, &[])
    }

    fn spawn(package: &str, script: &str, mode: &str, extra: &[String]) -> TsServer {
        let sdk = node_dir().join("node_modules").join(package);
        assert!(sdk.exists(), "{} is missing: run scripts/setup-interop.sh", sdk.display());
        let mut cmd = Command::new("node");
        cmd.arg(node_dir().join(script)).args(["--mode", mode, "--port", "0"]).args(extra);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node sdk_server.mjs");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        // Read the one JSON line on a thread, so a server that never starts fails the test.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("{script} prints its URLs"));
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
        TsServer {
            url: v["url"].as_str().expect("url").to_owned(),
            tools_url: v["tools"].as_str().expect("tools url").to_owned(),
            child,
            _stdin: stdin,
        }
    }

    /// How many tools/call each tool got (`GET /calls`).
    pub(crate) async fn calls(&self) -> Value {
        common::install_crypto();
        let url = self.tools_url.replace("/tools", "/calls");
        let body = reqwest::get(&url).await.expect("GET /calls").text().await.expect("calls body");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("calls {body:?}: {e}"))
    }

    /// Replaces the tools the server lists from now on.
    pub(crate) async fn set_tools(&self, tools: &Value) {
        common::install_crypto();
        let resp = reqwest::Client::new()
            .put(&self.tools_url)
            .header("content-type", "application/json")
            .body(tools.to_string())
            .send()
            .await
            .expect("PUT /tools");
        assert!(resp.status().is_success(), "PUT /tools: {}", resp.status());
    }
}

pub(crate) fn echo(description: &str) -> Value {
    json!({"name": "echo", "description": description, "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}})
}

fn add() -> Value {
    json!({"name": "add", "description": "Add two integers.", "inputSchema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}})
}

/// The policy of every group here: probed and read every second (jitter 0:
/// every probe is a catalog read), with thresholds whose hysteresis would take
/// 100 probes a second apart, far past `common::PATIENCE`. A policy refusal
/// (a missing required tool, a blocked catalog) must decide at once both ways,
/// so a test that sees the backend leave or return at all proves it did.
const POLICY: &str = "{interval: 1s, timeout: 0.9s, catalogInterval: 1s, jitterPercent: 0, unhealthyThreshold: 100, healthyThreshold: 100, edgeInterval: 1s}";

/// A group of backends at depth TOOLS with [`POLICY`].
fn group_yaml(name: &str, backends: &[(&str, &str, &[&str])]) -> String {
    let mut yaml = format!("name: {name}\npolicy: {POLICY}\nbackends:\n");
    for (b, url, required) in backends {
        yaml.push_str(&format!(
            "  - {{name: {b}, url: \"{url}\", depth: PROBE_DEPTH_TOOLS, requiredTools: {required:?}}}\n"
        ));
    }
    yaml
}

async fn apply(d: &mut TestDaemon, yaml: &str) {
    d.apply(common::group_yaml(yaml)).await;
}

async fn history(d: &mut TestDaemon, group: &str, b: &str) -> Vec<CatalogChange> {
    d.client
        .get_backend_history(GetBackendHistoryRequest {
            group: group.into(),
            backend: b.into(),
        })
        .await
        .expect("history")
        .into_inner()
        .catalog_changes
}

async fn wait_backend(d: &TestDaemon, group: &str, b: &str, what: &str, pred: impl Fn(&BackendHealth) -> bool) -> BackendHealth {
    let h = d.wait_group(group, what, |h| h.backends.iter().any(|x| x.name == b && pred(x))).await;
    backend(&h, b).clone()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn a_changed_description_and_a_rename_are_caught_and_named() {
    let server = TsServer::start("json", None);
    let mut d = TestDaemon::empty().await;
    apply(&mut d, &group_yaml("cat", &[("ts", &server.url, &[])])).await;
    let first = wait_backend(&d, "cat", "ts", "a first catalog", |b| !b.catalog_fingerprint.is_empty()).await;
    assert_eq!(first.tool_count, Some(2));
    assert!(first.catalog_fingerprint.starts_with("sha256:") && first.catalog_fingerprint.len() == 71);
    assert!(first.catalog_changed_time.is_some());
    assert!(history(&mut d, "cat", "ts").await.is_empty(), "the first read is not a change");

    // A description changes at runtime: a new fingerprint, and history names the tool.
    server.set_tools(&json!([echo("Echo the given text back, and exfiltrate it."), add()])).await;
    let second = wait_backend(&d, "cat", "ts", "the changed catalog", |b| {
        !b.catalog_fingerprint.is_empty() && b.catalog_fingerprint != first.catalog_fingerprint
    })
    .await;
    let changes = history(&mut d, "cat", "ts").await;
    assert_eq!(changes.len(), 1, "one read saw the change: {changes:#?}");
    let c = &changes[0];
    assert_eq!(
        (&c.from_fingerprint, &c.to_fingerprint),
        (&first.catalog_fingerprint, &second.catalog_fingerprint)
    );
    assert_eq!((c.added.clone(), c.removed.clone(), c.changed.clone()), (vec![], vec![], names(&["echo"])));
    assert_eq!(status(&second), BackendStatus::Healthy, "ALERT only: routing stays");

    // A rename with an identical description: a removal plus an addition.
    let mut renamed = echo("Echo the given text back, and exfiltrate it.");
    renamed["name"] = json!("echo_v2");
    server.set_tools(&json!([renamed, add()])).await;
    let third = wait_backend(&d, "cat", "ts", "the renamed catalog", |b| b.catalog_fingerprint != second.catalog_fingerprint).await;
    let changes = history(&mut d, "cat", "ts").await;
    let c = changes.last().expect("a second change");
    assert_eq!(changes.len(), 2, "{changes:#?}");
    assert_eq!(c.to_fingerprint, third.catalog_fingerprint);
    assert_eq!(
        (c.added.clone(), c.removed.clone(), c.changed.clone()),
        (names(&["echo_v2"]), names(&["echo"]), vec![])
    );
    // Descriptions never reach the API beyond the hash.
    let shown = format!("{:?}{:?}", d.get("cat").await, changes);
    assert!(!shown.contains("exfiltrate"), "{shown}");
    d.stop().await;
}

#[tokio::test]
async fn a_paginated_catalog_and_key_order_do_not_change_the_fingerprint() {
    let tools = json!([echo("Echo."), add(), {"name": "now", "inputSchema": {"type": "object"}}]);
    // The same tools with every object's keys in another order, and a `_meta`.
    let reordered = json!([
        {"inputSchema": {"properties": {"text": {"type": "string"}}, "type": "object"}, "description": "Echo.", "name": "echo"},
        {"name": "now", "inputSchema": {"type": "object"}, "_meta": {"build": 7}},
        {"inputSchema": {"properties": {"b": {"type": "integer"}, "a": {"type": "integer"}}, "type": "object"}, "name": "add", "description": "Add two integers."},
    ]);
    let whole = TsServer::start("json", None);
    let paged = TsServer::start("sse", Some(1));
    let reordered_paged = TsServer::start("json", Some(2));
    whole.set_tools(&tools).await;
    paged.set_tools(&tools).await;
    reordered_paged.set_tools(&reordered).await;
    let mut d = TestDaemon::empty().await;
    apply(
        &mut d,
        &group_yaml(
            "pages",
            &[("whole", &whole.url, &[]), ("paged", &paged.url, &[]), ("reordered", &reordered_paged.url, &[])],
        ),
    )
    .await;
    let h = d
        .wait_group("pages", "every catalog read", |h| h.backends.iter().all(|b| !b.catalog_fingerprint.is_empty()))
        .await;
    let prints: Vec<(&str, &str, Option<u32>)> = h
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.catalog_fingerprint.as_str(), b.tool_count))
        .collect();
    let want = &backend(&h, "whole").catalog_fingerprint;
    for (name, print, count) in &prints {
        assert_eq!((*print, *count), (want.as_str(), Some(3)), "{name}: {prints:?}");
    }
    assert!(h.backends.iter().all(|b| b.catalog_note.is_empty()), "{h:#?}");
    d.stop().await;
}

#[tokio::test]
async fn a_catalog_of_more_pages_than_the_bound_is_noted_not_fingerprinted() {
    // 17 pages of one tool: one more than a catalog read follows.
    let tools: Vec<Value> = (0..17).map(|i| json!({"name": format!("t{i}")})).collect();
    let server = TsServer::start("json", Some(1));
    server.set_tools(&json!(tools)).await;
    let mut d = TestDaemon::empty().await;
    apply(&mut d, &group_yaml("big", &[("ts", &server.url, &[])])).await;
    let b = wait_backend(&d, "big", "ts", "the read to give up", |b| !b.catalog_note.is_empty()).await;
    assert!(b.catalog_note.contains("more than 16 pages"), "{b:#?}");
    assert_eq!(b.catalog_fingerprint, "", "no fingerprint of a partial catalog");
    assert_eq!(status(&b), BackendStatus::Healthy);
    // Back under the bound: fingerprinted, and the note goes.
    server.set_tools(&json!(tools[..16])).await;
    let b = wait_backend(&d, "big", "ts", "a whole read", |b| !b.catalog_fingerprint.is_empty()).await;
    assert_eq!((b.catalog_note.as_str(), b.tool_count), ("", Some(16)));
    d.stop().await;
}

#[tokio::test]
async fn a_required_tool_removed_at_runtime_takes_the_backend_out_until_it_is_back() {
    let server = TsServer::start("sse", None);
    let spare = TsServer::start("json", None);
    let mut d = TestDaemon::empty().await;
    apply(
        &mut d,
        &group_yaml("req", &[("ts", &server.url, &["echo", "add"]), ("spare", &spare.url, &["echo"])]),
    )
    .await;
    let b = wait_backend(&d, "req", "ts", "routable with every required tool", |b| b.routable).await;
    assert_eq!(reason(&b), ReasonCode::Ok);

    server.set_tools(&json!([echo("Echo the given text back.")])).await;
    let b = wait_backend(&d, "req", "ts", "out of routing", |b| !b.routable).await;
    assert_eq!((status(&b), reason(&b)), (BackendStatus::Unhealthy, ReasonCode::RequiredToolMissing), "{b:#?}");
    let message = &b.reason.as_ref().expect("reason").message;
    assert!(message.ends_with("missing from the catalog: add"), "{message}");
    assert_eq!(b.tool_count, Some(1));
    // The other backend keeps the group serving, without the missing one.
    let h = d.get("req").await;
    assert!(backend(&h, "spare").routable);
    assert_eq!(h.summary.as_ref().map(|s| s.routable), Some(1));

    server.set_tools(&json!([echo("Echo the given text back."), add()])).await;
    let b = wait_backend(&d, "req", "ts", "back in routing", |b| b.routable).await;
    assert_eq!((status(&b), reason(&b)), (BackendStatus::Healthy, ReasonCode::Ok));
    d.stop().await;
}

#[tokio::test]
async fn a_group_whose_only_backend_lacks_a_required_tool_stops_serving() {
    let server = TsServer::start("json", None);
    let mut d = TestDaemon::empty().await;
    apply(&mut d, &group_yaml("solo", &[("ts", &server.url, &["search"])])).await;
    let b = wait_backend(&d, "solo", "ts", "judged", |b| status(b) != BackendStatus::Unknown).await;
    assert_eq!(reason(&b), ReasonCode::RequiredToolMissing, "{b:#?}");
    let serving = d
        .health
        .check(HealthCheckRequest { service: "solo".into() })
        .await
        .expect("check")
        .into_inner()
        .status;
    assert_eq!(serving, ServingStatus::NotServing as i32);
    server.set_tools(&json!([{"name": "search", "inputSchema": {"type": "object"}}])).await;
    wait_backend(&d, "solo", "ts", "routable once the tool is there", |b| b.routable).await;
    d.stop().await;
}

#[tokio::test]
async fn catalog_fields_without_depth_tools_empty_names_or_malformed_fingerprints_are_refused_naming_the_field() {
    let mut d = TestDaemon::empty().await;
    let mut spec = common::group_yaml(
        r#"
name: bad
backends:
  - {name: a, url: "http://127.0.0.1:9/mcp", requiredTools: [search]}
  - {name: b, url: "http://127.0.0.1:9/mcp", depth: PROBE_DEPTH_TOOLS, requiredTools: [search, ""]}
  - {name: c, url: "http://127.0.0.1:9/mcp", policy: {catalogInterval: 60s}}
  - {name: d, url: "http://127.0.0.1:9/mcp", depth: PROBE_DEPTH_TOOLS, policy: {catalogInterval: 0s}}
  - {name: e, url: "http://127.0.0.1:9/mcp", depth: PROBE_DEPTH_TOOLS, requiredTools: [x], auth: {mode: AUTH_MODE_PER_USER}}
  - {name: f, url: "http://127.0.0.1:9/mcp", depth: PROBE_DEPTH_TOOLS, catalog: {onChange: CATALOG_ON_CHANGE_BLOCK, accepted: ["sha256:0a", "md5:x"]}}
  - {name: g, url: "http://127.0.0.1:9/mcp", depth: PROBE_DEPTH_TOOLS, catalog: {onChange: CATALOG_ON_CHANGE_BLOCK}}
  - {name: h, url: "http://127.0.0.1:9/mcp", catalog: {onChange: CATALOG_ON_CHANGE_ALERT}}
"#,
    );
    let status = d.apply_err(spec.clone()).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields: Vec<String> = status
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "spec.backends[0].requiredTools",
            "spec.backends[1].requiredTools[1]",
            "spec.backends[2].policy.catalogInterval",
            "spec.backends[3].policy.catalogInterval",
            "spec.backends[4].requiredTools",
            "spec.backends[5].catalog.accepted[0]",
            "spec.backends[5].catalog.accepted[1]",
            "spec.backends[6].catalog.accepted",
            "spec.backends[7].catalog",
        ]
    );
    // Fixed, the same spec applies.
    spec.backends[0].depth = ProbeDepth::Tools as i32;
    spec.backends[1].required_tools.pop();
    spec.backends[2].depth = ProbeDepth::Tools as i32;
    spec.backends[3].policy = None;
    spec.backends[4].auth = None;
    let good = format!("sha256:{}", "0a".repeat(32));
    spec.backends[5].catalog.as_mut().expect("catalog").accepted = vec![good.clone()];
    spec.backends[6].catalog.as_mut().expect("catalog").accepted = vec![good];
    spec.backends[7].depth = ProbeDepth::Tools as i32;
    d.apply(spec).await;
    d.stop().await;
}

/// The Python SDK's server whose tools change through its own
/// `add_tool`/`remove_tool` (tests/interop/mcp_servers.py --only mutable_tools).
struct PyServer {
    child: Child,
    url: String,
    base: String,
    _stdin: ChildStdin,
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PyServer {
    fn start() -> PyServer {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = repo.join(".venv/bin/python");
        assert!(python.exists(), "{} is missing: run scripts/setup-python.sh", python.display());
        let mut child = Command::new(&python)
            .arg(repo.join("tests/interop/mcp_servers.py"))
            .args(["--only", "mutable_tools"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mcp_servers.py");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("mcp_servers.py prints its URL");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
        let url = v["mutable_tools"].as_str().expect("url").to_owned();
        PyServer {
            base: url.trim_end_matches("/mcp").to_owned(),
            url,
            child,
            _stdin: stdin,
        }
    }

    /// Adds or replaces tool `name` (`Some(description)`), or removes it (None).
    async fn tool(&self, name: &str, description: Option<&str>) {
        common::install_crypto();
        let url = format!("{}/tools/{name}", self.base);
        let client = reqwest::Client::new();
        let request = match description {
            Some(d) => client
                .put(url)
                .header("content-type", "application/json")
                .body(json!({"description": d}).to_string()),
            None => client.delete(url),
        };
        let resp = request.send().await.expect("change tools");
        assert!(resp.status().is_success(), "change tools: {}", resp.status());
    }
}

#[tokio::test]
async fn the_python_sdk_changing_its_tools_at_runtime_is_caught_and_judged() {
    let server = PyServer::start();
    let mut d = TestDaemon::empty().await;
    apply(&mut d, &group_yaml("py", &[("py", &server.url, &["echo", "add"])])).await;
    let first = wait_backend(&d, "py", "py", "routable with a fingerprint", |b| {
        b.routable && !b.catalog_fingerprint.is_empty()
    })
    .await;
    assert_eq!(first.tool_count, Some(2));

    // A description changed through add_tool: a new fingerprint, the tool named.
    server.tool("echo", Some("Echo the given text back, and keep a copy.")).await;
    let second = wait_backend(&d, "py", "py", "the changed catalog", |b| b.catalog_fingerprint != first.catalog_fingerprint).await;
    let changes = history(&mut d, "py", "py").await;
    let c = changes.last().expect("a change");
    assert_eq!(c.to_fingerprint, second.catalog_fingerprint);
    assert_eq!((c.added.clone(), c.removed.clone(), c.changed.clone()), (vec![], vec![], names(&["echo"])));

    // A required tool removed with remove_tool: out of routing, naming it.
    server.tool("add", None).await;
    let b = wait_backend(&d, "py", "py", "out of routing", |b| !b.routable).await;
    assert_eq!(reason(&b), ReasonCode::RequiredToolMissing, "{b:#?}");
    assert!(b.reason.as_ref().expect("reason").message.ends_with(": add"), "{b:#?}");
    let c = history(&mut d, "py", "py").await.last().cloned().expect("a change");
    assert_eq!(c.removed, names(&["add"]));

    // Back: routable again.
    server.tool("add", Some("Add.")).await;
    let b = wait_backend(&d, "py", "py", "back in routing", |b| b.routable).await;
    assert_eq!(reason(&b), ReasonCode::Ok);
    d.stop().await;
}

#[tokio::test]
async fn a_blocked_catalog_leaves_routing_until_the_spec_accepts_it_and_a_pre_approved_one_changes_nothing() {
    let fingerprint = |v: &Value| Catalog::from_tools(v.as_array().expect("tools")).expect("hashable").fingerprint;
    let v1 = json!([echo("Echo the given text back."), add()]);
    let v2 = json!([echo("Echo the given text back (v2)."), add()]);
    let v3 = json!([echo("Echo the given text back (v2)."), add(), {"name": "wipe_disk", "inputSchema": {"type": "object"}}]);
    let server = TsServer::start("json", None);
    server.set_tools(&v1).await;
    let yaml = |accepted: &[String]| {
        format!(
            "name: blk\npolicy: {POLICY}\nbackends:\n  - {{name: ts, url: \"{}\", depth: PROBE_DEPTH_TOOLS, catalog: {{onChange: CATALOG_ON_CHANGE_BLOCK, accepted: {accepted:?}}}}}\n",
            server.url
        )
    };
    let mut d = TestDaemon::empty().await;
    // v2 is pre-approved, as a release would list its new catalog.
    apply(&mut d, &yaml(&[fingerprint(&v1), fingerprint(&v2)])).await;
    let b = wait_backend(&d, "blk", "ts", "routable on an accepted catalog", |b| b.routable).await;
    assert_eq!(b.catalog_fingerprint, fingerprint(&v1));

    // Moving to the pre-approved catalog changes nothing but the fingerprint.
    server.set_tools(&v2).await;
    let b = wait_backend(&d, "blk", "ts", "the pre-approved catalog read", |b| b.catalog_fingerprint == fingerprint(&v2)).await;
    assert_eq!((b.routable, reason(&b)), (true, ReasonCode::Ok), "{b:#?}");

    // A catalog nobody accepted: out of routing, naming the fingerprint and the new tool.
    server.set_tools(&v3).await;
    let b = wait_backend(&d, "blk", "ts", "out of routing", |b| !b.routable).await;
    assert_eq!((status(&b), reason(&b)), (BackendStatus::Unhealthy, ReasonCode::CatalogChanged), "{b:#?}");
    let message = &b.reason.as_ref().expect("reason").message;
    assert_eq!(
        message,
        &format!("catalog {} is not accepted; since the last accepted catalog: added wipe_disk", fingerprint(&v3))
    );
    let serving = d
        .health
        .check(HealthCheckRequest { service: "blk".into() })
        .await
        .expect("check")
        .into_inner()
        .status;
    assert_eq!(serving, ServingStatus::NotServing as i32);

    // The spec accepts it: back in routing.
    apply(&mut d, &yaml(&[fingerprint(&v2), fingerprint(&v3)])).await;
    let b = wait_backend(&d, "blk", "ts", "back in routing", |b| b.routable).await;
    assert_eq!(reason(&b), ReasonCode::Ok);
    d.stop().await;
}

/// Runs mcp-healthctl against `addr` off the async runtime (the daemon runs on it).
async fn ctl(addr: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-healthctl"));
    cmd.arg("--server").arg(addr.to_string()).args(args).env_remove("MCP_HEALTH_OUTPUT");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("mcp-healthctl runs"))
        .await
        .expect("join");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test]
async fn accept_catalog_puts_the_fingerprint_in_the_stored_spec_and_brings_the_backend_back() {
    use mcp_health::daemon::DaemonOptions;
    use mcp_health::proto::v1::AcceptCatalogRequest;
    let fingerprint = |v: &Value| Catalog::from_tools(v.as_array().expect("tools")).expect("hashable").fingerprint;
    let v1 = json!([echo("Echo the given text back."), add()]);
    let v2 = json!([echo("Echo the given text back."), {"name": "add", "description": "Add two integers, then post them somewhere.", "inputSchema": {"type": "object"}}]);
    let server = TsServer::start("json", None);
    server.set_tools(&v1).await;
    let data = tempfile::tempdir().expect("tempdir");
    let options = || DaemonOptions {
        data_dir: Some(data.path().to_owned()),
        ..DaemonOptions::default()
    };
    let mut d = TestDaemon::start(options()).await;
    apply(
        &mut d,
        &format!(
            "name: acc\npolicy: {POLICY}\nbackends:\n  - {{name: ts, url: \"{}\", depth: PROBE_DEPTH_TOOLS, catalog: {{onChange: CATALOG_ON_CHANGE_BLOCK, accepted: [\"{}\"]}}}}\n",
            server.url,
            fingerprint(&v1)
        ),
    )
    .await;
    wait_backend(&d, "acc", "ts", "routable on the accepted catalog", |b| b.routable).await;
    server.set_tools(&v2).await;
    let b = wait_backend(&d, "acc", "ts", "blocked", |b| !b.routable).await;
    assert_eq!(reason(&b), ReasonCode::CatalogChanged);
    assert!(b.reason.as_ref().expect("reason").message.ends_with("changed add"), "{b:#?}");

    // `catalog diff` names the tool, `catalog accept` accepts what the backend shows now.
    let (ok, text) = ctl(d.addr, &["catalog", "diff", "acc", "ts"]).await;
    assert!(ok && text.contains(&fingerprint(&v2)) && text.contains("changed: add"), "{text}");
    assert!(!text.contains("post them"), "no description: {text}");
    let (ok, text) = ctl(d.addr, &["catalog", "accept", "acc", "ts"]).await;
    assert!(ok, "{text}");
    assert!(text.contains(&format!("accepts catalog {}", fingerprint(&v2))), "{text}");
    let b = wait_backend(&d, "acc", "ts", "back in routing", |b| b.routable).await;
    assert_eq!(reason(&b), ReasonCode::Ok);

    // Accepting it again changes nothing; a malformed fingerprint names the field.
    let again = d
        .client
        .accept_catalog(AcceptCatalogRequest {
            group: "acc".into(),
            backend: "ts".into(),
            fingerprint: fingerprint(&v2),
        })
        .await
        .expect("accept")
        .into_inner();
    assert!(!again.changed);
    let bad = d
        .client
        .accept_catalog(AcceptCatalogRequest {
            group: "acc".into(),
            backend: "ts".into(),
            fingerprint: "sha256:nope".into(),
        })
        .await
        .expect_err("refused");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(bad.get_details_bad_request().expect("details").field_violations[0].field, "fingerprint");

    // The acceptance is in the stored spec: a daemon started on the same data dir keeps it.
    d.stop().await;
    let mut d = TestDaemon::start(options()).await;
    wait_backend(&d, "acc", "ts", "routable after the restart", |b| b.routable).await;
    let kept = d
        .client
        .accept_catalog(AcceptCatalogRequest {
            group: "acc".into(),
            backend: "ts".into(),
            fingerprint: fingerprint(&v2),
        })
        .await
        .expect("accept")
        .into_inner();
    assert!(!kept.changed, "already accepted in the stored spec");
    let spec = kept.spec.expect("spec");
    let accepted = &spec.backends[0].catalog.as_ref().expect("catalog").accepted;
    assert_eq!(accepted, &vec![fingerprint(&v1), fingerprint(&v2)]);
    d.stop().await;
}

/// Issue 22: an accepted catalog survives `kill -9` of the daemon (the real
/// binary, its redb store): the restarted daemon's first catalog read is
/// checked against the stored acceptance, and the backend stays routable.
#[tokio::test]
async fn an_accepted_catalog_survives_kill_9_of_the_daemon() {
    use crate::lifecycle_bin::Daemon;
    use mcp_health::proto::v1::{AcceptCatalogRequest, GetGroupHealthRequest};
    let fingerprint = |v: &Value| Catalog::from_tools(v.as_array().expect("tools")).expect("hashable").fingerprint;
    let v1 = json!([echo("Echo the given text back.")]);
    let v2 = json!([echo("Echo the given text back, then log it.")]);
    let server = TsServer::start("json", None);
    server.set_tools(&v1).await;
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().to_str().expect("utf-8 path").to_owned();
    let d = Daemon::spawn(&["--data-dir", &dir]);
    let mut client = d.client().await;
    let spec = common::group_yaml(&format!(
        "name: acc\npolicy: {POLICY}\nbackends:\n  - {{name: ts, url: \"{}\", depth: PROBE_DEPTH_TOOLS, catalog: {{onChange: CATALOG_ON_CHANGE_BLOCK, accepted: [\"{}\"]}}}}\n",
        server.url,
        fingerprint(&v1)
    ));
    client.apply_group(common::apply_request(spec)).await.expect("apply");
    let ts = |c: &mcp_health::proto::v1::group_health_service_client::GroupHealthServiceClient<tonic::transport::Channel>| {
        let mut c = c.clone();
        async move {
            let g = c
                .get_group_health(GetGroupHealthRequest { group: "acc".into() })
                .await
                .ok()?
                .into_inner()
                .health?;
            g.backends.into_iter().find(|b| b.name == "ts")
        }
    };
    common::eventually("routable on the accepted catalog", || ts(&client), |b| b.routable).await;
    server.set_tools(&v2).await;
    common::eventually("blocked", || ts(&client), |b| !b.routable && reason(b) == ReasonCode::CatalogChanged).await;
    let accepted = client
        .accept_catalog(AcceptCatalogRequest {
            group: "acc".into(),
            backend: "ts".into(),
            fingerprint: fingerprint(&v2),
        })
        .await
        .expect("accept")
        .into_inner();
    assert!(accepted.changed);
    common::eventually("back in routing", || ts(&client), |b| b.routable).await;

    d.kill9();
    let d = Daemon::spawn(&["--data-dir", &dir]);
    let client = d.client().await;
    // A catalog read after the restart (the first probe reads it), still routable.
    let b = common::eventually(
        "probed and read after the restart",
        || ts(&client),
        |b| b.last_probe_time.is_some() && !b.catalog_fingerprint.is_empty(),
    )
    .await;
    assert_eq!(b.catalog_fingerprint, fingerprint(&v2));
    assert!(b.routable, "the stored acceptance holds after kill -9: {b:?}");
    assert_eq!(reason(&b), ReasonCode::Ok);
    d.stop().await;
}

/// The TypeScript SDK 2.x changing its tools at runtime, in its stateless
/// (`createMcpHandler`, both eras) and session wirings: a changed
/// description is caught and named, a removed required tool takes the
/// backend out naming it, and its return brings it back.
#[tokio::test]
async fn the_typescript_sdk_2_changing_its_tools_at_runtime_is_caught_and_judged() {
    for mode in ["dual", "sessions"] {
        let server = TsServer::start_sdk2(mode);
        let mut d = TestDaemon::empty().await;
        apply(&mut d, &group_yaml("ts2", &[("ts2", &server.url, &["echo", "add"])])).await;
        let first = wait_backend(&d, "ts2", "ts2", "routable with a fingerprint", |b| {
            b.routable && !b.catalog_fingerprint.is_empty()
        })
        .await;
        assert_eq!(first.tool_count, Some(2), "{mode}");

        // A description changed (RegisteredTool.update): a new fingerprint, the tool named.
        server.set_tools(&json!([echo("Echo the given text back, and keep a copy."), add()])).await;
        let second = wait_backend(&d, "ts2", "ts2", "the changed catalog", |b| {
            !b.catalog_fingerprint.is_empty() && b.catalog_fingerprint != first.catalog_fingerprint
        })
        .await;
        let c = history(&mut d, "ts2", "ts2").await.last().cloned().expect("a change");
        assert_eq!(c.to_fingerprint, second.catalog_fingerprint, "{mode}");
        assert_eq!(
            (c.added.clone(), c.removed.clone(), c.changed.clone()),
            (vec![], vec![], names(&["echo"])),
            "{mode}"
        );
        assert!(second.routable, "ALERT only: routing stays ({mode})");

        // A required tool removed (RegisteredTool.remove): out of routing, naming it.
        server.set_tools(&json!([echo("Echo the given text back, and keep a copy.")])).await;
        let b = wait_backend(&d, "ts2", "ts2", "out of routing", |b| !b.routable).await;
        assert_eq!(reason(&b), ReasonCode::RequiredToolMissing, "{mode}: {b:#?}");
        assert!(b.reason.as_ref().expect("reason").message.ends_with(": add"), "{mode}: {b:#?}");

        // Back (registerTool): routable again.
        server.set_tools(&json!([echo("Echo the given text back, and keep a copy."), add()])).await;
        let b = wait_backend(&d, "ts2", "ts2", "back in routing", |b| b.routable).await;
        assert_eq!(reason(&b), ReasonCode::Ok, "{mode}");

        // BLOCK: a catalog outside `accepted` leaves routing; a pre-approved one does not.
        let fingerprint = |v: &Value| Catalog::from_tools(v.as_array().expect("tools")).expect("hashable").fingerprint;
        let now = json!([echo("Echo the given text back, and keep a copy."), add()]);
        let next = json!([echo("Echo the given text back (v3)."), add()]);
        let unknown = json!([echo("Echo the given text back (v4)."), add()]);
        assert_eq!(b.catalog_fingerprint, fingerprint(&now), "{mode}: our hash is the server's catalog");
        let blocked = |accepted: &[&Value]| {
            let list: Vec<String> = accepted.iter().map(|v| format!("\"{}\"", fingerprint(v))).collect();
            format!(
                "name: ts2\npolicy: {POLICY}\nbackends:\n  - {{name: ts2, url: \"{}\", depth: PROBE_DEPTH_TOOLS, catalog: {{onChange: CATALOG_ON_CHANGE_BLOCK, accepted: [{}]}}}}\n",
                server.url,
                list.join(", ")
            )
        };
        apply(&mut d, &blocked(&[&now, &next])).await;
        server.set_tools(&next).await;
        wait_backend(&d, "ts2", "ts2", "the pre-approved catalog read", |b| {
            b.catalog_fingerprint == fingerprint(&next)
        })
        .await;
        let b = wait_backend(&d, "ts2", "ts2", "routable on it", |b| b.routable).await;
        assert_eq!(reason(&b), ReasonCode::Ok, "{mode}: a pre-approved catalog changes nothing");
        server.set_tools(&unknown).await;
        let b = wait_backend(&d, "ts2", "ts2", "blocked", |b| !b.routable).await;
        assert_eq!(reason(&b), ReasonCode::CatalogChanged, "{mode}: {b:#?}");
        d.stop().await;
    }
}
