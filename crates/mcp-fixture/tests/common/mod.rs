//! Test helpers: a loopback-only reqwest client and JSON-RPC request builders.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

pub fn client() -> reqwest::Client {
    builder().build().expect("client")
}

pub fn builder() -> reqwest::ClientBuilder {
    // reqwest is built with `rustls-no-provider`: a provider must exist even for plain http.
    // Err only means another test installed it first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(3))
}

pub fn initialize(id: i64, version: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": { "name": "fixture-test", "version": "0" }
        }
    })
}

pub fn request(id: i64, method: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": {} })
}

pub fn discover(id: i64, version: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "server/discover",
        "params": { "_meta": {
            "io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": { "name": "fixture-test", "version": "0" }
        }}
    })
}

/// POST a JSON-RPC body with the standard Streamable HTTP headers.
pub async fn post(c: &reqwest::Client, url: &str, body: &Value) -> reqwest::Response {
    c.post(url)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("send")
}

pub async fn post_json(c: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let r = post(c, url, body).await;
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The JSON of the first `data:` line of an SSE body.
pub fn first_sse_data(body: &str) -> Value {
    let line = body.lines().find_map(|l| l.strip_prefix("data: ")).expect("a data line");
    serde_json::from_str(line).expect("json data")
}

/// Polls `cond` until it holds, or fails after a generous 20 s naming `what`:
/// synchronisation on a condition, never on a fixed sleep.
pub async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
