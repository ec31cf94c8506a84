//! Per-request dispatch for Streamable HTTP: paths, gates (delay, hang, auth, Accept), methods.

use std::sync::Arc;

use http::header::{ACCEPT, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Method, Request};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use crate::exchange::{count, handshake, pre_gate};
use crate::jsonrpc::{self, INVALID_REQUEST, Outcome, PARSE_ERROR};
use crate::reply::{self, Resp};
use crate::state::{METADATA_PATH, Shared, inc};
use crate::{Behavior, Flavor, legacy, modern};

pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    if let Some(suffix) = path.strip_prefix(METADATA_PATH) {
        return metadata(&shared, suffix);
    }
    if shared.opts.oauth_client.is_some() && path == shared.token_path() {
        return crate::oauth::token(&shared, parts, body).await;
    }
    if let Some(r) = crate::oauth::metadata(&shared, path) {
        return r;
    }
    if shared.opts.flavor == Flavor::LegacySse {
        return legacy::handle(&shared, parts, body).await;
    }
    let behavior = shared.behavior_for(path);
    match parts.method {
        Method::POST => post(&shared, behavior, parts, body).await,
        Method::GET => {
            inc(&shared.stats.get_requests);
            match pre_gate(&shared, &behavior, &parts.uri, &parts.headers).await {
                Some(r) => r,
                None => reply::status(405),
            }
        }
        Method::DELETE => {
            inc(&shared.stats.delete_requests);
            if let Some(r) = pre_gate(&shared, &behavior, &parts.uri, &parts.headers).await {
                return r;
            }
            let sessions = shared.opts.session_ids && shared.opts.flavor != Flavor::Discover;
            if !sessions || shared.opts.delete_405 {
                reply::status(405)
            } else if parts.headers.contains_key("mcp-session-id") {
                reply::empty(200)
            } else {
                reply::status(400)
            }
        }
        _ => reply::status(405),
    }
}

/// True if some `Accept` value admits JSON or SSE (wildcards included).
fn accept_ok(h: &HeaderMap) -> bool {
    h.get_all(ACCEPT).iter().any(|v| {
        let v = v.as_bytes();
        [&b"application/json"[..], b"text/event-stream", b"*/*", b"application/*", b"text/*"]
            .iter()
            .any(|needle| v.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle)))
    })
}

async fn post(shared: &Shared, behavior: Behavior, mut parts: Parts, body: Incoming) -> Resp {
    inc(&shared.stats.posts);
    // Read the whole request first: even a hanging server has read what it was sent.
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return reply::status(400),
    };
    let parsed = serde_json::from_slice::<jsonrpc::Request<'_>>(&bytes);
    if let Ok(r) = &parsed {
        count(shared, r.method());
    }
    // Record before the gates, so tests can see what a rejected or hung request carried.
    let headers = std::mem::take(&mut parts.headers);
    let accept = accept_ok(&headers);
    let modern = modern::wants_modern(&headers);
    let session_hdr = headers.contains_key("mcp-session-id");
    let headers = Arc::new(headers);
    shared.last_headers.store(Some(headers.clone()));

    if let Some(r) = pre_gate(shared, &behavior, &parts.uri, &headers).await {
        return r;
    }
    if !accept {
        return reply::status(406);
    }
    let req = match parsed {
        Ok(r) => r,
        Err(_) => return reply::json(400, jsonrpc::error(None, PARSE_ERROR, "Parse error", None)),
    };
    let Some(id) = &req.id else {
        if req.method.is_none() {
            return reply::json(400, jsonrpc::error(None, INVALID_REQUEST, "Invalid Request", None));
        }
        inc(&shared.stats.notifications);
        return reply::empty(202);
    };
    let method = req.method();
    let use_modern = match shared.opts.flavor {
        Flavor::Discover => true,
        Flavor::Both => modern,
        _ => false,
    };
    let (outcome, missing) = if use_modern {
        (modern::handle(shared, &headers, &req), Some(&shared.prebuilt.discover_missing_versions))
    } else {
        handshake(shared, &req)
    };
    let missing = if method == "initialize" || method == "server/discover" {
        missing
    } else {
        None
    };
    let new_session = !use_modern && shared.opts.session_ids && method == "initialize" && !session_hdr && matches!(outcome, Outcome::Result(_));
    match reply::shape(shared, &behavior, method, id, outcome, missing) {
        Some(mut r) => {
            if new_session && r.status().is_success() {
                let sid = shared.next_session_id();
                if let Ok(v) = HeaderValue::from_str(&sid) {
                    r.headers_mut().insert("mcp-session-id", v);
                }
            }
            r
        }
        None => std::future::pending().await,
    }
}

/// RFC 9728 protected-resource metadata for `suffix` (empty: the main path).
fn metadata(shared: &Shared, suffix: &str) -> Resp {
    inc(&shared.stats.metadata_requests);
    let resource_path = if suffix.is_empty() { shared.main_path } else { suffix };
    if shared.behavior_for(resource_path) == Behavior::InvalidResourceMetadata {
        return reply::json(200, "<html>not metadata</html>{\"resource\":");
    }
    let doc = json!({
        "resource": format!("{}{}", shared.base, resource_path),
        "authorization_servers": [shared.base],
        "bearer_methods_supported": ["header"],
    });
    reply::json(200, doc.to_string())
}
