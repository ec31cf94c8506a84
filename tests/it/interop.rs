//! Interop with real MCP servers nobody here wrote: the official MCP Python
//! SDK's servers (tests/interop/mcp_servers.py, mcp 2.x in .venv), probed by
//! a real daemon. Fails, never skips, when the venv is missing: run
//! `scripts/interop.sh`, which creates it first.

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use common::{TestDaemon, backend, reason, status};
use mcp_health::proto::v1::{BackendHealth, BackendStatus, GroupHealth, ReasonCode, ResourceMetadataState};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python servers; killed (and reaped) when dropped, whatever the test did.
struct PythonServers {
    child: Child,
    urls: HashMap<String, String>,
    _stdin: ChildStdin,
    _stdout: BufReader<ChildStdout>,
}

impl Drop for PythonServers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PythonServers {
    fn start(args: &[&str]) -> PythonServers {
        let python = repo().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup-python.sh (scripts/interop.sh does)",
            python.display()
        );
        let mut child = Command::new(&python)
            .arg(repo().join("tests/interop/mcp_servers.py"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        // Read the one JSON line on a thread, so a server that never starts fails the test.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line);
            let _ = tx.send((read.map(|_| line), reader));
        });
        let (line, stdout) = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((Ok(line), reader)) => (line, reader),
            Ok((Err(e), _)) => {
                let _ = child.kill();
                panic!("reading the servers' URLs: {e}");
            }
            Err(_) => {
                let _ = child.kill();
                panic!("the Python servers did not start within 60 s");
            }
        };
        let urls: HashMap<String, String> = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad URL line {line:?}: {e}"));
        PythonServers {
            child,
            urls,
            _stdin: stdin,
            _stdout: stdout,
        }
    }

    fn url(&self, key: &str) -> &str {
        self.urls.get(key).unwrap_or_else(|| panic!("no {key} in {:?}", self.urls))
    }
}

fn summary(b: &BackendHealth) -> String {
    format!(
        "{:<22} {:<16} routable={:<5} reason={:<30} protocol={:<10} server={} tools={:?} metadata={:?}",
        b.name,
        status(b).as_str_name().trim_start_matches("BACKEND_STATUS_"),
        b.routable,
        reason(b).as_str_name(),
        b.protocol_version,
        b.server_name,
        b.tool_count,
        ResourceMetadataState::try_from(b.resource_metadata).unwrap_or_default(),
    )
}

fn print_group(title: &str, h: &GroupHealth) {
    println!("== {title}");
    for b in &h.backends {
        println!("   {}", summary(b));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_servers_get_the_expected_verdicts() {
    let py = PythonServers::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let token = |name: &str, value: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, value).unwrap();
        p
    };
    let static_header = |file: PathBuf| json!({"mode": "AUTH_MODE_STATIC_HEADER", "staticHeader": {"header": "Authorization", "valuePrefix": "Bearer ", "value": {"file": file}}});
    let tools = "PROBE_DEPTH_TOOLS";
    let backends: Vec<Value> = vec![
        json!({"name": "streamable-sse", "url": py.url("streamable_sse")}),
        json!({"name": "streamable-sse-2025", "url": py.url("streamable_sse"), "protocolVersion": "2025-11-25", "depth": tools}),
        json!({"name": "json-response", "url": py.url("json_response")}),
        json!({"name": "json-response-2025", "url": py.url("json_response"), "protocolVersion": "2025-06-18", "depth": tools}),
        json!({"name": "stateless", "url": py.url("stateless")}),
        json!({"name": "stateless-2025", "url": py.url("stateless"), "protocolVersion": "2025-03-26", "depth": tools}),
        json!({"name": "modern-2026", "url": py.url("modern_2026"), "depth": tools}),
        json!({"name": "modern-2026-pinned", "url": py.url("modern_2026"), "protocolVersion": "2026-07-28"}),
        json!({"name": "legacy-sse", "url": py.url("legacy_sse"), "transport": "TRANSPORT_SSE", "depth": tools}),
        json!({"name": "auth-per-user", "url": py.url("auth"), "auth": {"mode": "AUTH_MODE_PER_USER"}}),
        json!({"name": "auth-none", "url": py.url("auth")}),
        json!({"name": "auth-static-valid", "url": py.url("auth"), "auth": static_header(token("valid", "interop-valid-token"))}),
        json!({"name": "auth-static-invalid", "url": py.url("auth"), "auth": static_header(token("invalid", "not-the-token"))}),
    ];
    let mut d = TestDaemon::empty().await;
    let spec = json!({"name": "interop", "policy": {"interval": "2s", "timeout": "1.5s"}, "backends": backends});
    d.apply(serde_json::from_value(spec).unwrap()).await;
    let h = d
        .wait_group("interop", "a verdict on every backend", |h| {
            h.backends.iter().all(|b| status(b) != BackendStatus::Unknown)
        })
        .await;
    print_group("official MCP Python SDK servers", &h);

    for name in ["streamable-sse", "json-response", "stateless", "modern-2026", "modern-2026-pinned"] {
        let b = backend(&h, name);
        assert_eq!(
            (status(b), b.protocol_version.as_str()),
            (BackendStatus::Healthy, "2026-07-28"),
            "{name}: {b:#?}"
        );
        assert_eq!(
            b.server_name,
            format!(
                "interop-{}",
                if name.starts_with("modern") {
                    "modern_2026".to_owned()
                } else {
                    name.replace('-', "_")
                }
            )
        );
    }
    for (name, version) in [
        ("streamable-sse-2025", "2025-11-25"),
        ("json-response-2025", "2025-06-18"),
        ("stateless-2025", "2025-03-26"),
    ] {
        let b = backend(&h, name);
        assert_eq!(
            (status(b), b.protocol_version.as_str(), b.tool_count),
            (BackendStatus::Healthy, version, Some(2)),
            "{name}: {b:#?}"
        );
    }
    assert_eq!(backend(&h, "modern-2026").tool_count, Some(2));
    let legacy = backend(&h, "legacy-sse");
    assert_eq!(
        (status(legacy), legacy.server_name.as_str(), legacy.tool_count),
        (BackendStatus::Healthy, "interop-legacy_sse", Some(2)),
        "{legacy:#?}"
    );
    assert_eq!(legacy.protocol_version, "2024-11-05");

    let per_user = backend(&h, "auth-per-user");
    assert_eq!(
        (status(per_user), per_user.routable, reason(per_user)),
        (BackendStatus::Unauthenticated, true, ReasonCode::AuthRequired)
    );
    assert_eq!(per_user.resource_metadata, ResourceMetadataState::Valid as i32);
    let none = backend(&h, "auth-none");
    assert_eq!((status(none), none.routable), (BackendStatus::Unauthenticated, false));
    let valid = backend(&h, "auth-static-valid");
    assert_eq!((status(valid), valid.server_name.as_str()), (BackendStatus::Healthy, "interop-auth"));
    let invalid = backend(&h, "auth-static-invalid");
    assert_eq!(
        (status(invalid), invalid.routable, reason(invalid)),
        (BackendStatus::Unauthenticated, false, ReasonCode::CredentialsRejected)
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_goes_unhealthy_and_recovers_when_restarted() {
    let port = mcp_fixture::reserve_port().port().to_string();
    let args = ["--only", "killable", "--port", port.as_str()];
    let py = PythonServers::start(&args);
    let url = py.url("killable").to_owned();
    let mut d = TestDaemon::empty().await;
    let spec = json!({"name": "killable", "policy": {"interval": "0.5s", "timeout": "0.4s", "unhealthyThreshold": 2, "healthyThreshold": 1},
        "backends": [{"name": "killable", "url": url}]});
    d.apply(serde_json::from_value(spec).unwrap()).await;
    let h = d
        .wait_group("killable", "HEALTHY", |h| status(backend(h, "killable")) == BackendStatus::Healthy)
        .await;
    print_group("killable, running", &h);

    drop(py); // kills the process
    let h = d
        .wait_group("killable", "UNHEALTHY after the threshold", |h| {
            status(backend(h, "killable")) == BackendStatus::Unhealthy
        })
        .await;
    print_group("killable, killed", &h);
    let b = backend(&h, "killable");
    assert!(b.consecutive_failures >= 2, "{b:#?}");
    assert!(!b.routable);
    assert_eq!(reason(b), ReasonCode::ConnectionRefused);

    let _py = PythonServers::start(&args);
    let h = d
        .wait_group("killable", "recovered", |h| status(backend(h, "killable")) == BackendStatus::Healthy)
        .await;
    print_group("killable, restarted", &h);
    assert!(backend(&h, "killable").routable);
    d.stop().await;
}
