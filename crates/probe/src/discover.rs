//! The stateless revision 2026-07-28: `server/discover` is the readiness call,
//! and at depth TOOLS `tools/list` and the due synthetic checks' `tools/call`
//! follow, each a self-contained POST with
//! the `MCP-Protocol-Version` and `Mcp-Method` headers and the `params._meta`
//! envelope. No session, no `notifications/initialized`, no DELETE.

use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::exchange::{self, Answer, Expect};
use super::streamable::rpc_failure;
use super::{Ctx, Ready, Stop, jsonrpc};
use mcp_health_core::outcome::{Reason, ServerFacts};
use mcp_health_proto::v1::{ProbeDepth, ReasonCode};

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
    let (mut facts, offers_tools) = read_result(&result).map_err(Stop::Refuted)?;
    let mut degraded = None;
    let mut note = None;
    let mut catalog_ttl = None;
    let mut checks = Vec::new();
    if ctx.backend().depth == ProbeDepth::Tools && !offers_tools {
        note = Some(exchange::no_tools());
        facts.catalog = ctx.read_catalog.then(exchange::no_catalog);
    } else {
        if ctx.read_catalog {
            let params = |cursor: Option<&str>| match cursor {
                Some(c) => json!({"cursor": c, "_meta": envelope()}),
                None => json!({"_meta": envelope()}),
            };
            match exchange::list_tools(ctx, headers("tools/list"), params).await? {
                Ok(read) => catalog_ttl = read.into_facts(&mut facts),
                Err(reason) => degraded = Some(reason),
            }
        }
        if degraded.is_none() && !ctx.checks_due.is_empty() {
            let with_envelope = |mut p: Value| {
                p["_meta"] = envelope();
                p
            };
            checks = super::checks::run(ctx, Ready::catalog_for_checks(&facts, ctx), headers("tools/call"), with_envelope).await;
        }
    }
    Ok(Ready {
        facts,
        degraded,
        note,
        catalog_ttl,
        checks,
    })
}

/// What a `server/discover` result tells: the server's facts, and whether it
/// offers tools. A result that does not offer 2026-07-28 refutes the revision.
pub fn read_result(result: &Value) -> Result<(ServerFacts, bool), Reason> {
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
    let facts = ServerFacts {
        protocol_version: STATELESS_REVISION.to_owned(),
        server_name: exchange::short_text(info, "name"),
        server_version: exchange::short_text(info, "version"),
        ..ServerFacts::default()
    };
    Ok((facts, exchange::offers_tools(result)))
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
