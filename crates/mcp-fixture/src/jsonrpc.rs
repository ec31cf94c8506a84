//! JSON-RPC: borrowed request parsing and pre-rendered result bodies (the hot path).

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{FixtureOptions, Flavor, HANDSHAKE_VERSIONS, MODERN_VERSION};

pub(crate) const PARSE_ERROR: i64 = -32700;
pub(crate) const INVALID_REQUEST: i64 = -32600;
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
pub(crate) const INVALID_PARAMS: i64 = -32602;
pub(crate) const INTERNAL_ERROR: i64 = -32603;
pub(crate) const HEADER_MISMATCH: i64 = -32020;
pub(crate) const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// The draft RateLimited error (SEP-3304).
pub(crate) const RATE_LIMITED: i64 = -32023;

/// The legacy HTTP+SSE revision.
pub(crate) const LEGACY_VERSION: &str = "2024-11-05";

/// A JSON-RPC message as posted. `id: None` means notification.
#[derive(Deserialize)]
pub(crate) struct Request<'a> {
    #[serde(borrow, default)]
    pub method: Option<Cow<'a, str>>,
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(borrow, default)]
    pub params: Option<Params<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct Params<'a> {
    #[serde(borrow, default, rename = "protocolVersion")]
    pub protocol_version: Option<Cow<'a, str>>,
    #[serde(default, rename = "_meta")]
    pub meta: Option<Value>,
}

impl Request<'_> {
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }

    pub fn requested_version(&self) -> Option<&str> {
        self.params.as_ref()?.protocol_version.as_deref()
    }
}

/// What a method handler decided, before behaviours shape it into bytes.
pub(crate) enum Outcome {
    /// The `result` member, already rendered.
    Result(Bytes),
    Error {
        http: u16,
        code: i64,
        message: &'static str,
        data: Option<Value>,
    },
}

impl Outcome {
    pub fn error(http: u16, code: i64, message: &'static str) -> Outcome {
        Outcome::Error {
            http,
            code,
            message,
            data: None,
        }
    }
}

/// `{"jsonrpc":"2.0","id":<id>,"result":<result>}` without re-serialising the result.
pub(crate) fn response(id: &Value, result: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(48 + result.len());
    v.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    write_id(&mut v, id);
    v.extend_from_slice(b",\"result\":");
    v.extend_from_slice(result);
    v.push(b'}');
    Bytes::from(v)
}

fn write_id(v: &mut Vec<u8>, id: &Value) {
    match id {
        Value::Number(n) => v.extend_from_slice(n.to_string().as_bytes()),
        // Serialising a `Value` into a Vec cannot fail: no I/O, and every map key is a string.
        other => serde_json::to_writer(&mut *v, other).expect("serialise JSON value"),
    }
}

pub(crate) fn error(id: Option<&Value>, code: i64, message: &str, data: Option<&Value>) -> Bytes {
    let mut err = json!({ "code": code, "message": message });
    if let Some(d) = data {
        err["data"] = d.clone();
    }
    let body = json!({ "jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": err });
    Bytes::from(body.to_string())
}

/// An id no request of this client carries (for [`crate::Behavior::WrongId`]).
pub(crate) fn wrong_id(id: &Value) -> Value {
    match id {
        Value::Number(n) => json!(n.as_i64().unwrap_or(0).wrapping_add(1000)),
        Value::String(s) => Value::String(format!("{s}-not-yours")),
        _ => json!(424242),
    }
}

/// Result bodies rendered once per server, so a healthy reply is one memcpy.
pub(crate) struct Prebuilt {
    /// `(version, initialize result)` for every version the handshake may answer with.
    init: Vec<(String, Bytes)>,
    /// Index into `init` used when the requested version is not echoed.
    fallback: usize,
    /// Versions echoed back when requested.
    echo: Vec<&'static str>,
    pub init_missing_version: Bytes,
    pub tools: Bytes,
    pub tools_modern: Bytes,
    pub discover: Bytes,
    pub discover_missing_versions: Bytes,
    pub empty: Bytes,
    pub empty_modern: Bytes,
}

impl Prebuilt {
    pub fn new(opts: &FixtureOptions) -> Prebuilt {
        let server_info = json!({ "name": opts.server_name, "version": "1.2.3" });
        let (fallback_version, mut echo): (&str, Vec<&'static str>) = match &opts.flavor {
            Flavor::Handshake { version } => (version.as_str(), HANDSHAKE_VERSIONS.to_vec()),
            Flavor::LegacySse => (LEGACY_VERSION, vec![]),
            Flavor::Discover | Flavor::Both => (HANDSHAKE_VERSIONS[2], HANDSHAKE_VERSIONS.to_vec()),
        };
        if opts.flavor == Flavor::LegacySse {
            echo.push(LEGACY_VERSION);
            echo.extend(HANDSHAKE_VERSIONS);
        }
        let init_body = |v: Option<&str>| {
            let mut r = json!({
                "capabilities": { "tools": {} },
                "serverInfo": server_info,
            });
            if let Some(v) = v {
                r["protocolVersion"] = json!(v);
            }
            Bytes::from(r.to_string())
        };
        let mut init: Vec<(String, Bytes)> = echo.iter().map(|v| (v.to_string(), init_body(Some(v)))).collect();
        let fallback = match init.iter().position(|(v, _)| v == fallback_version) {
            Some(i) => i,
            None => {
                init.push((fallback_version.to_owned(), init_body(Some(fallback_version))));
                init.len() - 1
            }
        };
        let tools: Vec<Value> = (0..opts.tools)
            .map(|i| json!({ "name": format!("t{i}"), "inputSchema": { "type": "object" } }))
            .collect();
        let modern_meta = json!({ "io.modelcontextprotocol/serverInfo": server_info });
        let modern = |mut r: Value| {
            r["resultType"] = json!("complete");
            r["_meta"] = modern_meta.clone();
            Bytes::from(r.to_string())
        };
        let discover = json!({
            "supportedVersions": [MODERN_VERSION],
            "capabilities": { "tools": { "listChanged": false } },
            "ttlMs": 0,
            "cacheScope": "private",
        });
        let mut discover_missing = discover.clone();
        if let Some(o) = discover_missing.as_object_mut() {
            o.remove("supportedVersions");
        }
        Prebuilt {
            init,
            fallback,
            echo,
            init_missing_version: init_body(None),
            tools: Bytes::from(json!({ "tools": tools }).to_string()),
            tools_modern: modern(json!({ "tools": tools, "ttlMs": 0, "cacheScope": "private" })),
            discover: modern(discover),
            discover_missing_versions: modern(discover_missing),
            empty: Bytes::from_static(b"{}"),
            empty_modern: modern(json!({})),
        }
    }

    /// The initialize result for a requested version (echoed if known, else the fallback).
    pub fn init_for(&self, requested: Option<&str>) -> &Bytes {
        if let Some(req) = requested
            && self.echo.contains(&req)
            && let Some((_, b)) = self.init.iter().find(|(v, _)| v == req)
        {
            return b;
        }
        &self.init[self.fallback].1
    }
}
