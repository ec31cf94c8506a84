//! Streamable HTTP flavour: healthy replies (JSON and SSE), sessions, headers, Accept, auth.

mod common;

use common::*;
use mcp_fixture::{Behavior, FixtureOptions, FixtureServer, Flavor, ReplyFormat};
use serde_json::json;

#[tokio::test]
async fn healthy_json_initialize_and_tools_list() {
    let s = FixtureServer::start().await.unwrap();
    assert!(s.url().ends_with("/mcp"));
    let c = client();

    let r = post(&c, &s.url(), &initialize(1, "2025-06-18")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().contains_key("mcp-session-id"));
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["id"], 1);
    assert_eq!(v["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(v["result"]["serverInfo"]["name"], "mcp-fixture");
    assert_eq!(v["result"]["capabilities"], json!({"tools": {}}));

    // Known versions are echoed, unknown ones get the configured version.
    let (_, v) = post_json(&c, &s.url(), &initialize(2, "2025-11-25")).await;
    assert_eq!(v["result"]["protocolVersion"], "2025-11-25");
    let (_, v) = post_json(&c, &s.url(), &initialize(3, "1999-01-01")).await;
    assert_eq!(v["result"]["protocolVersion"], "2025-06-18");

    // String ids are echoed.
    let mut req = request(0, "tools/list");
    req["id"] = json!("abc");
    let (st, v) = post_json(&c, &s.url(), &req).await;
    assert_eq!(st, 200);
    assert_eq!(v["id"], "abc");
    assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 2);
    assert_eq!(v["result"]["tools"][0]["name"], "t0");

    // Notifications: 202, empty.
    let r = post(&c, &s.url(), &json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await;
    assert_eq!(r.status(), 202);
    assert!(r.text().await.unwrap().is_empty());

    let st = s.stats();
    assert_eq!((st.initialize, st.tools_list, st.posts, st.notifications), (3, 1, 5, 1));
}

#[tokio::test]
async fn healthy_sse_reply() {
    let s = FixtureServer::start().await.unwrap();
    s.set_reply_format(ReplyFormat::Sse);
    let r = post(&client(), &s.url(), &initialize(7, "2025-03-26")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = r.text().await.unwrap();
    assert!(body.starts_with("event: message\ndata: "), "{body}");
    let v = first_sse_data(&body);
    assert_eq!(v["id"], 7);
    assert_eq!(v["result"]["protocolVersion"], "2025-03-26");
}

#[tokio::test]
async fn headers_accept_get_delete() {
    let s = FixtureServer::start_with(FixtureOptions {
        server_name: "named".into(),
        tools: 5,
        flavor: Flavor::Handshake { version: "2025-11-25".into() },
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client();
    let r = c
        .post(s.url())
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", "2025-11-25")
        .header("x-probe", "yes")
        .body(initialize(1, "2030-01-01").to_string())
        .send()
        .await
        .unwrap();
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let v: serde_json::Value = r.json_text().await;
    assert_eq!(v["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(v["result"]["serverInfo"]["name"], "named");
    let h = s.last_post_headers().unwrap();
    assert_eq!(h["x-probe"], "yes");
    assert_eq!(s.last_protocol_version().as_deref(), Some("2025-11-25"));

    // Accept without JSON or SSE: 406.
    let r = c.post(s.url()).header("accept", "text/html").body("{}").send().await.unwrap();
    assert_eq!(r.status(), 406);
    let r = c.get(s.url()).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = c.delete(s.url()).header("mcp-session-id", sid).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, v) = post_json(&c, &s.url(), &request(2, "tools/list")).await;
    assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 5);
    assert_eq!((s.stats().get_requests, s.stats().delete_requests), (1, 1));

    let s = FixtureServer::start_with(FixtureOptions {
        delete_405: true,
        session_ids: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let r = post(&c, &s.url(), &initialize(1, "2025-06-18")).await;
    assert!(!r.headers().contains_key("mcp-session-id"));
    let r = c.delete(s.url()).header("mcp-session-id", "x").send().await.unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn unauthorized_with_resource_metadata() {
    let s = FixtureServer::start().await.unwrap();
    let c = client();
    s.set_behavior(Behavior::Unauthorized { resource_metadata: true });
    let r = post(&c, &s.url(), &initialize(1, "2025-06-18")).await;
    assert_eq!(r.status(), 401);
    let meta_url = format!("http://{}/.well-known/oauth-protected-resource", s.addr());
    assert_eq!(r.headers()["www-authenticate"], format!("Bearer resource_metadata=\"{meta_url}\"").as_str());
    let doc: serde_json::Value = c.get(&meta_url).send().await.unwrap().json_text().await;
    assert_eq!(doc["resource"], s.url());
    assert_eq!(doc["authorization_servers"], json!([format!("http://{}", s.addr())]));

    s.set_behavior(Behavior::Unauthorized { resource_metadata: false });
    let r = post(&c, &s.url(), &initialize(1, "2025-06-18")).await;
    assert_eq!(r.status(), 401);
    assert!(!r.headers()["www-authenticate"].to_str().unwrap().contains("resource_metadata"));

    s.set_behavior(Behavior::InvalidResourceMetadata);
    let r = post(&c, &s.url(), &initialize(1, "2025-06-18")).await;
    assert_eq!(r.status(), 401);
    let text = c.get(&meta_url).send().await.unwrap().text().await.unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
    assert_eq!(s.stats().metadata_requests, 2);
}

#[tokio::test]
async fn required_bearer() {
    let s = FixtureServer::start_with(FixtureOptions {
        required_bearer: Some("tok".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client();
    let r = post(&c, &s.url(), &initialize(1, "2025-06-18")).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("resource_metadata="));
    for (auth, want) in [("Bearer nope", 401), ("Bearer tok", 200), ("bearer tok", 200)] {
        let r = c
            .post(s.url())
            .header("accept", ACCEPT_BOTH)
            .header("authorization", auth)
            .body(initialize(1, "2025-06-18").to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{auth}");
    }
    assert_eq!(s.last_post_headers().unwrap()["authorization"], "bearer tok");
}

/// `Response::json` needs reqwest's `json` feature; parse text instead.
trait JsonText {
    async fn json_text(self) -> serde_json::Value;
}

impl JsonText for reqwest::Response {
    async fn json_text(self) -> serde_json::Value {
        serde_json::from_str(&self.text().await.unwrap()).unwrap()
    }
}
