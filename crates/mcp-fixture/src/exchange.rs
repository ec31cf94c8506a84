//! The steps an MCP request takes in every transport (Streamable HTTP and the legacy HTTP+SSE
//! flavour alike): the gates before JSON-RPC, the handshake-era methods, the method counters.

use http::header::{AUTHORIZATION, HeaderValue};
use http::{HeaderMap, Uri};

use crate::jsonrpc::{self, METHOD_NOT_FOUND, Outcome};
use crate::reply::{self, Resp};
use crate::state::{Shared, inc};
use crate::{Behavior, modern};

/// Gates every MCP request passes before JSON-RPC: Slow, Hang, HTTP-level behaviours, bearer.
pub(crate) async fn pre_gate(shared: &Shared, b: &Behavior, uri: &Uri, headers: &HeaderMap) -> Option<Resp> {
    match b {
        Behavior::Slow(d) => tokio::time::sleep(*d).await,
        Behavior::Hang => std::future::pending::<()>().await,
        _ => {}
    }
    if let Some(r) = reply::http_gate(shared, b, uri.path(), uri.query()) {
        return Some(r);
    }
    if !authorized(shared, headers) {
        return Some(reply::unauthorized(shared, true));
    }
    None
}

fn authorized(shared: &Shared, h: &HeaderMap) -> bool {
    let Some(expected) = &shared.expected_auth else {
        return true;
    };
    let Some(got) = h.get(AUTHORIZATION).map(HeaderValue::as_bytes) else {
        return false;
    };
    got.len() == expected.len() && got[..7].eq_ignore_ascii_case(&expected[..7]) && got[7..] == expected[7..]
}

pub(crate) fn count(shared: &Shared, method: &str) {
    match method {
        "initialize" => inc(&shared.stats.initialize),
        "tools/list" => inc(&shared.stats.tools_list),
        m => modern::count(shared, m),
    }
}

/// Handshake-era methods. Returns the outcome and the "missing protocolVersion" variant.
pub(crate) fn handshake<'s>(shared: &'s Shared, req: &jsonrpc::Request<'_>) -> (Outcome, Option<&'s bytes::Bytes>) {
    let p = &shared.prebuilt;
    match req.method() {
        "initialize" => (Outcome::Result(p.init_for(req.requested_version()).clone()), Some(&p.init_missing_version)),
        "tools/list" => (Outcome::Result(p.tools.clone()), None),
        "ping" => (Outcome::Result(p.empty.clone()), None),
        // Any tool answers with one line of text (`ToolsCallError` makes it fail).
        "tools/call" => (
            Outcome::Result(bytes::Bytes::from_static(br#"{"content":[{"type":"text","text":"ok"}],"isError":false}"#)),
            None,
        ),
        _ => (Outcome::error(200, METHOD_NOT_FOUND, "Method not found"), None),
    }
}
