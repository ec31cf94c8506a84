//! The 2026-07-28 stateless flavour (`server/discover`), the dual flavour and legacy HTTP+SSE.

mod common;

use std::time::Duration;

use common::*;
use mcp_fixture::{Behavior, FixtureOptions, FixtureServer, Flavor};
use serde_json::{Value, json};

async fn discover_post(c: &reqwest::Client, url: &str, body: &Value, version: &str, method: &str) -> (u16, Value) {
    let r = c
        .post(url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", version)
        .header("mcp-method", method)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, serde_json::from_str(&r.text().await.unwrap()).unwrap())
}

#[tokio::test]
async fn discover_flavor() {
    let s = FixtureServer::start_with(FixtureOptions {
        flavor: Flavor::Discover,
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client();
    let (st, v) = discover_post(&c, &s.url(), &discover(1, "2026-07-28"), "2026-07-28", "server/discover").await;
    assert_eq!(st, 200);
    let r = &v["result"];
    assert_eq!(v["id"], 1);
    assert_eq!(r["supportedVersions"], json!(["2026-07-28"]));
    assert_eq!(r["resultType"], "complete");
    assert!(r["capabilities"]["tools"].is_object());
    assert_eq!(r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "mcp-fixture");
    assert_eq!((r["ttlMs"].as_u64(), r["cacheScope"].as_str()), (Some(0), Some("private")));
    assert_eq!(s.stats().discover, 1);
    assert_eq!(s.last_protocol_version().as_deref(), Some("2026-07-28"));

    // Ladder: headers must match the envelope, the version must be served.
    let (st, v) = discover_post(&c, &s.url(), &discover(2, "2026-07-28"), "2025-06-18", "server/discover").await;
    assert_eq!((st, v["error"]["code"].as_i64()), (400, Some(-32020)));
    let (st, v) = discover_post(&c, &s.url(), &discover(3, "2099-01-01"), "2099-01-01", "server/discover").await;
    assert_eq!((st, v["error"]["code"].as_i64()), (400, Some(-32022)));
    assert_eq!(v["error"]["data"]["supported"], json!(["2026-07-28"]));
    let (st, v) = post_json(&c, &s.url(), &request(4, "server/discover")).await;
    assert_eq!((st, v["error"]["code"].as_i64()), (400, Some(-32602)));

    // initialize is not spoken; GET and DELETE are 405; no session header anywhere.
    let r = post(&c, &s.url(), &initialize(5, "2025-06-18")).await;
    assert!(!r.headers().contains_key("mcp-session-id"));
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!((v["id"].as_i64(), v["error"]["code"].as_i64()), (Some(5), Some(-32601)));
    assert_eq!(c.get(s.url()).send().await.unwrap().status(), 405);
    assert_eq!(c.delete(s.url()).header("mcp-session-id", "x").send().await.unwrap().status(), 405);

    let mut tl = discover(6, "2026-07-28");
    tl["method"] = json!("tools/list");
    let (st, v) = discover_post(&c, &s.url(), &tl, "2026-07-28", "tools/list").await;
    assert_eq!((st, v["result"]["tools"].as_array().map(Vec::len)), (200, Some(2)));

    s.set_behavior(Behavior::MissingProtocolVersion);
    let (_, v) = discover_post(&c, &s.url(), &discover(7, "2026-07-28"), "2026-07-28", "server/discover").await;
    assert!(v["result"].get("supportedVersions").is_none());
}

#[tokio::test]
async fn both_flavor_routes_by_header() {
    let s = FixtureServer::start_with(FixtureOptions {
        flavor: Flavor::Both,
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client();
    let (st, v) = post_json(&c, &s.url(), &initialize(1, "2025-06-18")).await;
    assert_eq!((st, v["result"]["protocolVersion"].as_str()), (200, Some("2025-06-18")));
    let (st, v) = discover_post(&c, &s.url(), &discover(2, "2026-07-28"), "2026-07-28", "server/discover").await;
    assert_eq!((st, v["result"]["supportedVersions"][0].as_str()), (200, Some("2026-07-28")));
    // Like the Python SDK: without the 2026 header, discover takes the handshake path.
    let (_, v) = post_json(&c, &s.url(), &discover(3, "2026-07-28")).await;
    assert_eq!(v["error"]["code"], -32601);
}

/// Reads SSE events off a streaming response.
struct Events {
    resp: reqwest::Response,
    buf: String,
}

impl Events {
    async fn next(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = e.to_owned();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                if !data.is_empty() {
                    return (event, data);
                }
                continue;
            }
            let chunk = self.resp.chunk().await.unwrap().expect("stream still open");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test]
async fn legacy_sse_round_trip() {
    let s = FixtureServer::start_with(FixtureOptions {
        flavor: Flavor::LegacySse,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(s.url().ends_with("/sse"));
    let c = builder().timeout(Duration::from_secs(5)).build().unwrap();
    let resp = c.get(s.url()).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut ev = Events { resp, buf: String::new() };
    let (kind, endpoint) = ev.next().await;
    assert_eq!(kind, "endpoint");
    assert!(endpoint.starts_with("/messages?session_id="), "{endpoint}");
    let post_url = s.url_for(&endpoint);

    let r = post(&c, &post_url, &initialize(1, "2024-11-05")).await;
    assert_eq!(r.status(), 202);
    let (kind, data) = ev.next().await;
    assert_eq!(kind, "message");
    let v: Value = serde_json::from_str(&data).unwrap();
    assert_eq!((v["id"].as_i64(), v["result"]["protocolVersion"].as_str()), (Some(1), Some("2024-11-05")));

    s.set_behavior(Behavior::ToolsListError);
    assert_eq!(post(&c, &post_url, &request(2, "tools/list")).await.status(), 202);
    let v: Value = serde_json::from_str(&ev.next().await.1).unwrap();
    assert_eq!((v["id"].as_i64(), v["error"]["code"].as_i64()), (Some(2), Some(-32603)));
    let st = s.stats();
    assert_eq!((st.get_requests, st.posts, st.initialize, st.tools_list), (1, 2, 1, 1));

    // Unknown session: 404. Once the stream is dropped, its session is gone too.
    assert_eq!(post(&c, &s.url_for("/messages?session_id=nope"), &request(3, "ping")).await.status(), 404);
    drop(ev);
    wait_until("the session to end with its stream", || async {
        post(&c, &post_url, &request(4, "ping")).await.status() == 404
    })
    .await;
}

#[tokio::test]
async fn legacy_endpoint_only_never_replies() {
    let s = FixtureServer::start_with(FixtureOptions {
        flavor: Flavor::LegacySse,
        ..Default::default()
    })
    .await
    .unwrap();
    s.set_behavior(Behavior::EndpointOnly);
    let c = client();
    let resp = c.get(s.url()).send().await.unwrap();
    let mut ev = Events { resp, buf: String::new() };
    let (_, endpoint) = ev.next().await;
    assert_eq!(post(&c, &s.url_for(&endpoint), &initialize(1, "2024-11-05")).await.status(), 202);
    let waited = tokio::time::timeout(Duration::from_millis(300), ev.next()).await;
    assert!(waited.is_err(), "no reply arrives");

    s.set_behavior(Behavior::SseWithoutResponse);
    let body = c.get(s.url()).send().await.unwrap().text().await.unwrap();
    assert!(body.starts_with("event: endpoint\n"), "{body}");
}

#[tokio::test]
async fn the_request_log_names_each_request_source_and_path() {
    let s = FixtureServer::start().await.unwrap();
    let c = client();
    let before = std::time::Instant::now();
    post(&c, &s.url(), &initialize(1, "2025-06-18")).await;
    let _ = c.get(s.url_for("/.well-known/oauth-protected-resource")).send().await.unwrap();
    let log = s.drain_requests();
    let seen: Vec<(&str, &str)> = log.iter().map(|r| (r.method.as_str(), r.path.as_str())).collect();
    assert_eq!(seen, [("POST", "/mcp"), ("GET", "/.well-known/oauth-protected-resource")]);
    for r in &log {
        let peer = r.peer.expect("a source address");
        assert!(peer.ip().is_loopback(), "{peer}");
        assert!(r.at >= before, "stamped when received");
    }
    assert!(log[0].at <= log[1].at, "oldest first");
    assert!(s.drain_requests().is_empty(), "drained");
}
