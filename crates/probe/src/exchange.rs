//! One JSON-RPC exchange over HTTP POST: the request with the probe's headers,
//! the HTTP status classified, and the reply read within the byte cap.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::Value;
use url::Url;

use super::jsonrpc::Message;
use super::{Ctx, Stop, body, classify, resource_metadata, retry_after};
use mcp_health_core::catalog::{self, Catalog, CatalogRead, ToolHash};
use mcp_health_core::outcome::{Reason, ServerFacts};
use mcp_health_proto::v1::ReasonCode;

/// What the server answered to one message.
#[derive(Debug)]
pub enum Answer {
    /// The result of our request.
    Result(Value),
    /// A JSON-RPC error with its code, and the HTTP status it came with (the
    /// 2026 revision answers many errors with 400 or 404 and a JSON-RPC body).
    Error { code: i64, http_status: u16 },
    /// A notification was accepted (any 2xx), or a request was accepted for
    /// an answer elsewhere (legacy SSE: 202, the reply rides the stream).
    Accepted,
}

/// An answer and the session id the server handed out with it, if any.
#[derive(Debug)]
pub struct Reply {
    pub answer: Answer,
    pub session: Option<String>,
}

/// How the reply to a message is read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The reply to request `id` is in the response body (JSON or SSE).
    Body(u64),
    /// Nothing is read: a notification, or a legacy SSE POST.
    Nothing,
}

pub const SESSION_HEADER: &str = "mcp-session-id";

/// Posts `payload` to `url` with `headers` and the probe's credential.
pub async fn post(ctx: &Ctx<'_>, url: &Url, headers: HeaderMap, payload: Vec<u8>, expect: Expect) -> Result<Reply, Stop> {
    let mut request = ctx
        .target
        .client
        .post(url.clone())
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .headers(headers)
        .body(payload);
    if let Some((name, value)) = &ctx.auth {
        request = request.header(name, value);
    }
    let mut resp = request.send().await.map_err(|e| Stop::Failed(classify::transport_error(&e)))?;
    ctx.answered(&resp);
    let status = resp.status().as_u16();
    check_status(ctx, &resp)?;
    let session = resp.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let header_wait = retry_after::from_headers(resp.headers());
    if !(200..300).contains(&status) {
        // 4xx/5xx: a JSON-RPC error body tells us more than the status alone.
        return match error_body(&mut resp, ctx.cap()).await {
            Some((retry_after::RATE_LIMITED, body_wait)) => {
                ctx.ask_to_wait(body_wait.or(header_wait));
                Err(rate_limited(status))
            }
            Some((code, _)) if status != 429 => {
                if status == 503 {
                    ctx.ask_to_wait(header_wait);
                }
                Ok(Reply {
                    answer: Answer::Error { code, http_status: status },
                    session,
                })
            }
            _ => Err(bare_status(ctx, status, header_wait)),
        };
    }
    let Expect::Body(id) = expect else {
        return Ok(Reply {
            answer: Answer::Accepted,
            session,
        });
    };
    if status == 202 {
        return Err(Stop::Failed(Reason::new(ReasonCode::Protocol, "request accepted (202) without a response")));
    }
    let answer = match body::read_reply(&mut resp, id, ctx.cap()).await? {
        Message::Result(v) => Answer::Result(v),
        Message::Error(code) => Answer::Error { code, http_status: status },
        Message::RateLimited(body_wait) => {
            ctx.ask_to_wait(body_wait.or(header_wait));
            return Err(rate_limited(status));
        }
        Message::Unrelated => return Err(Stop::Failed(Reason::new(ReasonCode::Protocol, "reply is not a response"))),
    };
    Ok(Reply { answer, session })
}

/// Stops on 3xx (never followed) and 401/403, keeping a 401's metadata URL.
pub fn check_status(ctx: &Ctx<'_>, resp: &reqwest::Response) -> Result<(), Stop> {
    let status = resp.status().as_u16();
    match status {
        401 | 403 => {
            let metadata_url = resp
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(resource_metadata::challenge_url);
            Err(Stop::Auth {
                reason: classify::http_status(status, ctx.auth.is_some()),
                metadata_url,
            })
        }
        300..=399 => Err(Stop::Failed(classify::http_status(status, ctx.auth.is_some()))),
        _ => Ok(()),
    }
}

/// The JSON-RPC error code of an error reply's JSON body, whatever its id,
/// and the wait its `data.retryAfterMs` asks for.
async fn error_body(resp: &mut reqwest::Response, cap: usize) -> Option<(i64, Option<std::time::Duration>)> {
    if body::framing(resp).ok()? != body::Framing::Json {
        return None;
    }
    let bytes = body::read_all(resp, cap.min(64 * 1024)).await.ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    let error = value.get("error")?;
    Some((error.get("code")?.as_i64()?, retry_after::from_error(error)))
}

/// A JSON-RPC -32023 answer (HTTP 429 or any other status): the MCP server
/// itself answered, so it is alive.
pub fn rate_limited(http_status: u16) -> Stop {
    let reason = if (200..300).contains(&http_status) {
        Reason::new(ReasonCode::RateLimited, "the server answered JSON-RPC error -32023 (rate limited)")
    } else {
        Reason::http(
            ReasonCode::RateLimited,
            http_status,
            format!("HTTP {http_status}: the server answered JSON-RPC error -32023 (rate limited)"),
        )
    };
    Stop::RateLimited { reason, alive: true }
}

/// A non-2xx answer without a usable JSON-RPC error: a bare 429 (a CDN or
/// proxy rate-limits the probe; the server's liveness is unproven), or a
/// failure classified by its status. A 429's or 503's `Retry-After` is kept
/// for the schedule.
pub fn bare_status(ctx: &Ctx<'_>, status: u16, header_wait: Option<std::time::Duration>) -> Stop {
    if matches!(status, 429 | 503) {
        ctx.ask_to_wait(header_wait);
    }
    if status == 429 {
        return Stop::RateLimited {
            reason: Reason::http(
                ReasonCode::RateLimited,
                429,
                "HTTP 429 without a JSON-RPC RateLimited error: rate-limited before the server; its liveness is unproven",
            ),
            alive: false,
        };
    }
    Stop::Failed(classify::http_status(status, ctx.auth.is_some()))
}

/// A JSON-RPC result field as a short display string (server names and versions).
pub fn short_text(v: Option<&Value>, key: &str) -> String {
    v.and_then(|i| i.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .take(128)
        .collect()
}

/// The number of tools in one `tools/list` page, and the cursor of the next.
pub fn tools_page(result: &Value) -> Result<(u32, Option<String>), Reason> {
    let tools = result
        .get("tools")
        .and_then(Value::as_array)
        .ok_or_else(|| Reason::new(ReasonCode::Protocol, "tools/list result has no tools array"))?;
    let cursor = result.get("nextCursor").and_then(Value::as_str).filter(|c| !c.is_empty()).map(str::to_owned);
    Ok((u32::try_from(tools.len()).unwrap_or(u32::MAX), cursor))
}

/// What one read of the tool catalog brought back.
#[derive(Debug)]
pub struct ToolsRead {
    /// Tools read (on every page read, also when the read gave up).
    pub count: u32,
    pub catalog: CatalogRead,
    /// The smallest `ttlMs` a page carried: read the catalog again no later.
    pub ttl: Option<Duration>,
}

/// The catalog being read over the pages of `tools/list`, within
/// `MAX_TOOL_PAGES` pages and `MAX_CATALOG_BYTES` of canonical JSON. Each
/// tool is hashed as its page arrives; no definition is kept.
#[derive(Debug, Default)]
pub struct CatalogPages {
    tools: Vec<ToolHash>,
    bytes: usize,
    pages: usize,
    ttl: Option<Duration>,
    gave_up: Option<String>,
}

impl CatalogPages {
    /// Takes one page's result; the cursor of the next page to ask for, or
    /// None when the catalog is read (no `nextCursor`) or a bound was reached.
    pub fn take(&mut self, result: &Value) -> Result<Option<String>, Reason> {
        let (_, cursor) = tools_page(result)?;
        self.pages += 1;
        if let Some(ms) = result.get("ttlMs").and_then(Value::as_u64) {
            let ttl = Duration::from_millis(ms);
            self.ttl = Some(self.ttl.map_or(ttl, |t| t.min(ttl)));
        }
        let tools = result.get("tools").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for tool in tools {
            match catalog::hash_tool(self.tools.len(), tool) {
                Ok((hash, bytes)) => {
                    self.tools.push(hash);
                    self.bytes = self.bytes.saturating_add(bytes);
                }
                Err(e) => {
                    self.gave_up = Some(format!("the catalog was not read whole: {e}"));
                    return Ok(None);
                }
            }
            if self.bytes > MAX_CATALOG_BYTES {
                self.gave_up = Some(format!("the catalog was not read whole: its tools exceed {} KiB", MAX_CATALOG_BYTES / 1024));
                return Ok(None);
            }
        }
        if cursor.is_some() && self.pages >= MAX_TOOL_PAGES {
            self.gave_up = Some(format!("the catalog was not read whole: tools/list has more than {MAX_TOOL_PAGES} pages"));
            return Ok(None);
        }
        Ok(cursor)
    }

    /// The read as it ended.
    pub fn finish(self) -> ToolsRead {
        let count = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
        let catalog = match self.gave_up {
            Some(why) => CatalogRead::GaveUp(why),
            None => CatalogRead::Whole(Arc::new(Catalog::from_hashes(self.tools))),
        };
        ToolsRead { count, catalog, ttl: self.ttl }
    }
}

/// The catalog of a server that does not offer the `tools` capability: empty
/// (the tool count stays unset, as before catalogs were read).
pub fn no_catalog() -> CatalogRead {
    CatalogPages::default().finish().catalog
}

impl ToolsRead {
    /// Puts the read into the probe's facts; the `ttlMs` it carried.
    pub fn into_facts(self, facts: &mut ServerFacts) -> Option<Duration> {
        facts.tool_count = Some(self.count);
        facts.catalog = Some(self.catalog);
        self.ttl
    }
}

/// Whether an `initialize` or `server/discover` result advertises the `tools`
/// capability. A probe asks `tools/list` only of servers that do.
pub fn offers_tools(result: &Value) -> bool {
    result.get("capabilities").and_then(|c| c.get("tools")).is_some_and(|t| !t.is_null())
}

/// Pages of tools/list a catalog read follows before it gives up.
pub const MAX_TOOL_PAGES: usize = 16;
/// Canonical JSON bytes of all tools a catalog read takes before it gives up.
pub const MAX_CATALOG_BYTES: usize = 4 << 20;

/// What a transport does after its handshake (the session's exchanges);
/// `handshake::finish` decides what to ask and what the answers mean.
pub trait Exchange {
    /// Tells the server the client is initialized, before the first request
    /// after the handshake (nothing for the stateless revision).
    async fn initialized(&mut self, ctx: &Ctx<'_>) -> Result<(), Stop>;

    /// Sends one request (`tools/list`, `tools/call`) with `params` on the
    /// handshake's session and reads its answer. The transport adds what its
    /// revision requires (session headers, the 2026 `_meta` envelope).
    async fn request(&mut self, ctx: &Ctx<'_>, method: &'static str, params: Value) -> Result<Answer, Stop>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Feeds `pages` to one catalog read until it asks for no further page;
    /// the pages taken, and the read.
    fn read(pages: &[Value]) -> (usize, ToolsRead) {
        let mut catalog = CatalogPages::default();
        let mut taken = 0;
        for page in pages {
            taken += 1;
            if catalog.take(page).expect("a tools page").is_none() {
                break;
            }
        }
        (taken, catalog.finish())
    }

    fn page(names: &[&str], next: Option<&str>) -> Value {
        let tools: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
        match next {
            Some(c) => json!({"tools": tools, "nextCursor": c}),
            None => json!({"tools": tools}),
        }
    }

    #[test]
    fn catalog_reads_follow_cursors_within_their_bounds() {
        // (pages offered, pages taken, tool count, gave up with a note containing)
        let seventeen: Vec<Value> = (0..17).map(|i| page(&["t"], Some(&i.to_string()))).collect();
        let huge = json!({"name": "big", "description": "x".repeat(MAX_CATALOG_BYTES)});
        let cases: Vec<(Vec<Value>, usize, u32, Option<&str>)> = vec![
            (vec![page(&["a", "b"], None)], 1, 2, None),
            (vec![page(&["a"], Some("1")), page(&["b"], Some("")), page(&["c"], None)], 2, 2, None),
            (vec![page(&["a"], Some("1")), page(&["b"], None)], 2, 2, None),
            (seventeen, MAX_TOOL_PAGES, 16, Some("more than 16 pages")),
            (vec![json!({"tools": [{"name": "a"}, huge, {"name": "c"}]})], 1, 2, Some("exceed 4096 KiB")),
            (
                vec![json!({"tools": [{"name": "a"}, {"title": "no name"}]})],
                1,
                1,
                Some("tool 1 of tools/list"),
            ),
        ];
        for (pages, want_taken, want_count, gave_up) in cases {
            let (taken, r) = read(&pages);
            assert_eq!((taken, r.count), (want_taken, want_count), "{pages:?}");
            match (&r.catalog, gave_up) {
                (CatalogRead::Whole(c), None) => assert_eq!(c.len(), want_count as usize),
                (CatalogRead::GaveUp(why), Some(part)) => assert!(why.contains(part), "{why}"),
                (got, want) => panic!("{got:?}, want gave up: {want:?}"),
            }
        }
    }

    #[test]
    fn the_smallest_ttl_of_the_pages_is_kept() {
        let mut p1 = page(&["a"], Some("1"));
        p1["ttlMs"] = json!(60_000);
        let mut p2 = page(&["b"], None);
        p2["ttlMs"] = json!(5_000);
        assert_eq!(read(&[p1.clone(), p2]).1.ttl, Some(Duration::from_secs(5)));
        assert_eq!(read(&[page(&["a"], None)]).1.ttl, None);
        let mut bad = page(&["a"], None);
        bad["ttlMs"] = json!(-1);
        assert_eq!(read(&[bad]).1.ttl, None);
    }

    #[test]
    fn a_page_without_a_tools_array_is_a_protocol_error() {
        let err = CatalogPages::default().take(&json!({"nextCursor": "x"})).unwrap_err();
        assert_eq!(err.code, ReasonCode::Protocol);
    }
}
