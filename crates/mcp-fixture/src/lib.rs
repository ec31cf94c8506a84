//! mcp-fixture: a controllable, real MCP server on loopback for tests, benchmarks and demos.
//!
//! One [`FixtureServer`] listens on `127.0.0.1` and answers MCP requests on *every* path
//! (so a benchmark can point thousands of "servers" at one process). Each path follows the
//! server-wide [`Behavior`] unless [`FixtureServer::set_path_behavior`] overrides it.
//!
//! Module map (one concern each):
//! - `server`: the public handle, listener, accept loop, stop/resume.
//! - `router`: per-request dispatch for Streamable HTTP (methods, paths, Accept).
//! - `exchange`: what every transport's request shares (delay, hang and auth gates; the
//!   handshake-era methods; the method counters).
//! - `jsonrpc`: request parsing and pre-rendered JSON-RPC replies.
//! - `reply`: HTTP responses and the reply-shaping behaviours.
//! - `modern`: the 2026-07-28 stateless flavour (`server/discover`, `_meta` envelope).
//! - `legacy`: the 2024-11-05 HTTP+SSE flavour (`GET /sse` + `POST /messages`).
//! - `sessions`: the legacy flavour's open streams by session id.
//! - `body`: the response body type (full, streamed, drip, huge, endless, channel).
//! - `state`: shared state, behaviour table and atomic stats.
//! - `dnsmasq`: a real DNS server (dnsmasq) on loopback, answering from a hosts file.
//! - `tls`: a TLS front (ingress-like terminator) counting full and resumed handshakes.
//!
//! See `PROTOCOL_NOTES.md` next to this crate's `Cargo.toml` for the wire formats.

mod body;
pub mod dnsmasq;
mod exchange;
mod jsonrpc;
mod legacy;
mod modern;
mod oauth;
mod reply;
mod router;
mod server;
mod sessions;
mod state;
pub mod tls;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

pub use oauth::{AssertionKey, AuthServerMetadata, OAuthClient, TOKEN_PATH};
pub use server::FixtureServer;

/// Protocol revisions an `initialize` handshake may negotiate to (echoed when requested).
pub const HANDSHAKE_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
/// The stateless revision answered by `server/discover`.
pub const MODERN_VERSION: &str = "2026-07-28";

/// One request as the server received it: when, from which source address,
/// and what (method and path). The request log is how a test tells which
/// client (e.g. which replica, by its source address) probed the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub at: std::time::Instant,
    /// The client's address (`None` if the socket could not say).
    pub peer: Option<std::net::SocketAddr>,
    pub method: String,
    pub path: String,
}

/// Snapshot of the server's counters (see [`FixtureServer::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// TCP connections accepted.
    pub connections: u64,
    /// Connections that carried more than one HTTP request (keep-alive reuse).
    pub reused_connections: u64,
    /// `initialize` requests received (any flavour, any behaviour).
    pub initialize: u64,
    /// `server/discover` requests received.
    pub discover: u64,
    /// `tools/list` requests received.
    pub tools_list: u64,
    /// GET requests to MCP endpoints (not counting `/.well-known/...`).
    pub get_requests: u64,
    /// DELETE requests.
    pub delete_requests: u64,
    /// POST requests (requests and notifications).
    pub posts: u64,
    /// JSON-RPC notifications received (answered 202).
    pub notifications: u64,
    /// GETs of the RFC 9728 protected-resource metadata document.
    pub metadata_requests: u64,
    /// Requests to the OAuth token endpoint ([`TOKEN_PATH`]).
    pub token_requests: u64,
    /// Requests for the authorization server metadata (either well-known URL).
    pub auth_server_metadata_requests: u64,
    /// Connections currently open (gauge, not a counter).
    pub open_connections: u64,
    /// Bytes read from and written to plain-TCP connections (HTTP/1 on the
    /// wire: request and status lines, headers, bodies), e.g. for the bytes a
    /// probe costs (benches/scale scenario 10).
    pub bytes_received: u64,
    pub bytes_sent: u64,
}

/// How a path answers. Set server-wide with [`FixtureServer::set_behavior`] or per path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// Answer correctly.
    Healthy,
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// Answer 401; with `resource_metadata`, the `WWW-Authenticate` header points at a valid
    /// RFC 9728 document served at `/.well-known/oauth-protected-resource`.
    Unauthorized { resource_metadata: bool },
    /// 401 advertising `resource_metadata`, but the metadata document is garbage.
    InvalidResourceMetadata,
    /// 403.
    Forbidden,
    /// This HTTP status with a small text body.
    Status(u16),
    /// This HTTP status with a small text body and `Retry-After: <retry_after>`
    /// (a bare 429 from a CDN or proxy, or a 503 asking for a pause).
    StatusRetryAfter { status: u16, retry_after: String },
    /// Every request (not notifications) gets JSON-RPC error -32023
    /// (RateLimited, SEP-3304) carrying its id, on HTTP status `http` (429 or
    /// 200), with `data.retryAfterMs` when set and a `Retry-After` header when set.
    RateLimited {
        http: u16,
        retry_after: Option<String>,
        retry_after_ms: Option<u64>,
    },
    /// Read the request, never answer; the request is dropped when the client goes away.
    Hang,
    /// 307 to `/redirected{path}` on the same server, which always answers healthily
    /// (unless that exact path has its own override).
    Redirect,
    /// 200 with a JSON-RPC error `-32603 "boom"` carrying the request's id.
    JsonRpcError,
    /// A valid result carrying another request's id.
    WrongId,
    /// 200 `application/json` body `{not json`.
    InvalidJson,
    /// 200 `application/json` body that is not UTF-8.
    InvalidUtf8,
    /// `initialize` result without `protocolVersion` (discover: without `supportedVersions`).
    MissingProtocolVersion,
    /// 200 `text/html`.
    WrongContentType,
    /// 200 `text/event-stream` with unrelated events and comments, then the stream closes.
    SseWithoutResponse,
    /// 200 `text/event-stream` sending `: keepalive` comments every 10 ms, forever.
    EndlessStream,
    /// 200 `application/json`, the correct body sent one byte per second.
    Drip,
    /// 200 `application/json` (chunked), this many bytes streamed lazily, never allocated.
    HugeBody(u64),
    /// `initialize` answers, `tools/list` returns a JSON-RPC error.
    ToolsListError,
    /// `initialize` answers, `tools/list` never does.
    ToolsListHang,
    /// `initialize` and `tools/list` answer, every `tools/call` gets JSON-RPC
    /// error -32603 (a tool whose upstream failed: what real traffic sees and
    /// a handshake probe does not).
    ToolsCallError,
    /// `initialize` and `tools/list` answer, every `tools/call` gets this bare
    /// HTTP status with a plain-text body (Streamable HTTP only): a gateway or
    /// upstream in front of the tools failing, which an access log sees.
    ToolsCallStatus(u16),
    /// Legacy SSE: the endpoint event is sent, POSTs get 202, the reply never arrives.
    /// Streamable HTTP: requests get `202 Accepted` with no body (the reply never arrives).
    EndpointOnly,
}

/// Shape of successful JSON-RPC replies on Streamable HTTP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplyFormat {
    /// `application/json` body.
    #[default]
    Json,
    /// `text/event-stream` body: `event: message\ndata: {json}\n\n`, then the stream ends.
    Sse,
}

/// Which protocol generation the server speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Streamable HTTP with the `initialize` handshake. The reply's `protocolVersion` is the
    /// client's requested one if it is in [`HANDSHAKE_VERSIONS`], else `version`.
    Handshake { version: String },
    /// 2026-07-28 stateless: `server/discover`; `initialize` gets JSON-RPC `-32601`;
    /// no sessions; GET and DELETE get 405.
    Discover,
    /// Both: requests whose `MCP-Protocol-Version` header names a non-handshake revision take
    /// the stateless path (as the Python SDK routes), everything else the handshake path.
    Both,
    /// 2024-11-05 HTTP+SSE: `GET` opens the stream (endpoint event), `POST /messages?session_id=`.
    LegacySse,
}

impl Default for Flavor {
    fn default() -> Self {
        Flavor::Handshake {
            version: "2025-06-18".to_owned(),
        }
    }
}

/// Start-up options. Build with `FixtureOptions { field: .., ..Default::default() }`.
#[derive(Clone, Debug)]
pub struct FixtureOptions {
    pub reply: ReplyFormat,
    pub flavor: Flavor,
    /// Return `Mcp-Session-Id` on `initialize`; DELETE with it answers 200 (or 405 with
    /// `delete_405`). GET always answers 405. Default true.
    pub session_ids: bool,
    pub delete_405: bool,
    /// When set, requests without `Authorization: Bearer <tok>` get 401 with resource metadata.
    pub required_bearer: Option<String>,
    /// `serverInfo.name`. Default `"mcp-fixture"`.
    pub server_name: String,
    /// Number of tools `tools/list` returns. Default 2.
    pub tools: usize,
    /// Stateless path: enforce the Python SDK's validation ladder (`_meta` envelope, then
    /// `MCP-Protocol-Version`/`Mcp-Method` headers matching the body, then a supported
    /// version). Default true. False answers any well-formed `server/discover`.
    pub strict_modern: bool,
    /// Serve an OAuth 2.0 client-credentials token endpoint at [`TOKEN_PATH`] that issues
    /// `required_bearer` (or `"fixture-token"`) to this client. Default none (404).
    pub oauth_client: Option<OAuthClient>,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        FixtureOptions {
            reply: ReplyFormat::Json,
            flavor: Flavor::default(),
            session_ids: true,
            delete_405: false,
            required_bearer: None,
            server_name: "mcp-fixture".to_owned(),
            tools: 2,
            strict_modern: true,
            oauth_client: None,
        }
    }
}

/// Bind `127.0.0.1:0`, drop the listener, return the address: nothing listens there now
/// (until something else grabs the port), which start-up-race tests need.
pub fn reserve_port() -> SocketAddr {
    // A test helper: binding an ephemeral loopback port only fails on an exhausted or broken
    // host, where no test could run anyway.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr of a bound listener")
}
