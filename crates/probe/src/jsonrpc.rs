//! JSON-RPC 2.0 framing for probes: building requests and checking that a
//! reply is the response to our request.

use serde_json::{Value, json};

use mcp_health_core::outcome::Reason;
use mcp_health_proto::v1::ReasonCode;

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A fresh request id, unique within the process, so a reply carrying another
/// probe's id is caught.
pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Encodes a notification (no id, no reply).
pub fn notification(method: &str) -> Vec<u8> {
    // Serializing a `Value` built by `json!` cannot fail.
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "method": method})).unwrap_or_default()
}

/// Encodes a request.
pub fn request(id: u64, method: &str, params: Value) -> Vec<u8> {
    // Serializing a `Value` built by `json!` cannot fail.
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).unwrap_or_default()
}

/// What one JSON-RPC message from the server turned out to be.
#[derive(Debug, PartialEq)]
pub enum Message {
    /// The response to our request: its result.
    Result(Value),
    /// The response to our request: an error, by code. The server's error text
    /// is not kept, since it is response-body content.
    Error(i64),
    /// The response to our request: error -32023 (RateLimited, SEP-3304),
    /// with the wait its `data.retryAfterMs` asks for.
    RateLimited(Option<std::time::Duration>),
    /// A request or notification from the server, which a probe skips.
    Unrelated,
}

fn protocol(message: &str) -> Reason {
    Reason::new(ReasonCode::Protocol, message)
}

/// Parses one JSON-RPC message and checks it against our request id.
pub fn parse(bytes: &[u8], id: u64) -> Result<Message, Reason> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| protocol("reply is not valid JSON"))?;
    let Value::Object(obj) = value else {
        return Err(protocol("reply is not a JSON-RPC object"));
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(protocol("reply is not JSON-RPC 2.0"));
    }
    if obj.contains_key("method") {
        return Ok(Message::Unrelated);
    }
    let id_matches = match obj.get("id") {
        Some(Value::Number(n)) => n.as_u64() == Some(id),
        Some(Value::String(s)) => s.parse::<u64>().ok() == Some(id),
        _ => false,
    };
    if !id_matches {
        return Err(protocol("reply carries another request's id"));
    }
    if let Some(error) = obj.get("error") {
        let code = error
            .get("code")
            .and_then(Value::as_i64)
            .ok_or_else(|| protocol("JSON-RPC error without a code"))?;
        if code == super::retry_after::RATE_LIMITED {
            return Ok(Message::RateLimited(super::retry_after::from_error(error)));
        }
        return Ok(Message::Error(code));
    }
    match obj.get("result") {
        Some(result @ Value::Object(_)) => Ok(Message::Result(result.clone())),
        Some(_) => Err(protocol("JSON-RPC result is not an object")),
        None => Err(protocol("JSON-RPC response has neither result nor error")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, want: Result<Message, &str>) {
        let got = parse(input.as_bytes(), 7).map_err(|r| {
            assert_eq!(r.code, ReasonCode::Protocol);
            r.message
        });
        assert_eq!(got, want.map_err(str::to_owned), "input {input}");
    }

    #[test]
    fn replies() {
        check(r#"{"jsonrpc":"2.0","id":7,"result":{"a":1}}"#, Ok(Message::Result(json!({"a":1}))));
        check(r#"{"jsonrpc":"2.0","id":"7","result":{}}"#, Ok(Message::Result(json!({}))));
        check(
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"secret detail"}}"#,
            Ok(Message::Error(-32601)),
        );
        check(
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32023,"message":"slow down","data":{"retryAfterMs":2500}}}"#,
            Ok(Message::RateLimited(Some(std::time::Duration::from_millis(2500)))),
        );
        check(
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32023,"message":"slow down"}}"#,
            Ok(Message::RateLimited(None)),
        );
        check(r#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#, Ok(Message::Unrelated));
        check(r#"{"jsonrpc":"2.0","id":8,"result":{}}"#, Err("reply carries another request's id"));
        check(r#"{"jsonrpc":"1.0","id":7,"result":{}}"#, Err("reply is not JSON-RPC 2.0"));
        check(r#"{not json"#, Err("reply is not valid JSON"));
        check(r#"[1,2]"#, Err("reply is not a JSON-RPC object"));
        check(r#"{"jsonrpc":"2.0","id":7}"#, Err("JSON-RPC response has neither result nor error"));
        check(r#"{"jsonrpc":"2.0","id":7,"result":3}"#, Err("JSON-RPC result is not an object"));
    }

    #[test]
    fn invalid_utf8_is_a_protocol_error() {
        let r = parse(&[0xff, 0xfe, b'{'], 7).unwrap_err();
        assert_eq!(r.code, ReasonCode::Protocol);
    }
}
