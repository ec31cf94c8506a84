//! Revision detection, memory and pinning on Streamable HTTP; the 2026
//! stateless path; depth TOOLS on every transport; legacy HTTP+SSE.

use crate::probe_support;

use std::time::Duration;

use mcp_fixture::{Behavior, FixtureOptions, FixtureServer, Flavor, ReplyFormat};
use mcp_health::core::outcome::OutcomeClass;
use mcp_health::probe::{HttpProber, ProbeMemory};
use mcp_health::proto::v1::ReasonCode;
use probe_support::*;
use serde_json::json;

async fn fixture(flavor: Flavor) -> FixtureServer {
    FixtureServer::start_with(FixtureOptions { flavor, ..Default::default() })
        .await
        .expect("fixture")
}

async fn probe_mem(t: &mcp_health::probe::ProbeTarget, mem: &mut ProbeMemory) -> mcp_health::probe::ProbeReport {
    probe_with(&HttpProber::default(), t, mem, Duration::from_secs(5)).await
}

#[tokio::test]
async fn handshake_server_is_detected_once_and_remembered() {
    let f = fixture(Flavor::default()).await;
    let t = target(plain(&f.url()));
    let mut mem = ProbeMemory::default();
    let r = probe_mem(&t, &mut mem).await;
    assert_success(&r);
    assert_eq!(r.outcome.facts.protocol_version, "2025-11-25");
    assert_eq!(r.outcome.facts.server_name, "mcp-fixture");
    assert_eq!(mem.detected_revision.as_deref(), Some("2025-11-25"));
    let s = f.stats();
    assert_eq!((s.discover, s.initialize, s.delete_requests, s.get_requests), (1, 1, 1, 0), "{s:?}");

    // The remembered revision is used: no second server/discover.
    assert_success(&probe_mem(&t, &mut mem).await);
    let s = f.stats();
    assert_eq!((s.discover, s.initialize, s.delete_requests, s.get_requests), (1, 2, 2, 0), "{s:?}");
}

#[tokio::test]
async fn stateless_server_is_detected_and_probed_with_server_discover() {
    let f = FixtureServer::start_with(FixtureOptions {
        flavor: Flavor::Discover,
        server_name: "modern".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let t = target(plain(&f.url()));
    let mut mem = ProbeMemory::default();
    let r = probe_mem(&t, &mut mem).await;
    assert_success(&r);
    assert_eq!(r.outcome.facts.protocol_version, "2026-07-28");
    assert_eq!(r.outcome.facts.server_name, "modern");
    assert_eq!(mem.detected_revision.as_deref(), Some("2026-07-28"));
    assert_success(&probe_mem(&t, &mut mem).await);
    let s = f.stats();
    assert_eq!((s.discover, s.initialize, s.delete_requests, s.get_requests), (2, 0, 0, 0), "{s:?}");
    let h = f.last_post_headers().unwrap();
    assert_eq!(h.get("mcp-protocol-version").unwrap(), "2026-07-28");
    assert_eq!(h.get("mcp-method").unwrap(), "server/discover");
}

#[tokio::test]
async fn dual_era_server_is_detected_as_2026() {
    let f = fixture(Flavor::Both).await;
    let mut mem = ProbeMemory::default();
    let r = probe_mem(&target(plain(&f.url())), &mut mem).await;
    assert_success(&r);
    assert_eq!(r.outcome.facts.protocol_version, "2026-07-28");
    assert_eq!(f.stats().initialize, 0);
}

#[tokio::test]
async fn a_refuted_memory_is_detected_again() {
    // Remembered 2026, but the server now speaks only the handshake.
    let f = fixture(Flavor::default()).await;
    let t = target(plain(&f.url()));
    let mut mem = ProbeMemory {
        detected_revision: Some("2026-07-28".into()),
        ..ProbeMemory::default()
    };
    let r = probe_mem(&t, &mut mem).await;
    assert_success(&r);
    assert_eq!(mem.detected_revision.as_deref(), Some("2025-11-25"));

    // Remembered a handshake revision, but the server is stateless-only now:
    // initialize gets -32601 (HTTP 404), which refutes it.
    let f = fixture(Flavor::Discover).await;
    let t = target(plain(&f.url()));
    let mut mem = ProbeMemory {
        detected_revision: Some("2025-06-18".into()),
        ..ProbeMemory::default()
    };
    let r = probe_mem(&t, &mut mem).await;
    assert_success(&r);
    assert_eq!(r.outcome.facts.protocol_version, "2026-07-28");
    assert_eq!(mem.detected_revision.as_deref(), Some("2026-07-28"));
    let s = f.stats();
    assert_eq!((s.initialize, s.discover), (1, 1), "{s:?}");
}

#[tokio::test]
async fn a_failure_that_is_no_era_verdict_keeps_the_memory() {
    let f = fixture(Flavor::Discover).await;
    let t = target(plain(&f.url()));
    let mut mem = ProbeMemory::default();
    assert_success(&probe_mem(&t, &mut mem).await);
    f.set_behavior(Behavior::Status(503));
    assert_failure(&probe_mem(&t, &mut mem).await, ReasonCode::HttpStatus);
    assert_eq!(mem.detected_revision.as_deref(), Some("2026-07-28"));
    assert_eq!(f.stats().initialize, 0, "a 503 must not trigger a fallback to initialize");
}

#[tokio::test]
async fn pinned_revisions_skip_detection() {
    let f = fixture(Flavor::Both).await;
    let t = target(json!({"name": "b", "url": f.url(), "protocolVersion": "2025-03-26"}));
    let mut mem = ProbeMemory::default();
    let r = probe_mem(&t, &mut mem).await;
    assert_success(&r);
    assert_eq!(r.outcome.facts.protocol_version, "2025-03-26");
    assert_eq!(f.stats().discover, 0);

    let t = target(json!({"name": "b", "url": f.url(), "protocolVersion": "2026-07-28"}));
    let r = probe_mem(&t, &mut ProbeMemory::default()).await;
    assert_success(&r);
    assert_eq!(r.outcome.facts.protocol_version, "2026-07-28");
    assert_eq!(f.stats().initialize, 1);

    // Pinned to 2026 against a handshake-only server: a failure, no fallback.
    let old = fixture(Flavor::default()).await;
    let t = target(json!({"name": "b", "url": old.url(), "protocolVersion": "2026-07-28"}));
    assert_failure(&probe_mem(&t, &mut ProbeMemory::default()).await, ReasonCode::JsonRpcError);
    assert_eq!(old.stats().initialize, 0);
}

#[tokio::test]
async fn sse_replies_are_read() {
    let f = FixtureServer::start_with(FixtureOptions {
        reply: ReplyFormat::Sse,
        ..Default::default()
    })
    .await
    .unwrap();
    let r = probe_once(&target(plain(&f.url()))).await;
    assert_success(&r);
    assert_eq!(r.outcome.facts.protocol_version, "2025-11-25");
}

#[tokio::test]
async fn depth_tools_on_the_handshake_path() {
    let f = FixtureServer::start_with(FixtureOptions {
        tools: 5,
        ..Default::default()
    })
    .await
    .unwrap();
    let t = target(json!({"name": "b", "url": f.url(), "depth": "PROBE_DEPTH_TOOLS", "protocolVersion": "2025-06-18"}));
    let r = probe_once(&t).await;
    assert_success(&r);
    assert_eq!(r.outcome.facts.tool_count, Some(5));
    let s = f.stats();
    assert_eq!(
        (s.initialize, s.notifications, s.tools_list, s.delete_requests, s.get_requests),
        (1, 1, 1, 1, 0),
        "{s:?}"
    );
    // tools/list went on the session, with the negotiated revision's header.
    let h = f.last_post_headers().unwrap();
    assert_eq!(h.get("mcp-protocol-version").unwrap(), "2025-06-18");
    assert!(h.contains_key("mcp-session-id"), "{h:?}");

    // A handshake-only depth leaves tool_count unset.
    let r = probe_once(&target(plain(&f.url()))).await;
    assert_eq!(r.outcome.facts.tool_count, None);
}

#[tokio::test]
async fn depth_tools_on_the_2026_path() {
    let f = FixtureServer::start_with(FixtureOptions {
        flavor: Flavor::Discover,
        tools: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let t = target(json!({"name": "b", "url": f.url(), "depth": "PROBE_DEPTH_TOOLS"}));
    let r = probe_once(&t).await;
    assert_success(&r);
    assert_eq!(r.outcome.facts.tool_count, Some(3));
    let s = f.stats();
    assert_eq!((s.discover, s.tools_list, s.notifications, s.initialize), (1, 1, 0, 0), "{s:?}");
    assert_eq!(f.last_post_headers().unwrap().get("mcp-method").unwrap(), "tools/list");
}

/// A tools/list JSON-RPC error: the server serves MCP, its tools do not.
/// Reported as DEGRADED-worthy (class ToolsFailing, not Slow) with reason JSON_RPC_ERROR.
#[tokio::test]
async fn tools_list_error_degrades_and_tools_list_hang_fails() {
    for flavor in [Flavor::default(), Flavor::Discover, Flavor::LegacySse] {
        let f = fixture(flavor.clone()).await;
        f.set_behavior(Behavior::ToolsListError);
        let t = target(
            json!({"name": "b", "url": f.url(), "depth": "PROBE_DEPTH_TOOLS", "transport": if flavor == Flavor::LegacySse { "TRANSPORT_SSE" } else { "TRANSPORT_STREAMABLE_HTTP" }}),
        );
        let r = probe_once(&t).await;
        assert_eq!(
            (r.outcome.class, r.outcome.reason.code),
            (OutcomeClass::ToolsFailing, ReasonCode::JsonRpcError),
            "{flavor:?}: {:#?}",
            r.outcome
        );
        assert!(!r.outcome.facts.protocol_version.is_empty());

        f.set_behavior(Behavior::ToolsListHang);
        let r = probe_with(&HttpProber::default(), &t, &mut ProbeMemory::default(), Duration::from_millis(800)).await;
        assert_failure(&r, ReasonCode::Timeout);
    }
}

#[tokio::test]
async fn a_session_is_ended_even_when_tools_list_hangs() {
    let f = fixture(Flavor::default()).await;
    f.set_behavior(Behavior::ToolsListHang);
    let t = target(json!({"name": "b", "url": f.url(), "depth": "PROBE_DEPTH_TOOLS", "protocolVersion": "2025-11-25"}));
    let r = probe_with(&HttpProber::default(), &t, &mut ProbeMemory::default(), Duration::from_millis(800)).await;
    assert_failure(&r, ReasonCode::Timeout);
    assert_eq!(f.stats().delete_requests, 1);
}

fn sse_transport(url: &str) -> serde_json::Value {
    json!({"name": "b", "url": url, "transport": "TRANSPORT_SSE"})
}

#[tokio::test]
async fn legacy_sse_handshake_and_tools() {
    let f = FixtureServer::start_with(FixtureOptions {
        flavor: Flavor::LegacySse,
        tools: 4,
        ..Default::default()
    })
    .await
    .unwrap();
    let r = probe_once(&target(sse_transport(&f.url()))).await;
    assert_success(&r);
    assert_eq!(r.outcome.facts.protocol_version, "2024-11-05");
    assert_eq!(r.outcome.facts.server_name, "mcp-fixture");
    let t = target(json!({"name": "b", "url": f.url(), "transport": "TRANSPORT_SSE", "depth": "PROBE_DEPTH_TOOLS"}));
    let r = probe_once(&t).await;
    assert_success(&r);
    assert_eq!(r.outcome.facts.tool_count, Some(4));
    // The probe closed its streams: the fixture drops a session when its stream goes.
    eventually_no_open_connections(&f).await;
}

async fn eventually_no_open_connections(f: &FixtureServer) {
    for _ in 0..500 {
        if f.stats().open_connections == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("connections left open: {:?}", f.stats());
}

#[tokio::test]
async fn legacy_sse_without_the_reply_is_not_healthy() {
    let f = fixture(Flavor::LegacySse).await;
    let t = target(sse_transport(&f.url()));
    // The endpoint event, then the stream closes: no reply. Whether the POST
    // lands before the fixture drops the session (then the stream ends without
    // the reply: PROTOCOL) or after (the POST gets 404) is a race.
    f.set_behavior(Behavior::SseWithoutResponse);
    let r = probe_once(&t).await;
    assert_eq!(r.outcome.class, OutcomeClass::Failure, "{:#?}", r.outcome);
    let reason = (r.outcome.reason.code, r.outcome.reason.http_status);
    assert!(
        matches!(reason, (ReasonCode::Protocol, None) | (ReasonCode::HttpStatus, Some(404))),
        "{reason:?}"
    );
    // The endpoint event, POSTs accepted, the reply never comes.
    f.set_behavior(Behavior::EndpointOnly);
    let r = probe_with(&HttpProber::default(), &t, &mut ProbeMemory::default(), Duration::from_millis(800)).await;
    assert_failure(&r, ReasonCode::Timeout);
    f.set_behavior(Behavior::WrongContentType);
    assert_failure(&probe_once(&t).await, ReasonCode::Protocol);
    f.set_behavior(Behavior::JsonRpcError);
    assert_failure(&probe_once(&t).await, ReasonCode::JsonRpcError);
    f.set_behavior(Behavior::WrongId);
    assert_failure(&probe_once(&t).await, ReasonCode::Protocol);
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n";

#[tokio::test]
async fn a_get_that_answers_200_and_nothing_else_is_not_healthy() {
    // 200 and the stream ends: PROTOCOL (missing endpoint event).
    let s = RawServer::start(|_| RawReply::close(SSE_HEAD)).await;
    assert_failure(&probe_once(&target(sse_transport(&s.url("/sse")))).await, ReasonCode::Protocol);
    // 200 and silence: bounded by the deadline.
    let s = RawServer::start(|_| RawReply::hold(SSE_HEAD)).await;
    let r = probe_with(
        &HttpProber::default(),
        &target(sse_transport(&s.url("/sse"))),
        &mut ProbeMemory::default(),
        Duration::from_millis(500),
    )
    .await;
    assert_failure(&r, ReasonCode::Timeout);
    // Another event first.
    let s = RawServer::start(|_| RawReply::hold(format!("{SSE_HEAD}event: message\ndata: {{}}\n\n"))).await;
    assert_failure(&probe_once(&target(sse_transport(&s.url("/sse")))).await, ReasonCode::Protocol);
}

#[tokio::test]
async fn a_legacy_endpoint_on_another_origin_is_refused() {
    let other = RawServer::start(|_| RawReply::close("HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")).await;
    let endpoint = other.url("/messages?session_id=1");
    let s = RawServer::start(move |_| RawReply::hold(format!("{SSE_HEAD}event: endpoint\ndata: {endpoint}\n\n"))).await;
    let r = probe_once(&target(sse_transport(&s.url("/sse")))).await;
    assert_failure(&r, ReasonCode::Protocol);
    assert!(r.outcome.reason.message.contains("another origin"), "{}", r.outcome.reason.message);
    assert!(other.seen().is_empty(), "the probe posted to another origin: {:?}", other.seen());
}
