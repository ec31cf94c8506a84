//! Streamable HTTP with the `initialize` handshake (revisions 2025-03-26,
//! 2025-06-18, 2025-11-25): POST `initialize`, at depth TOOLS
//! `notifications/initialized`, `tools/list` and the due synthetic checks'
//! `tools/call` on the same session, then the session ended with DELETE. The GET stream is never opened.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::exchange::Exchange;
use super::exchange::{self, Answer, Expect, SESSION_HEADER};
use super::handshake::{self, Handshake};
use super::{Ctx, Ready, Stop, jsonrpc};
use mcp_health_core::outcome::Reason;
use mcp_health_proto::v1::ReasonCode;

/// The newest handshake revision; servers negotiate down from it.
pub const HANDSHAKE_REVISION: &str = "2025-11-25";
/// The first revision whose requests after `initialize` carry `MCP-Protocol-Version`.
const VERSION_HEADER_SINCE: &str = "2025-06-18";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// How long ending a session may take. The verdict is already known by then.
const DELETE_BUDGET: Duration = Duration::from_secs(1);

/// A session the handshake opened, to be ended with DELETE.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub version: String,
}

/// The reason for a JSON-RPC error answer to `method`.
pub fn rpc_failure(method: &str, code: i64, http_status: u16) -> Reason {
    if (200..300).contains(&http_status) {
        Reason::new(ReasonCode::JsonRpcError, format!("{method} failed with JSON-RPC error {code}"))
    } else {
        Reason::http(
            ReasonCode::HttpStatus,
            http_status,
            format!("HTTP {http_status}: {method} failed with JSON-RPC error {code}"),
        )
    }
}

/// The JSON-RPC errors with which a server says it does not do `initialize`
/// or the offered revision: method not found, unsupported protocol version.
fn refutes_handshake(code: i64) -> bool {
    matches!(code, -32601 | -32022)
}

fn session_headers(session: Option<&Session>, version: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(v) = session.and_then(|s| HeaderValue::from_str(&s.id).ok()) {
        h.insert(SESSION_HEADER, v);
    }
    if version >= VERSION_HEADER_SINCE
        && let Ok(v) = HeaderValue::from_str(version)
    {
        h.insert(VERSION_HEADER, v);
    }
    h
}

/// Runs the handshake offering `offer`. With `pinned`, a server that
/// negotiates another version fails the probe. Any session opened is put in
/// `slot` at once, so it is ended even if a later step times out.
pub async fn probe(ctx: &Ctx<'_>, offer: &str, pinned: bool, slot: &mut Option<Session>) -> Result<Ready, Stop> {
    let url = &ctx.backend().url;
    let id = jsonrpc::next_id();
    let payload = jsonrpc::request(id, "initialize", handshake::initialize_params(offer));
    let reply = exchange::post(ctx, url, HeaderMap::new(), payload, Expect::Body(id)).await?;
    if let Some(sid) = reply.session {
        *slot = Some(Session {
            id: sid,
            version: offer.to_owned(),
        });
    }
    let result = match reply.answer {
        Answer::Result(r) => r,
        Answer::Error { code, http_status } if refutes_handshake(code) => return Err(Stop::Refuted(rpc_failure("initialize", code, http_status))),
        Answer::Error { code, http_status } => return Err(Stop::Failed(rpc_failure("initialize", code, http_status))),
        Answer::Accepted => return Err(Stop::Failed(Reason::new(ReasonCode::Protocol, "initialize got no response"))),
    };
    let version = handshake::negotiated(&result, offer, pinned)?;
    if let Some(s) = slot.as_mut() {
        s.version.clone_from(&version);
    }
    let mut on_session = OnSession {
        headers: session_headers(slot.as_ref(), &version),
    };
    handshake::finish(ctx, &mut on_session, Handshake::new(&version, result.get("serverInfo"), &result)).await
}

/// The exchange after `initialize`: POSTs on the session, with its id and
/// (2025-06-18+) the negotiated `MCP-Protocol-Version`.
struct OnSession {
    headers: HeaderMap,
}

impl Exchange for OnSession {
    async fn initialized(&mut self, ctx: &Ctx<'_>) -> Result<(), Stop> {
        let note = jsonrpc::notification("notifications/initialized");
        match exchange::post(ctx, &ctx.backend().url, self.headers.clone(), note, Expect::Nothing)
            .await?
            .answer
        {
            Answer::Error { code, http_status } => Err(Stop::Failed(rpc_failure("notifications/initialized", code, http_status))),
            Answer::Result(_) | Answer::Accepted => Ok(()),
        }
    }

    async fn request(&mut self, ctx: &Ctx<'_>, method: &'static str, params: Value) -> Result<Answer, Stop> {
        let id = jsonrpc::next_id();
        let payload = jsonrpc::request(id, method, params);
        Ok(exchange::post(ctx, &ctx.backend().url, self.headers.clone(), payload, Expect::Body(id))
            .await?
            .answer)
    }
}

/// Ends the session the handshake opened. Any answer, 405 included, is fine.
pub async fn end_session(ctx: &Ctx<'_>, session: &Session) {
    let mut request = ctx
        .target
        .client
        .delete(ctx.backend().url.clone())
        .headers(session_headers(Some(session), &session.version));
    if let Some((name, value)) = &ctx.auth {
        request = request.header(name, value);
    }
    let _ = tokio::time::timeout(DELETE_BUDGET, request.send()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rpc_errors() {
        let r = rpc_failure("initialize", -32603, 200);
        assert_eq!((r.code, r.http_status), (ReasonCode::JsonRpcError, None));
        let r = rpc_failure("initialize", -32600, 400);
        assert_eq!((r.code, r.http_status), (ReasonCode::HttpStatus, Some(400)));
        assert!(refutes_handshake(-32601) && refutes_handshake(-32022));
        assert!(!refutes_handshake(-32603) && !refutes_handshake(-32600));
    }

    #[test]
    fn version_header_from_2025_06_18() {
        let s = Session {
            id: "abc".into(),
            version: String::new(),
        };
        let h = session_headers(Some(&s), "2025-03-26");
        assert_eq!(
            (h.get(SESSION_HEADER).unwrap(), h.get(VERSION_HEADER)),
            (&HeaderValue::from_static("abc"), None)
        );
        let h = session_headers(None, "2025-06-18");
        assert_eq!(h.get(VERSION_HEADER).unwrap(), "2025-06-18");
        assert!(!h.contains_key(SESSION_HEADER));
    }
}
