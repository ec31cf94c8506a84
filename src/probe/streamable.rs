//! The Streamable HTTP probe: one POST `initialize`, the reply read as JSON or
//! SSE, the session ended with DELETE. The GET stream is never opened.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::credentials::{self, AuthHeader};
use super::jsonrpc::Message;
use super::{HttpProber, ProbeMemory, ProbeReport, ProbeTarget, body, classify};
use crate::core::outcome::{ProbeOutcome, Reason, ServerFacts};
use crate::proto::v1::ReasonCode;

/// The newest handshake revision; servers negotiate down from it.
pub const HANDSHAKE_REVISION: &str = "2025-11-25";
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// How long ending a session may take. The verdict is already known by then.
const DELETE_BUDGET: Duration = Duration::from_secs(1);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

struct Handshake {
    outcome: ProbeOutcome,
    session: Option<(String, String)>,
}

pub async fn probe(prober: &HttpProber, target: &ProbeTarget, _memory: &mut ProbeMemory, deadline: Instant) -> ProbeReport {
    let start = Instant::now();
    let handshake = tokio::time::timeout_at(deadline, initialize(prober, target)).await;
    let latency = start.elapsed();
    let outcome = match handshake {
        Ok(h) => {
            if let Some((session, version)) = h.session {
                end_session(target, &session, &version).await;
            }
            h.outcome
        }
        Err(_) => ProbeOutcome::failure(Reason::new(ReasonCode::Timeout, format!("no reply within {} ms", latency.as_millis()))),
    };
    ProbeReport { outcome, latency }
}

fn fail(reason: Reason) -> Handshake {
    Handshake { outcome: ProbeOutcome::failure(reason), session: None }
}

async fn initialize(prober: &HttpProber, target: &ProbeTarget) -> Handshake {
    let auth_header: Option<AuthHeader> = match credentials::static_header(target.backend.spec.auth.as_ref()) {
        Ok(h) => h,
        Err(reason) => return fail(reason),
    };
    let id = next_id();
    let params = json!({
        "protocolVersion": HANDSHAKE_REVISION,
        "capabilities": {},
        "clientInfo": {"name": "mcp-health", "version": env!("CARGO_PKG_VERSION")},
    });
    let mut request = target
        .client
        .post(target.backend.url.clone())
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .body(super::jsonrpc::request(id, "initialize", params));
    let credentials_sent = auth_header.is_some();
    if let Some((name, value)) = auth_header {
        request = request.header(name, value);
    }
    let mut resp = match request.send().await {
        Ok(r) => r,
        Err(e) => return fail(classify::transport_error(&e)),
    };
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let reason = classify::http_status(status, credentials_sent);
        let outcome = if matches!(status, 401 | 403) {
            ProbeOutcome::auth_required(reason, ServerFacts::default())
        } else {
            ProbeOutcome::failure(reason)
        };
        return Handshake { outcome, session: None };
    }
    let session = resp.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let result = match body::read_reply(&mut resp, id, prober.max_response_bytes).await {
        Ok(Message::Result(result)) => result,
        Ok(Message::Error(code)) => {
            return fail(Reason::new(ReasonCode::JsonRpcError, format!("initialize failed with JSON-RPC error {code}")));
        }
        Ok(Message::Unrelated) => return fail(Reason::new(ReasonCode::Protocol, "reply is not a response")),
        Err(reason) => return fail(reason),
    };
    let Some(version) = result.get("protocolVersion").and_then(Value::as_str).filter(|v| !v.is_empty()) else {
        return fail(Reason::new(ReasonCode::Protocol, "initialize result has no protocolVersion"));
    };
    let info = result.get("serverInfo");
    let text = |key: &str| info.and_then(|i| i.get(key)).and_then(Value::as_str).unwrap_or_default().chars().take(128).collect::<String>();
    let facts = ServerFacts {
        protocol_version: version.chars().take(32).collect(),
        server_name: text("name"),
        server_version: text("version"),
        ..ServerFacts::default()
    };
    let session = session.map(|s| (s, facts.protocol_version.clone()));
    Handshake { outcome: ProbeOutcome::success(facts), session }
}

/// Ends the session the handshake opened. Any answer, 405 included, is fine.
async fn end_session(target: &ProbeTarget, session: &str, version: &str) {
    let mut request = target.client.delete(target.backend.url.clone()).header(SESSION_HEADER, session).header(VERSION_HEADER, version);
    if let Ok(Some((name, value))) = credentials::static_header(target.backend.spec.auth.as_ref()) {
        request = request.header(name, value);
    }
    let _ = tokio::time::timeout(DELETE_BUDGET, request.send()).await;
}
