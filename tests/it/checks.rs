//! Synthetic tool checks against the TypeScript SDK 1.x fixture
//! (tests/interop/node/sdk_server.mjs, whose `upstream_status` tool reads a
//! file the test removes and restores), probed by an in-process daemon: a
//! passing check, a failing upstream taking the backend out with
//! CHECK_FAILED while `initialize` still works, the read-only rule, and
//! validation. Fails, never skips, when node or the SDK is missing.

use crate::catalog::{TsServer, echo};
use crate::common;

use common::{TestDaemon, backend, reason, status};
use mcp_health::proto::v1::{BackendHealth, BackendStatus, ReasonCode};
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

/// The fixture's read-only tool whose result is the upstream file's text.
fn upstream_status() -> Value {
    json!({"name": "upstream_status", "description": "Reads the upstream.", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}})
}

/// A server whose `upstream_status` reads `file`.
fn server_reading(file: &std::path::Path) -> TsServer {
    TsServer::start_with("json", &["--upstream-file".to_owned(), file.display().to_string()])
}

/// Probed every second, a check every second; two failed probes take a
/// backend out, one success brings it back (hysteresis by the thresholds).
const POLICY: &str = "{interval: 1s, timeout: 0.9s, catalogInterval: 1s, jitterPercent: 0, unhealthyThreshold: 2, healthyThreshold: 1, edgeInterval: 1s}";

async fn wait_backend(d: &TestDaemon, group: &str, b: &str, what: &str, pred: impl Fn(&BackendHealth) -> bool) -> BackendHealth {
    let h = d.wait_group(group, what, |h| h.backends.iter().any(|x| x.name == b && pred(x))).await;
    backend(&h, b).clone()
}

fn message(b: &BackendHealth) -> String {
    b.reason.as_ref().map(|r| r.message.clone()).unwrap_or_default()
}

#[tokio::test]
async fn a_failing_upstream_takes_the_backend_out_with_check_failed_while_initialize_works_and_it_returns_when_fixed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("upstream");
    std::fs::write(&file, "ok\n").expect("write upstream");
    let server = server_reading(&file);
    server.set_tools(&json!([echo("Echo the given text back."), upstream_status()])).await;
    let mut d = TestDaemon::empty().await;
    let yaml = format!(
        "name: chk\npolicy: {POLICY}\nbackends:\n  - {{name: ts, url: \"{}\", depth: PROBE_DEPTH_TOOLS, checks: [{{tool: upstream_status, expect: {{textContains: ok, jsonPath: \"$[?@.status == 'ok']\"}}, interval: 1s, timeout: 0.5s}}]}}\n",
        server.url
    );
    d.apply(common::group_yaml(&yaml)).await;
    let b = wait_backend(&d, "chk", "ts", "routable with its check passing", |b| b.routable).await;
    assert_eq!(reason(&b), ReasonCode::Ok, "{b:#?}");
    wait_until_called(&server, "upstream_status").await;

    // The upstream fails: initialize still works, the check does not.
    std::fs::remove_file(&file).expect("remove upstream");
    let b = wait_backend(&d, "chk", "ts", "out of routing", |b| !b.routable).await;
    assert_eq!((status(&b), reason(&b)), (BackendStatus::Unhealthy, ReasonCode::CheckFailed), "{b:#?}");
    let m = message(&b);
    assert!(
        m.starts_with("check upstream_status failed (isError): isError is true, expected false; result: \"upstream unavailable (ENOENT)"),
        "{m}"
    );
    // The credential the server leaked in its result is redacted.
    assert!(!m.contains("sk_live") && m.contains("[redacted]"), "{m}");
    assert!(
        !b.protocol_version.is_empty() && b.server_name == "interop-ts-json",
        "the handshake still answers: {b:#?}"
    );

    // Fixed: back in routing.
    std::fs::write(&file, "ok\n").expect("restore upstream");
    let b = wait_backend(&d, "chk", "ts", "back in routing", |b| b.routable).await;
    assert_eq!((status(&b), reason(&b)), (BackendStatus::Healthy, ReasonCode::Ok), "{b:#?}");

    // An unmet expectation is a failure of its own class.
    std::fs::write(&file, "degraded\n").expect("write upstream");
    let b = wait_backend(&d, "chk", "ts", "out on an unmet expectation", |b| !b.routable).await;
    assert_eq!(reason(&b), ReasonCode::CheckFailed, "{b:#?}");
    assert!(message(&b).starts_with("check upstream_status failed (unmet expectation)"), "{}", message(&b));
    d.stop().await;
}

async fn wait_until_called(server: &TsServer, tool: &str) {
    common::eventually(
        &format!("{tool} called"),
        || async { Some(server.calls().await) },
        |calls: &Value| calls.get(tool).and_then(Value::as_u64).unwrap_or(0) >= 1,
    )
    .await;
}

#[tokio::test]
async fn a_check_on_a_tool_without_read_only_hint_is_refused_unless_side_effects_are_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("upstream");
    std::fs::write(&file, "ok\n").expect("write upstream");
    // `echo` has no readOnlyHint.
    let guarded = server_reading(&file);
    let allowed = server_reading(&file);
    for s in [&guarded, &allowed] {
        s.set_tools(&json!([echo("Echo the given text back."), upstream_status()])).await;
    }
    let mut d = TestDaemon::empty().await;
    let yaml = format!(
        "name: ro\npolicy: {POLICY}\nbackends:\n  - {{name: guarded, url: \"{}\", depth: PROBE_DEPTH_TOOLS, checks: [{{tool: echo, arguments: {{text: hi}}}}]}}\n  - {{name: allowed, url: \"{}\", depth: PROBE_DEPTH_TOOLS, checks: [{{name: echo-hi, tool: echo, arguments: {{text: hi}}, allowSideEffects: true, expect: {{textContains: hi}}}}]}}\n",
        guarded.url, allowed.url
    );
    d.apply(common::group_yaml(&yaml)).await;
    let b = wait_backend(&d, "ro", "guarded", "refused", |b| reason(b) == ReasonCode::CheckFailed).await;
    let m = message(&b);
    assert!(
        m.starts_with("check echo failed (not read-only): tool echo is not marked annotations.readOnlyHint: true"),
        "{m}"
    );
    let b = wait_backend(&d, "ro", "allowed", "routable with its check passing", |b| b.routable).await;
    assert_eq!(reason(&b), ReasonCode::Ok, "{b:#?}");
    wait_until_called(&allowed, "echo").await;
    // The refused check never called the tool.
    wait_backend(&d, "ro", "guarded", "out of routing", |b| !b.routable).await;
    assert_eq!(guarded.calls().await.get("echo"), None, "a tool without readOnlyHint was called");
    d.stop().await;
}

#[tokio::test]
async fn bad_checks_are_refused_naming_the_field() {
    let mut d = TestDaemon::empty().await;
    let mut spec = common::group_yaml(
        r#"
name: bad
policy: {timeout: 1s}
backends:
  - {name: a, url: "http://127.0.0.1:9/mcp", checks: [{tool: status}]}
  - {name: b, url: "http://127.0.0.1:9/mcp", depth: PROBE_DEPTH_TOOLS, checks: [{tool: ""}, {tool: s, expect: {jsonPath: "$[?"}}]}
  - {name: c, url: "http://127.0.0.1:9/mcp", depth: PROBE_DEPTH_TOOLS, checks: [{tool: s, timeout: 2s}, {tool: s, interval: 0.5s}]}
  - {name: d, url: "http://127.0.0.1:9/mcp", depth: PROBE_DEPTH_TOOLS, checks: [{tool: s, name: Not_A_Label}]}
  - {name: e, url: "http://127.0.0.1:9/sse", transport: TRANSPORT_SSE, depth: PROBE_DEPTH_TOOLS, checks: [{tool: s}]}
"#,
    );
    let status = d.apply_err(spec.clone()).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let violations = status.get_details_bad_request().expect("BadRequest details").field_violations;
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.backends[0].checks",
            "spec.backends[1].checks[0].tool",
            "spec.backends[1].checks[1].expect.jsonPath",
            "spec.backends[2].checks[0].timeout",
            "spec.backends[2].checks[1].name",
            "spec.backends[2].checks[1].interval",
            "spec.backends[3].checks[0].name",
            "spec.backends[4].checks",
        ],
        "{violations:#?}"
    );
    // Fixed, the same spec applies.
    spec.backends[0].depth = spec.backends[1].depth;
    spec.backends[1].checks[0].tool = "t".into();
    spec.backends[1].checks[1].expect.as_mut().expect("expect").json_path = "$.structuredContent.ok".into();
    spec.backends[2].checks[0].timeout = None;
    spec.backends[2].checks[1].interval = None;
    spec.backends[2].checks[1].name = "second".into();
    spec.backends[3].checks[0].name = "a-label".into();
    spec.backends[4].transport = spec.backends[3].transport;
    spec.backends[4].url = "http://127.0.0.1:9/mcp".into();
    d.apply(spec).await;
    d.stop().await;
}
