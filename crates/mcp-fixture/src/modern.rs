//! The 2026-07-28 stateless path: `_meta` envelope validation ladder and `server/discover`.
//!
//! Mirrors the official Python SDK (`mcp` 2.3): rung 1 `params._meta` must carry
//! `io.modelcontextprotocol/protocolVersion` and `io.modelcontextprotocol/clientCapabilities`
//! (-32602); rung 2 the `MCP-Protocol-Version` and `Mcp-Method` headers must equal the body's
//! version and method (-32020); rung 3 the version must be served (-32022 with
//! `data: {supported, requested}`). Errors map to HTTP 400, -32601 to 404.

use http::HeaderMap;
use serde_json::{Value, json};

use crate::jsonrpc::{HEADER_MISMATCH, INVALID_PARAMS, METHOD_NOT_FOUND, Outcome, Request, UNSUPPORTED_PROTOCOL_VERSION};
use crate::state::{Shared, inc};
use crate::{HANDSHAKE_VERSIONS, MODERN_VERSION};

pub(crate) const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";
pub(crate) const CLIENT_CAPABILITIES_META: &str = "io.modelcontextprotocol/clientCapabilities";

/// Python SDK routing: a request takes the stateless path when its `MCP-Protocol-Version`
/// header is present and names no handshake-era revision.
pub(crate) fn wants_modern(headers: &HeaderMap) -> bool {
    match headers.get("mcp-protocol-version").and_then(|v| v.to_str().ok()) {
        Some(v) => v != crate::jsonrpc::LEGACY_VERSION && !HANDSHAKE_VERSIONS.contains(&v),
        None => false,
    }
}

/// Answer one stateless request (requests only; notifications were acknowledged earlier).
pub(crate) fn handle(shared: &Shared, headers: &HeaderMap, req: &Request<'_>) -> Outcome {
    let method = req.method();
    if method == "initialize" {
        // The brief's contract: a stateless-only server does not know the handshake.
        // (A modern-locked Python SDK *stream* answers -32022 with `data.supported` instead.)
        return Outcome::error(404, METHOD_NOT_FOUND, "Method not found: initialize");
    }
    if shared.opts.strict_modern
        && let Some(rejection) = ladder(headers, req)
    {
        return rejection;
    }
    match method {
        "server/discover" => Outcome::Result(shared.prebuilt.discover.clone()),
        "tools/list" => Outcome::Result(shared.prebuilt.tools_modern.clone()),
        "ping" => Outcome::Result(shared.prebuilt.empty_modern.clone()),
        _ => Outcome::error(404, METHOD_NOT_FOUND, "Method not found"),
    }
}

/// Count the stateless methods (called for every parsed request, before behaviours).
pub(crate) fn count(shared: &Shared, method: &str) {
    if method == "server/discover" {
        inc(&shared.stats.discover);
    }
}

fn ladder(headers: &HeaderMap, req: &Request<'_>) -> Option<Outcome> {
    let meta = req.params.as_ref().and_then(|p| p.meta.as_ref()).and_then(Value::as_object);
    let Some(meta) = meta else {
        return Some(Outcome::error(
            400,
            INVALID_PARAMS,
            "params._meta must be an object carrying the required envelope keys",
        ));
    };
    let (Some(version), Some(_caps)) = (meta.get(PROTOCOL_VERSION_META), meta.get(CLIENT_CAPABILITIES_META)) else {
        return Some(Outcome::error(400, INVALID_PARAMS, "params._meta is missing a required envelope key"));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("mcp-protocol-version") != version.as_str() || version.as_str().is_none() {
        return Some(Outcome::error(
            400,
            HEADER_MISMATCH,
            "MCP-Protocol-Version header does not match the request envelope's protocol version",
        ));
    }
    if header("mcp-method") != Some(req.method()) {
        return Some(Outcome::error(
            400,
            HEADER_MISMATCH,
            "Mcp-Method header does not match the request body's method",
        ));
    }
    if version.as_str() != Some(MODERN_VERSION) {
        return Some(Outcome::Error {
            http: 400,
            code: UNSUPPORTED_PROTOCOL_VERSION,
            message: "Unsupported protocol version",
            data: Some(json!({ "supported": [MODERN_VERSION], "requested": version })),
        });
    }
    None
}
