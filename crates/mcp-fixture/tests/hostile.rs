//! Hostile behaviours, stop/resume and connection accounting.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mcp_fixture::{Behavior, FixtureServer, reserve_port};

#[tokio::test]
async fn hang_times_out_and_frees_the_connection() {
    let s = FixtureServer::start().await.unwrap();
    s.set_path_behavior("/hang", Behavior::Hang);
    let c = builder().timeout(Duration::from_millis(300)).build().unwrap();
    let t = Instant::now();
    let err = c
        .post(s.url_for("/hang"))
        .header("accept", ACCEPT_BOTH)
        .body(initialize(1, "2025-06-18").to_string());
    let err = err.send().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(t.elapsed() < Duration::from_secs(20), "the client timeout fired");
    // Other paths are unaffected.
    let (st, _) = post_json(&c, &s.url(), &initialize(2, "2025-06-18")).await;
    assert_eq!(st, 200);
    drop(c);
    // The hung request is dropped once the client goes away: no connection leaks.
    wait_until("the hung connection to close", || async { s.stats().open_connections == 0 }).await;
    assert_eq!(s.stats().initialize, 2);
}

#[tokio::test]
async fn stop_refuses_then_resume_serves() {
    let s = FixtureServer::start().await.unwrap();
    let c = client();
    assert_eq!(post(&c, &s.url(), &initialize(1, "2025-06-18")).await.status(), 200);
    s.stop().await;
    let e = tokio::net::TcpStream::connect(s.addr()).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    let e = c.post(s.url()).body("{}").send().await.unwrap_err();
    assert!(e.is_connect() || e.is_request(), "{e}");
    s.stop().await; // idempotent
    s.resume().await.unwrap();
    assert_eq!(post(&c, &s.url(), &initialize(2, "2025-06-18")).await.status(), 200);
}

#[tokio::test]
async fn stop_closes_hung_connections() {
    let s = FixtureServer::start().await.unwrap();
    s.set_behavior(Behavior::Hang);
    let c = client();
    let pending = tokio::spawn({
        let c = c.clone();
        let url = s.url();
        async move { c.post(url).header("accept", ACCEPT_BOTH).body("{}").send().await }
    });
    // stop() must close a connection whose request is hanging, so wait until it is.
    wait_until("the request to reach the server", || async { s.stats().posts == 1 }).await;
    s.stop().await;
    let res = tokio::time::timeout(Duration::from_secs(20), pending).await.unwrap().unwrap();
    assert!(res.is_err(), "the hung request fails when stop() closes its connection");
    assert_eq!(s.stats().open_connections, 0);
}

#[test]
fn reserve_port_is_closed() {
    let addr = reserve_port();
    assert!(addr.ip().is_loopback());
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test]
async fn start_on_reserved_port() {
    let addr = reserve_port();
    let s = FixtureServer::start_on(addr, Default::default()).await.unwrap();
    assert_eq!(s.addr(), addr);
    assert_eq!(s.url(), format!("http://{addr}/mcp"));
}

#[tokio::test]
async fn huge_body_streams_without_allocating() {
    let s = FixtureServer::start().await.unwrap();
    s.set_behavior(Behavior::HugeBody(1 << 30));
    let mut r = post(&client(), &s.url(), &initialize(1, "2025-06-18")).await;
    assert_eq!(r.status(), 200);
    assert!(r.content_length().is_none(), "chunked, no length up front");
    let mut read = 0usize;
    let mut first = None;
    while read < (1 << 20) {
        let chunk = r.chunk().await.unwrap().expect("more data");
        first.get_or_insert_with(|| chunk.clone());
        read += chunk.len();
    }
    assert!(first.unwrap().starts_with(b"{\"jsonrpc\":\"2.0\",\"id\":1,"));
    drop(r);
}

#[tokio::test]
async fn connection_counting() {
    let s = FixtureServer::start().await.unwrap();
    let fresh = builder().pool_max_idle_per_host(0).build().unwrap();
    for id in 0..2 {
        assert_eq!(post(&fresh, &s.url(), &initialize(id, "2025-06-18")).await.status(), 200);
    }
    let st = s.stats();
    assert_eq!((st.connections, st.reused_connections), (2, 0));

    let pooled = client();
    for id in 0..3 {
        let r = post(&pooled, &s.url_for(&format!("/p{id}")), &initialize(id, "2025-06-18")).await;
        r.text().await.unwrap();
    }
    let st = s.stats();
    assert_eq!((st.connections, st.reused_connections), (3, 1));
}

#[tokio::test]
async fn reply_shaping_behaviors() {
    let s = FixtureServer::start().await.unwrap();
    let c = client();
    let init = initialize(5, "2025-06-18");

    s.set_behavior(Behavior::JsonRpcError);
    let (st, v) = post_json(&c, &s.url(), &init).await;
    assert_eq!((st, v["id"].as_i64(), v["error"]["code"].as_i64()), (200, Some(5), Some(-32603)));

    s.set_behavior(Behavior::WrongId);
    let (_, v) = post_json(&c, &s.url(), &init).await;
    assert!(v["result"].is_object() && v["id"] != 5);

    s.set_behavior(Behavior::MissingProtocolVersion);
    let (_, v) = post_json(&c, &s.url(), &init).await;
    assert!(v["result"]["serverInfo"].is_object() && v["result"].get("protocolVersion").is_none());

    s.set_behavior(Behavior::InvalidJson);
    let r = post(&c, &s.url(), &init).await;
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), "{not json");

    s.set_behavior(Behavior::InvalidUtf8);
    let b = post(&c, &s.url(), &init).await.bytes().await.unwrap();
    assert!(std::str::from_utf8(&b).is_err());

    s.set_behavior(Behavior::WrongContentType);
    let r = post(&c, &s.url(), &init).await;
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));

    s.set_behavior(Behavior::Status(503));
    assert_eq!(post(&c, &s.url(), &init).await.status(), 503);
    s.set_behavior(Behavior::Forbidden);
    assert_eq!(post(&c, &s.url(), &init).await.status(), 403);

    s.set_behavior(Behavior::SseWithoutResponse);
    let r = post(&c, &s.url(), &init).await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert!(!r.text().await.unwrap().contains("\"id\":5"));

    s.set_behavior(Behavior::EndpointOnly);
    assert_eq!(post(&c, &s.url(), &init).await.status(), 202);

    s.set_behavior(Behavior::ToolsListError);
    assert_eq!(post_json(&c, &s.url(), &init).await.0, 200);
    let (_, v) = post_json(&c, &s.url(), &request(6, "tools/list")).await;
    assert_eq!(v["error"]["code"], -32603);

    // Redirect: 307 to a path that answers healthily (reqwest follows it).
    s.set_behavior(Behavior::Redirect);
    let nofollow = builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = post(&nofollow, &s.url(), &init).await;
    assert_eq!(r.status(), 307);
    assert_eq!(r.headers()["location"], "/redirected/mcp");
    let (st, v) = post_json(&c, &s.url(), &init).await;
    assert_eq!((st, v["result"]["protocolVersion"].as_str()), (200, Some("2025-06-18")));
}

#[tokio::test]
async fn slow_drip_endless_and_tools_hang() {
    let s = FixtureServer::start().await.unwrap();
    let c = client();
    let init = initialize(1, "2025-06-18");

    s.set_behavior(Behavior::Slow(Duration::from_millis(200)));
    let t = Instant::now();
    assert_eq!(post_json(&c, &s.url(), &init).await.0, 200);
    assert!(t.elapsed() >= Duration::from_millis(200));

    s.set_behavior(Behavior::Drip);
    let mut r = post(&c, &s.url(), &init).await;
    let len = r.content_length().unwrap();
    assert!(len > 50);
    assert_eq!(r.chunk().await.unwrap().unwrap().len(), 1);
    let t = Instant::now();
    assert_eq!(r.chunk().await.unwrap().unwrap().len(), 1);
    assert!(t.elapsed() >= Duration::from_millis(800), "one byte per second");
    drop(r);

    s.set_behavior(Behavior::EndlessStream);
    let mut r = post(&c, &s.url(), &init).await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    for _ in 0..5 {
        assert!(r.chunk().await.unwrap().unwrap().starts_with(b": keepalive"));
    }
    drop(r);

    s.set_behavior(Behavior::ToolsListHang);
    assert_eq!(post_json(&c, &s.url(), &init).await.0, 200);
    let quick = builder().timeout(Duration::from_millis(200)).build().unwrap();
    let e = quick.post(s.url()).header("accept", ACCEPT_BOTH).body(request(2, "tools/list").to_string());
    assert!(e.send().await.unwrap_err().is_timeout());
}
