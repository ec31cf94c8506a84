//! Transition history (GetBackendHistory, `mcp-healthctl history`) and the
//! status page's HTTP surface (`--ui-listen`): a daemon on 127.0.0.1:0 with
//! fixture MCP backends, a real tonic client, and plain HTTP/1.1 over TCP.
//! The page in a real browser is tests/browser.

use crate::common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::*;
use mcp_fixture::{FixtureOptions, FixtureServer};
use mcp_health::daemon::DaemonOptions;
use mcp_health::proto::v1::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

const CTL: &str = env!("CARGO_BIN_EXE_mcp-healthctl");
const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";

fn fast_group(name: &str, backends: &[(&str, &str)]) -> GroupSpec {
    let mut yaml = format!("name: {name}\npolicy: {{interval: 0.3s, timeout: 0.2s, unhealthyThreshold: 1}}\nbackends:\n");
    for (b, url) in backends {
        yaml.push_str(&format!("  - name: {b}\n    url: \"{url}\"\n"));
    }
    group_yaml(&yaml)
}

async fn with_ui() -> TestDaemon {
    TestDaemon::start(DaemonOptions {
        ui_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..DaemonOptions::default()
    })
    .await
}

fn ui(d: &TestDaemon) -> SocketAddr {
    d.daemon.as_ref().and_then(|d| d.ui_addr()).expect("the status page listens")
}

fn history_req(group: &str, backend: &str) -> GetBackendHistoryRequest {
    GetBackendHistoryRequest {
        group: group.into(),
        backend: backend.into(),
    }
}

#[tokio::test]
async fn history_keeps_transitions_with_their_reason_and_latency() {
    let fixture = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    d.apply(fast_group("web", &[("a", &fixture.url())])).await;
    d.wait_group("web", "web READY", |h| phase(h) == GroupPhase::Ready).await;
    fixture.stop().await;
    d.wait_group("web", "a UNHEALTHY", |h| status(backend(h, "a")) == BackendStatus::Unhealthy)
        .await;

    let h = d.client.get_backend_history(history_req("web", "a")).await.unwrap().into_inner();
    assert_eq!((h.group.as_str(), h.backend.as_str()), ("web", "a"));
    assert_eq!(h.status, BackendStatus::Unhealthy as i32);
    let steps: Vec<_> = h
        .transitions
        .iter()
        .map(|t| {
            (
                BackendStatus::try_from(t.from_status).unwrap(),
                BackendStatus::try_from(t.to_status).unwrap(),
                ReasonCode::try_from(t.reason.as_ref().unwrap().code).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (BackendStatus::Unknown, BackendStatus::Healthy, ReasonCode::Ok),
            (BackendStatus::Healthy, BackendStatus::Unhealthy, ReasonCode::ConnectionRefused),
        ]
    );
    assert!(h.transitions.iter().all(|t| t.latency.is_some() && t.time.is_some()));
    let secs = |t: Option<pbjson_types::Timestamp>| t.map(|t| (t.seconds, t.nanos)).unwrap();
    assert!(secs(h.transitions[0].time) <= secs(h.transitions[1].time));
    assert!(secs(h.since) <= secs(h.transitions[0].time));
    assert_eq!(h.dropped_transitions, 0);
    let probes: u32 = h.latency.iter().map(|b| b.probes).sum();
    assert!(probes >= 2, "every probe lands in the latency ring: {h:#?}");
    let dur = |x: Option<pbjson_types::Duration>| x.map(|x| (x.seconds, x.nanos)).unwrap();
    assert!(h.latency.iter().all(|b| dur(b.max) >= dur(b.mean)));

    // The CLI prints the same history.
    let out = tokio::task::spawn_blocking({
        let server = format!("http://{}", d.addr);
        move || {
            Command::new(CTL)
                .args(["--server", &server, "history", "web", "a"])
                .env_remove("MCP_HEALTH_OUTPUT")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("backend web/a  status UNHEALTHY"), "{text}");
    assert!(text.contains("a daemon restart starts a fresh history"), "{text}");
    assert!(text.contains("TIME") && text.contains("UNKNOWN  HEALTHY    OK"), "{text}");
    assert!(text.contains("HEALTHY  UNHEALTHY  CONNECTION_REFUSED"), "{text}");
    d.stop().await;
}

#[tokio::test]
async fn history_errors_name_what_is_missing() {
    let fixture = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::empty().await;
    d.apply(fast_group("web", &[("a", &fixture.url())])).await;
    d.apply(group_yaml("name: empty\nbackends: []\n")).await;
    for (group, backend, code, says) in [
        ("nope", "a", Code::NotFound, "group \"nope\" not found"),
        ("web", "nope", Code::NotFound, "backend \"nope\" not found in group \"web\""),
        // A group without backends exists: it is the backend that is missing.
        ("empty", "a", Code::NotFound, "backend \"a\" not found in group \"empty\""),
        ("", "a", Code::InvalidArgument, "group"),
        ("web", "", Code::InvalidArgument, "backend"),
    ] {
        let err = d.client.get_backend_history(history_req(group, backend)).await.unwrap_err();
        assert_eq!(err.code(), code, "{group}/{backend}: {err:?}");
        assert!(err.message().contains(says), "{group}/{backend}: {}", err.message());
    }
    // A deleted group's history goes with it.
    d.wait_group("web", "a probed", |h| status(backend(h, "a")) == BackendStatus::Healthy).await;
    d.client.delete_group(DeleteGroupRequest { group: "web".into() }).await.unwrap();
    let err = d.client.get_backend_history(history_req("web", "a")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    d.stop().await;
}

/// One HTTP/1.1 request over a fresh connection; returns the status and the raw response.
async fn http(addr: SocketAddr, method: &str, path: &str, host: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

#[tokio::test]
async fn status_page_is_read_only_and_escapes_what_backends_say() {
    let hostile = FixtureServer::start_with(FixtureOptions {
        server_name: HOSTILE.into(),
        ..FixtureOptions::default()
    })
    .await
    .unwrap();
    let mut d = with_ui().await;
    let url = format!("{}?api_key=s3cret", hostile.url());
    d.apply(fast_group("web", &[("a", &url)])).await;
    d.wait_group("web", "web READY", |h| phase(h) == GroupPhase::Ready).await;
    let addr = ui(&d);
    let host = addr.to_string();

    let (code, page) = http(addr, "GET", "/", &host).await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("content-type: text/html; charset=utf-8"), "{page}");
    assert!(page.contains("content-security-policy: default-src 'none'; script-src 'self'"), "{page}");
    assert!(page.contains("data-backend=\"web/a\" data-status=\"HEALTHY\""), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert") && !page.contains("<img"), "{page}");
    assert!(!page.contains("s3cret") && !page.contains("/mcp"), "only the URL's origin is shown: {page}");
    assert!(page.contains("a restart starts a fresh history"));

    let (code, page) = http(addr, "GET", "/g/web/b/a", &host).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("UNKNOWN</span> → <span class=\"badge st-healthy\""),
        "the backend's own transitions: {page}"
    );
    assert_eq!(http(addr, "GET", "/?q=nothing-matches", &host).await.1.matches("class=\"backend ").count(), 0);
    assert_eq!(http(addr, "GET", "/g/nope", &host).await.0, 404);
    assert_eq!(http(addr, "GET", "/g/web/b/nope", &host).await.0, 404);
    assert_eq!(http(addr, "POST", "/", &host).await.0, 405, "read-only");
    assert_eq!(http(addr, "DELETE", "/g/web", &host).await.0, 405, "read-only");
    assert_eq!(
        http(addr, "GET", "/", &format!("rebind.example:{}", addr.port())).await.0,
        421,
        "loopback host names only"
    );
    let (code, js) = http(addr, "GET", "/assets/app.js", &host).await;
    assert_eq!(code, 200);
    assert!(js.contains("text/javascript") && !js.contains("innerHTML ="), "text nodes only");
    assert_eq!(http(addr, "GET", "/assets/style.css", &host).await.0, 200);
    d.stop().await;
}

/// Reads from an SSE response until `want` has appeared `times` times in total.
async fn read_until(s: &mut tokio::net::TcpStream, seen: &mut String, want: &str, times: usize) {
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while seen.matches(want).count() < times {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {want:?} x{times}; got:\n{}", &seen[seen.len().saturating_sub(2000)..]))
            .unwrap();
        assert!(n > 0, "the event stream ended:\n{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[tokio::test]
async fn events_follow_the_engine_and_a_stalled_reader_is_resynced() {
    let fixture = FixtureServer::start().await.unwrap();
    let mut d = TestDaemon::start(DaemonOptions {
        ui_listen: Some("127.0.0.1:0".parse().unwrap()),
        // A short broadcast buffer, so a stalled reader falls behind quickly.
        engine: mcp_health::engine::EngineConfig {
            watch_buffer: 8,
            ..Default::default()
        },
        ..DaemonOptions::default()
    })
    .await;
    d.apply(fast_group("web", &[("a", &fixture.url())])).await;
    d.wait_group("web", "web READY", |h| phase(h) == GroupPhase::Ready).await;
    let addr = ui(&d);

    // A live reader: a snapshot, then the change when the backend goes down.
    let mut live = tokio::net::TcpStream::connect(addr).await.unwrap();
    live.write_all(format!("GET /events?group=web HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut live, &mut seen, "event: snapshot", 1).await;
    assert!(seen.contains("content-type: text/event-stream"), "{seen}");
    fixture.stop().await;
    read_until(&mut live, &mut seen, "\"status\":\"UNHEALTHY\"", 1).await;
    assert!(seen.contains("event: changed"), "{seen}");
    assert!(
        seen.contains("\"from\":\"HEALTHY\",\"to\":\"UNHEALTHY\",\"reason\":\"CONNECTION_REFUSED\""),
        "the transition rides along: {seen}"
    );

    // A stalled reader: a tiny receive window, and it stops reading after the snapshot.
    let big: Vec<(String, String)> = (0..200).map(|i| (format!("b{i}"), format!("{}?n={i}", fixture.url()))).collect();
    let closed = format!("http://{}/mcp", mcp_fixture::reserve_port());
    // Each apply adds or removes one backend (a closed port: one cheap probe),
    // so every apply publishes a change of the whole 200-backend group.
    let spec = |big: &[(String, String)], extra: bool| {
        let mut refs: Vec<(&str, &str)> = big.iter().map(|(n, u)| (n.as_str(), u.as_str())).collect();
        if extra {
            refs.push(("extra", closed.as_str()));
        }
        let mut g = fast_group("big", &refs);
        // Probed once when added, then not again during the test.
        if let Some(p) = g.policy.as_mut() {
            p.interval = Some(pbjson_types::Duration { seconds: 3600, nanos: 0 });
        }
        g
    };
    d.apply(spec(&big, false)).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    stalled
        .write_all(format!("GET /events?group=big HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut stalled_seen = String::new();
    read_until(&mut stalled, &mut stalled_seen, "event: snapshot", 1).await;
    // Far more changes (of a 200-backend group each) than socket buffers and the broadcast buffer hold.
    let mut generation = 0;
    for i in 0..60 {
        generation = d.apply(spec(&big, i % 2 == 0)).await.generation;
    }
    // Nobody else waits for it: the API and a fresh page answer at once.
    assert_eq!(d.get("big").await.generation, generation);
    assert_eq!(http(addr, "GET", "/g/big", &addr.to_string()).await.0, 200);
    // Reading again: what was buffered, then a fresh snapshot.
    read_until(&mut stalled, &mut stalled_seen, "event: snapshot", 2).await;
    d.stop().await;
}

#[test]
fn history_memory_is_bounded_per_backend() {
    use mcp_health::history::record::{BackendRecord, MAX_TRANSITIONS};
    // Worst case: a full transition deque and a full latency ring.
    let mut r = BackendRecord::new(0);
    for i in 0..(MAX_TRANSITIONS as u64 * 4) {
        r.probe(i * 60_000, Duration::from_millis(i), ReasonCode::ConnectionRefused, None, "connection refused");
        r.transition(i * 60_000, if i % 2 == 0 { BackendStatus::Unhealthy } else { BackendStatus::Healthy });
    }
    let full = r.heap_bytes();
    for i in 0..(MAX_TRANSITIONS as u64 * 4) {
        r.probe(i * 60_000, Duration::from_millis(i), ReasonCode::ConnectionRefused, None, "connection refused");
        r.transition(i * 60_000, BackendStatus::Healthy);
    }
    assert_eq!(r.heap_bytes(), full, "more transitions take no more memory");
    assert!(full < 8 * 1024, "{full} bytes per backend");
}
