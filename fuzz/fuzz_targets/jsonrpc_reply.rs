//! Fuzzes how a probe reads the reply to its JSON-RPC request
//! (crates/probe/src/body.rs `read_reply`, crates/probe/src/jsonrpc.rs) and what it takes
//! from a result (`server/discover`: crates/probe/src/discover.rs `read_result`;
//! `tools/list` pages; server names).
//!
//! Input: two bytes of cap (the probe's reply cap), one byte of chunk size,
//! one byte of framing (even: `application/json`, odd: `text/event-stream`),
//! then the body. The request id is 7. Checked:
//! - the cap: a JSON body over it is refused as too large, and no body within
//!   it ever is;
//! - a JSON body gives exactly what `jsonrpc::parse` says of the whole body;
//!   an event stream (valid UTF-8, within the cap) gives the same answer
//!   however it is chunked: the first `message` event with data that is the
//!   response to request 7;
//! - a result is a JSON object, an error carries its code and -32023 is
//!   always RateLimited, a `retryAfterMs` wait is never negative;
//! - `server/discover`: accepted only when `supportedVersions` offers
//!   2026-07-28, with server name and version cut to 128 characters;
//!   `tools/list`: the count is the length of the `tools` array.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use mcp_health::probe::fuzzing::{Message, parse_jsonrpc, read_discover_result, read_reply, tools_page};
use mcp_health::probe::sse::{SseEvent, SseParser};
use mcp_health::proto::v1::ReasonCode;
use serde_json::Value;

const ID: u64 = 7;

/// The answer of an event stream read whole: the first `message` event with
/// data that is the response to `ID`.
fn whole_stream(body: &[u8]) -> Option<Result<Message, ReasonCode>> {
    let mut events: Vec<SseEvent> = Vec::new();
    SseParser::default().push(body, &mut events).ok()?;
    for e in events {
        if e.event != "message" || e.data.is_empty() {
            continue;
        }
        match parse_jsonrpc(e.data.as_bytes(), ID) {
            Ok(Message::Unrelated) => continue,
            Ok(m) => return Some(Ok(m)),
            Err(r) => return Some(Err(r.code)),
        }
    }
    Some(Err(ReasonCode::Protocol))
}

fn check_result(result: &Value) {
    assert!(result.is_object(), "a result that is not an object: {result}");
    match read_discover_result(result) {
        Ok(handshake) => {
            let facts = handshake.facts;
            let offered = result["supportedVersions"].as_array().expect("accepted without supportedVersions");
            assert!(offered.iter().any(|v| v == "2026-07-28"), "accepted without 2026-07-28");
            assert!(facts.server_name.chars().count() <= 128 && facts.server_version.chars().count() <= 128);
        }
        Err(reason) => assert_eq!(reason.code, ReasonCode::Protocol),
    }
    match tools_page(result) {
        Ok((count, cursor)) => {
            let tools = result["tools"].as_array().expect("a page without a tools array");
            assert_eq!(usize::try_from(count).ok(), Some(tools.len()));
            assert!(cursor.is_none_or(|c| !c.is_empty()));
        }
        Err(reason) => assert_eq!(reason.code, ReasonCode::Protocol),
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((cap, rest)) = common::cap_and_rest(input) else { return };
    let Some((&[chunk, framing], body)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let stream = framing % 2 == 1;
    let content_type = if stream { "text/event-stream" } else { "application/json" };
    let mut resp = common::response(content_type, body, usize::from(chunk));
    let got = futures::executor::block_on(read_reply(&mut resp, ID, cap));
    if let Err(reason) = &got {
        if reason.code == ReasonCode::ResponseTooLarge {
            assert!(body.len() > cap, "a body of {} bytes within the cap of {cap} was refused", body.len());
        }
    }
    let got = got.map_err(|r| r.code);
    if !stream {
        if body.len() > cap {
            assert_eq!(got, Err(ReasonCode::ResponseTooLarge), "a body over the cap was read");
        } else {
            let want = match parse_jsonrpc(body, ID) {
                Ok(Message::Unrelated) => Err(ReasonCode::Protocol),
                Ok(m) => Ok(m),
                Err(r) => Err(r.code),
            };
            assert_eq!(got, want, "the body read differs from the whole body parsed");
        }
    } else if body.len() <= cap && std::str::from_utf8(body).is_ok() {
        assert_eq!(Some(&got), whole_stream(body).as_ref(), "chunking changed the answer");
    }
    match got {
        Ok(Message::Result(result)) => check_result(&result),
        Ok(Message::Error(code)) => assert_ne!(code, -32023, "RateLimited read as a plain error"),
        Ok(Message::RateLimited(_)) | Err(_) => {}
        Ok(Message::Unrelated) => panic!("a request or notification taken as the reply"),
    }
});
