//! The 2024-11-05 HTTP+SSE flavour: `GET` opens an event stream whose first event names the
//! POST endpoint; `POST /messages?session_id=…` answers 202 and the reply rides the stream.
//!
//! Behaviours: `Hang` never answers the GET (nor POSTs); `SseWithoutResponse` sends the
//! endpoint event then closes the stream; `EndpointOnly` sends the endpoint, accepts POSTs,
//! never replies; `EndlessStream` is `EndpointOnly` plus `: keepalive` comments every 10 ms;
//! `Drip` drips the endpoint event; `HugeBody(n)` streams an n-byte comment instead;
//! `WrongContentType` answers the GET with HTML; reply-shaping behaviours (`JsonRpcError`,
//! `WrongId`, `InvalidJson`, `InvalidUtf8`, `MissingProtocolVersion`, `ToolsList*`) shape the
//! `event: message` payload. POSTs follow the behaviour of the path that opened the stream.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use crate::Behavior;
use crate::body::{Body, sse_message};
use crate::exchange::{count, handshake, pre_gate};
use crate::jsonrpc::{self, INTERNAL_ERROR, Outcome};
use crate::reply::{self, NOT_UTF8, Resp};
use crate::sessions::Session;
use crate::state::{Shared, inc};

pub(crate) async fn handle(shared: &Shared, parts: Parts, body: Incoming) -> Resp {
    match parts.method {
        Method::GET => open_stream(shared, parts).await,
        Method::POST => post(shared, parts, body).await,
        Method::DELETE => {
            inc(&shared.stats.delete_requests);
            reply::status(405)
        }
        _ => reply::status(405),
    }
}

async fn open_stream(shared: &Shared, parts: Parts) -> Resp {
    inc(&shared.stats.get_requests);
    let path = parts.uri.path();
    let b = shared.behavior_for(path);
    if let Some(r) = pre_gate(shared, &b, &parts.uri, &parts.headers).await {
        return r;
    }
    let sid = shared.next_session_id();
    let endpoint = format!("event: endpoint\ndata: /messages?session_id={sid}\n\n");
    let sse = HeaderValue::from_static("text/event-stream");
    match b {
        Behavior::WrongContentType => reply::with_type(200, HeaderValue::from_static("text/html"), Body::full("<html></html>")),
        Behavior::Drip => reply::with_type(200, sse, Body::drip(Bytes::from(endpoint))),
        Behavior::HugeBody(n) => reply::with_type(200, sse, Body::huge(Bytes::from_static(b": "), n)),
        Behavior::SseWithoutResponse => reply::with_type(200, sse, Body::full(endpoint + ": that is all\n\n")),
        b => {
            let (tx, rx) = mpsc::channel(64);
            // Fresh channel with capacity 64: the first send cannot find it full or closed.
            let _ = tx.try_send(Bytes::from(endpoint));
            let deliver = !matches!(b, Behavior::EndpointOnly | Behavior::EndlessStream);
            let guard = shared.legacy.insert(
                sid,
                Session {
                    tx,
                    path: path.to_owned(),
                    deliver,
                },
            );
            let keepalive = b == Behavior::EndlessStream;
            reply::with_type(200, sse, Body::channel(rx, keepalive, Some(Box::new(guard))))
        }
    }
}

fn session_id(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("session_id="))
}

async fn post(shared: &Shared, parts: Parts, body: Incoming) -> Resp {
    inc(&shared.stats.posts);
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return reply::status(400),
    };
    let parsed = serde_json::from_slice::<jsonrpc::Request<'_>>(&bytes);
    if let Ok(r) = &parsed {
        count(shared, r.method());
    }
    let Parts { uri, headers, .. } = parts;
    let headers = Arc::new(headers);
    shared.last_headers.store(Some(headers.clone()));
    let Some(session) = session_id(uri.query()).and_then(|id| shared.legacy.get(id)) else {
        return reply::status(404);
    };
    let b = shared.behavior_for(&session.path);
    if let Some(r) = pre_gate(shared, &b, &uri, &headers).await {
        return r;
    }
    let req = match parsed {
        Ok(r) => r,
        Err(_) => return reply::status(400),
    };
    let Some(id) = &req.id else {
        inc(&shared.stats.notifications);
        return reply::empty(202);
    };
    let method = req.method();
    let (outcome, missing) = handshake(shared, &req);
    let tools = method == "tools/list";
    let msg: Option<Bytes> = match (&b, outcome) {
        _ if !session.deliver => None,
        (Behavior::ToolsListHang, _) if tools => None,
        (Behavior::ToolsListError, _) if tools => Some(jsonrpc::error(Some(id), INTERNAL_ERROR, "tools/list failed", None)),
        (Behavior::ToolsCallError, _) if method == "tools/call" => Some(jsonrpc::error(Some(id), INTERNAL_ERROR, "tools/call failed", None)),
        (Behavior::JsonRpcError, _) => Some(jsonrpc::error(Some(id), INTERNAL_ERROR, "boom", None)),
        (Behavior::RateLimited { retry_after_ms, .. }, _) => {
            let data = retry_after_ms.map(|ms| serde_json::json!({ "retryAfterMs": ms }));
            Some(jsonrpc::error(Some(id), jsonrpc::RATE_LIMITED, "Rate limit exceeded", data.as_ref()))
        }
        (Behavior::InvalidJson, _) => Some(Bytes::from_static(b"{not json")),
        (Behavior::InvalidUtf8, _) => Some(Bytes::from_static(NOT_UTF8)),
        (Behavior::WrongId, Outcome::Result(r)) => Some(jsonrpc::response(&jsonrpc::wrong_id(id), &r)),
        (Behavior::MissingProtocolVersion, Outcome::Result(r)) => Some(jsonrpc::response(id, missing.unwrap_or(&r))),
        (_, Outcome::Result(r)) => Some(jsonrpc::response(id, &r)),
        (_, Outcome::Error { code, message, data, .. }) => Some(jsonrpc::error(Some(id), code, message, data.as_ref())),
    };
    if let Some(m) = msg
        && session.tx.send(sse_message(&m)).await.is_err()
    {
        return reply::status(404);
    }
    reply::empty(202)
}
