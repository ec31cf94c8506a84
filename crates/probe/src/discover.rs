//! The stateless revision 2026-07-28: `server/discover` is the readiness call,
//! and at depth TOOLS `tools/list` and the due synthetic checks' `tools/call`
//! follow, each a self-contained POST with
//! the `MCP-Protocol-Version` and `Mcp-Method` headers and the `params._meta`
//! envelope. No session, no `notifications/initialized`, no DELETE.

use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::exchange::Exchange;
use super::exchange::{self, Answer, Expect};
use super::handshake::{self, Handshake};
use super::streamable::rpc_failure;
use super::{Ctx, Ready, Stop, jsonrpc};
use mcp_health_core::outcome::Reason;
use mcp_health_proto::v1::ReasonCode;

pub const STATELESS_REVISION: &str = "2026-07-28";
const SERVER_INFO_META: &str = "io.modelcontextprotocol/serverInfo";

/// The per-request `_meta` envelope every 2026 request carries.
fn envelope() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": STATELESS_REVISION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "mcp-health", "version": env!("CARGO_PKG_VERSION")},
    })
}

fn headers(method: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("mcp-protocol-version", HeaderValue::from_static(STATELESS_REVISION));
    h.insert("mcp-method", HeaderValue::from_static(method));
    h
}

/// Sends `server/discover`. Any JSON-RPC error, a 4xx other than 401/403, or
/// a result that does not offer 2026-07-28 refutes the revision: the caller
/// falls back to `initialize` (as the official SDK's client does) or, for a
/// pinned backend, fails the probe with that reason.
pub async fn probe(ctx: &Ctx<'_>) -> Result<Ready, Stop> {
    let id = jsonrpc::next_id();
    let payload = jsonrpc::request(id, "server/discover", json!({"_meta": envelope()}));
    let reply = match exchange::post(ctx, &ctx.backend().url, headers("server/discover"), payload, Expect::Body(id)).await {
        Ok(r) => r,
        Err(Stop::Failed(r)) if refutes(&r) => return Err(Stop::Refuted(r)),
        Err(stop) => return Err(stop),
    };
    let result = match reply.answer {
        Answer::Result(r) => r,
        Answer::Error { code, http_status } => return Err(Stop::Refuted(rpc_failure("server/discover", code, http_status))),
        Answer::Accepted => return Err(Stop::Refuted(Reason::new(ReasonCode::Protocol, "server/discover got no response"))),
    };
    let handshake = read_result(&result).map_err(Stop::Refuted)?;
    handshake::finish(ctx, &mut Stateless, handshake).await
}

/// The exchange after `server/discover`: self-contained POSTs, each with the
/// `MCP-Protocol-Version` and `Mcp-Method` headers and the `_meta` envelope;
/// no session and no `notifications/initialized`.
struct Stateless;

impl Exchange for Stateless {
    async fn initialized(&mut self, _ctx: &Ctx<'_>) -> Result<(), Stop> {
        Ok(())
    }

    async fn request(&mut self, ctx: &Ctx<'_>, method: &'static str, mut params: Value) -> Result<Answer, Stop> {
        params["_meta"] = envelope();
        let id = jsonrpc::next_id();
        let reply = exchange::post(ctx, &ctx.backend().url, headers(method), jsonrpc::request(id, method, params), Expect::Body(id)).await?;
        Ok(reply.answer)
    }
}

/// What a `server/discover` result tells: the server's facts, and whether it
/// offers tools. A result that does not offer 2026-07-28 refutes the revision.
pub fn read_result(result: &Value) -> Result<Handshake, Reason> {
    let offers_stateless = result
        .get("supportedVersions")
        .and_then(Value::as_array)
        .is_some_and(|vs| vs.iter().any(|v| v.as_str() == Some(STATELESS_REVISION)));
    if !offers_stateless {
        return Err(Reason::new(
            ReasonCode::Protocol,
            "server/discover result does not offer 2026-07-28 in supportedVersions",
        ));
    }
    // serverInfo rides in `_meta`; early drafts had it top-level.
    let info = result.get("_meta").and_then(|m| m.get(SERVER_INFO_META)).or_else(|| result.get("serverInfo"));
    Ok(Handshake::new(STATELESS_REVISION, info, result))
}

/// Failures that are an era verdict rather than a broken server: a plain 4xx,
/// or a reply that is not a usable JSON-RPC response.
fn refutes(r: &Reason) -> bool {
    match r.code {
        ReasonCode::HttpStatus => r.http_status.is_some_and(|s| (400..500).contains(&s)),
        ReasonCode::Protocol => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn era_verdicts() {
        let cases = [
            (Reason::http(ReasonCode::HttpStatus, 400, "x"), true),
            (Reason::http(ReasonCode::HttpStatus, 404, "x"), true),
            (Reason::http(ReasonCode::HttpStatus, 500, "x"), false),
            (Reason::http(ReasonCode::HttpStatus, 503, "x"), false),
            (Reason::new(ReasonCode::Protocol, "x"), true),
            (Reason::new(ReasonCode::Timeout, "x"), false),
            (Reason::new(ReasonCode::ConnectionRefused, "x"), false),
            (Reason::new(ReasonCode::ResponseTooLarge, "x"), false),
            (Reason::http(ReasonCode::Redirect, 307, "x"), false),
        ];
        for (reason, want) in cases {
            assert_eq!(refutes(&reason), want, "{reason:?}");
        }
    }
}
