//! Turning a method's outcome into an HTTP response, applying reply-shaping behaviours.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use serde_json::Value;

use crate::body::{Body, sse_message};
use crate::jsonrpc::{self, INTERNAL_ERROR, Outcome, RATE_LIMITED};
use crate::state::{REDIRECT_PREFIX, Shared};
use crate::{Behavior, ReplyFormat};

pub(crate) type Resp = Response<Body>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const SSE: HeaderValue = HeaderValue::from_static("text/event-stream");
const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// Bytes that are not UTF-8 (for [`Behavior::InvalidUtf8`]).
pub(crate) const NOT_UTF8: &[u8] = &[0xff, 0xfe, 0xfd, 0x80, 0x81, 0xc0, 0x20, 0xff];
const HTML_PAGE: &str = "<!doctype html><html><body><h1>Sign in</h1></body></html>\n";
const UNRELATED_EVENTS: &str = ": fixture comment\n\nevent: ping\ndata: {}\n\n\
    event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"hello\"}}\n\n";

pub(crate) fn with_type(status: u16, ct: HeaderValue, body: Body) -> Resp {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(CONTENT_TYPE, ct);
    r
}

pub(crate) fn status(code: u16) -> Resp {
    let text = format!("fixture status {code}\n");
    with_type(code, TEXT, Body::full(text))
}

pub(crate) fn empty(code: u16) -> Resp {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

pub(crate) fn json(code: u16, body: impl Into<Bytes>) -> Resp {
    with_type(code, JSON, Body::full(body))
}

/// 401; `metadata` adds `resource_metadata` pointing at this server's RFC 9728 document.
pub(crate) fn unauthorized(shared: &Shared, metadata: bool) -> Resp {
    let mut r = json(401, r#"{"error":"invalid_token"}"#);
    let v = if metadata {
        shared.www_authenticate.clone()
    } else {
        HeaderValue::from_static("Bearer realm=\"mcp-fixture\"")
    };
    r.headers_mut().insert(WWW_AUTHENTICATE, v);
    r
}

/// HTTP-level behaviours that answer before any JSON-RPC processing. `None`: carry on.
pub(crate) fn http_gate(shared: &Shared, b: &Behavior, path: &str, query: Option<&str>) -> Option<Resp> {
    Some(match b {
        Behavior::Unauthorized { resource_metadata } => unauthorized(shared, *resource_metadata),
        Behavior::InvalidResourceMetadata => unauthorized(shared, true),
        Behavior::Forbidden => status(403),
        Behavior::Status(code) => status(*code),
        Behavior::StatusRetryAfter { status: code, retry_after } => with_retry_after(status(*code), Some(retry_after)),
        Behavior::Redirect => {
            let loc = match query {
                Some(q) => format!("{REDIRECT_PREFIX}{path}?{q}"),
                None => format!("{REDIRECT_PREFIX}{path}"),
            };
            let mut r = status(307);
            let loc = HeaderValue::from_str(&loc).unwrap_or(HeaderValue::from_static("/redirected"));
            r.headers_mut().insert(LOCATION, loc);
            r
        }
        _ => return None,
    })
}

/// Adds `Retry-After: value` (when it is a valid header value).
fn with_retry_after(mut r: Resp, value: Option<&String>) -> Resp {
    if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
        r.headers_mut().insert(RETRY_AFTER, v);
    }
    r
}

/// Send a JSON-RPC message body in the configured format.
pub(crate) fn deliver(shared: &Shared, http: u16, msg: Bytes) -> Resp {
    match shared.reply() {
        ReplyFormat::Json => json(http, msg),
        ReplyFormat::Sse => with_type(http, SSE, Body::full(sse_message(&msg))),
    }
}

/// Render `outcome` for request `id` through the reply-shaping behaviours.
/// `method` decides which behaviours apply (e.g. `ToolsListError` only hits `tools/list`).
/// Returns `None` when the reply must never be sent (the caller hangs).
pub(crate) fn shape(shared: &Shared, b: &Behavior, method: &str, id: &Value, outcome: Outcome, missing_version: Option<&Bytes>) -> Option<Resp> {
    let tools = method == "tools/list";
    let msg = |o: Outcome| -> (u16, Bytes) {
        match o {
            Outcome::Result(r) => (200, jsonrpc::response(id, &r)),
            Outcome::Error { http, code, message, data } => (http, jsonrpc::error(Some(id), code, message, data.as_ref())),
        }
    };
    Some(match b {
        Behavior::ToolsListHang if tools => return None,
        Behavior::ToolsListError if tools => json(200, jsonrpc::error(Some(id), INTERNAL_ERROR, "tools/list failed", None)),
        Behavior::ToolsCallError if method == "tools/call" => json(200, jsonrpc::error(Some(id), INTERNAL_ERROR, "tools/call failed", None)),
        Behavior::ToolsCallStatus(code) if method == "tools/call" => status(*code),
        Behavior::EndpointOnly => empty(202),
        Behavior::RateLimited {
            http,
            retry_after,
            retry_after_ms,
        } => {
            let data = retry_after_ms.map(|ms| serde_json::json!({ "retryAfterMs": ms }));
            let body = jsonrpc::error(Some(id), RATE_LIMITED, "Rate limit exceeded", data.as_ref());
            with_retry_after(deliver(shared, *http, body), retry_after.as_ref())
        }
        Behavior::JsonRpcError => deliver(shared, 200, jsonrpc::error(Some(id), INTERNAL_ERROR, "boom", None)),
        Behavior::WrongId => {
            let other = jsonrpc::wrong_id(id);
            match outcome {
                Outcome::Result(r) => deliver(shared, 200, jsonrpc::response(&other, &r)),
                Outcome::Error { http, code, message, data } => deliver(shared, http, jsonrpc::error(Some(&other), code, message, data.as_ref())),
            }
        }
        Behavior::InvalidJson => json(200, Bytes::from_static(b"{not json")),
        Behavior::InvalidUtf8 => json(200, Bytes::from_static(NOT_UTF8)),
        Behavior::MissingProtocolVersion => match (missing_version, outcome) {
            (Some(r), Outcome::Result(_)) => deliver(shared, 200, jsonrpc::response(id, r)),
            (_, o) => {
                let (h, m) = msg(o);
                deliver(shared, h, m)
            }
        },
        Behavior::WrongContentType => with_type(200, HTML, Body::full(HTML_PAGE)),
        Behavior::SseWithoutResponse => with_type(200, SSE, Body::full(UNRELATED_EVENTS)),
        Behavior::EndlessStream => with_type(200, SSE, Body::endless()),
        Behavior::Drip => {
            let (h, m) = msg(outcome);
            match shared.reply() {
                ReplyFormat::Json => with_type(h, JSON, Body::drip(m)),
                ReplyFormat::Sse => with_type(h, SSE, Body::drip(sse_message(&m))),
            }
        }
        Behavior::HugeBody(n) => {
            let mut prefix = b"{\"jsonrpc\":\"2.0\",\"id\":".to_vec();
            prefix.extend_from_slice(id.to_string().as_bytes());
            prefix.extend_from_slice(b",\"result\":{\"pad\":\"");
            with_type(200, JSON, Body::huge(Bytes::from(prefix), *n))
        }
        _ => {
            let (h, m) = msg(outcome);
            deliver(shared, h, m)
        }
    })
}
