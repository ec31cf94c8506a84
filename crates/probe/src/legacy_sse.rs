//! The legacy HTTP+SSE transport (2024-11-05): GET the SSE URL, require the
//! `endpoint` event first, POST `initialize` (and, at depth TOOLS,
//! `notifications/initialized` and `tools/list`) to that endpoint, and read
//! each reply from the stream. A GET that answers 200 and nothing else is not
//! healthy. The stream is closed when the probe ends (dropping it).

use http::HeaderMap;
use reqwest::header::ACCEPT;
use serde_json::Value;
use url::Url;

use super::body::{self, EventReader, Framing};
use super::exchange::Exchange;
use super::exchange::{self, Answer, Expect};
use super::handshake::{self, Handshake};
use super::jsonrpc::{self, Message};
use super::streamable::rpc_failure;
use super::{Ctx, Ready, Stop, classify, retry_after};
use mcp_health_core::outcome::Reason;
use mcp_health_proto::v1::ReasonCode;

/// The revision of the HTTP+SSE transport, offered unless the backend pins another.
pub const LEGACY_REVISION: &str = "2024-11-05";

fn protocol(message: impl Into<String>) -> Stop {
    Stop::Failed(Reason::new(ReasonCode::Protocol, message))
}

/// The open event stream and its reader.
struct Stream {
    resp: reqwest::Response,
    events: EventReader,
}

impl Stream {
    /// Reads events until the response to `id` (see `EventReader::response`).
    async fn response(&mut self, id: u64) -> Result<Message, Stop> {
        Ok(self.events.response(&mut self.resp, id).await?)
    }

    /// POSTs a request to the endpoint and reads its reply from the stream.
    async fn call(&mut self, ctx: &Ctx<'_>, endpoint: &Url, method: &str, params: Value) -> Result<Message, Stop> {
        let id = jsonrpc::next_id();
        match exchange::post(ctx, endpoint, HeaderMap::new(), jsonrpc::request(id, method, params), Expect::Nothing)
            .await?
            .answer
        {
            Answer::Error { code, http_status } => Err(Stop::Failed(rpc_failure(method, code, http_status))),
            Answer::Result(_) | Answer::Accepted => match self.response(id).await? {
                // The reply rides the stream, which answered 200.
                Message::RateLimited(wait) => {
                    ctx.ask_to_wait(wait);
                    Err(exchange::rate_limited(200))
                }
                m => Ok(m),
            },
        }
    }
}

pub async fn probe(ctx: &Ctx<'_>) -> Result<Ready, Stop> {
    let sse_url = &ctx.backend().url;
    let mut request = ctx.target.client.get(sse_url.clone()).header(ACCEPT, "text/event-stream");
    if let Some((name, value)) = &ctx.auth {
        request = request.header(name, value);
    }
    let resp = request.send().await.map_err(|e| Stop::Failed(classify::transport_error(&e)))?;
    ctx.answered(&resp);
    exchange::check_status(ctx, &resp)?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(exchange::bare_status(ctx, status, retry_after::from_headers(resp.headers())));
    }
    if body::framing(&resp)? != Framing::EventStream {
        return Err(protocol("the SSE URL did not answer with an event stream"));
    }
    let mut stream = Stream {
        resp,
        events: EventReader::new(ctx.cap()),
    };
    // The first event with data must be the endpoint; empty-data events
    // (keep-alive or priming) before it are skipped.
    let first = loop {
        match stream.events.next(&mut stream.resp).await? {
            Some(event) if event.data.is_empty() => continue,
            Some(event) => break event,
            None => return Err(protocol("event stream ended before the endpoint event")),
        }
    };
    if first.event != "endpoint" {
        return Err(protocol("the first event is not the endpoint event"));
    }
    let endpoint = endpoint_url(sse_url, first.data.as_bytes())?;

    let pinned = ctx.backend().pinned_revision.as_deref();
    let offer = pinned.unwrap_or(LEGACY_REVISION);
    let result = match stream.call(ctx, &endpoint, "initialize", handshake::initialize_params(offer)).await? {
        Message::Result(r) => r,
        Message::Error(code) => return Err(Stop::Failed(rpc_failure("initialize", code, 200))),
        Message::Unrelated | Message::RateLimited(_) => return Err(protocol("initialize got no response")),
    };
    let version = handshake::negotiated(&result, offer, pinned.is_some())?;
    let handshake = Handshake::new(&version, result.get("serverInfo"), &result);
    handshake::finish(ctx, &mut OnStream { stream, endpoint }, handshake).await
}

/// The exchange after `initialize`: POSTs to the endpoint, each reply read
/// from the open stream.
struct OnStream {
    stream: Stream,
    endpoint: Url,
}

impl Exchange for OnStream {
    async fn initialized(&mut self, ctx: &Ctx<'_>) -> Result<(), Stop> {
        let note = jsonrpc::notification("notifications/initialized");
        match exchange::post(ctx, &self.endpoint, HeaderMap::new(), note, Expect::Nothing).await?.answer {
            Answer::Error { code, http_status } => Err(Stop::Failed(rpc_failure("notifications/initialized", code, http_status))),
            Answer::Result(_) | Answer::Accepted => Ok(()),
        }
    }

    async fn request(&mut self, ctx: &Ctx<'_>, method: &'static str, params: Value) -> Result<Answer, Stop> {
        Ok(match self.stream.call(ctx, &self.endpoint, method, params).await? {
            Message::Result(r) => Answer::Result(r),
            // The reply rides the stream, which answered 200.
            Message::Error(code) => Answer::Error { code, http_status: 200 },
            // `Stream::call` turns RateLimited into a stop; no response is no answer.
            Message::Unrelated | Message::RateLimited(_) => Answer::Accepted,
        })
    }
}

/// Resolves the endpoint event's URL against the SSE URL. An endpoint on
/// another origin is refused: the probe never sends its request (or its
/// credential) anywhere the backend's spec did not name.
fn endpoint_url(sse_url: &Url, data: &[u8]) -> Result<Url, Stop> {
    let text = std::str::from_utf8(data).map_err(|_| protocol("the endpoint event is not UTF-8"))?.trim();
    if text.is_empty() {
        return Err(protocol("the endpoint event is empty"));
    }
    let url = sse_url.join(text).map_err(|_| protocol("the endpoint event is not a URL"))?;
    if url.origin() != sse_url.origin() {
        return Err(protocol("the endpoint event names another origin"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let base = Url::parse("http://127.0.0.1:8000/app/sse").unwrap();
        let ok = |d: &str| endpoint_url(&base, d.as_bytes()).map(|u| u.to_string()).map_err(|_| ());
        assert_eq!(ok("/messages/?session_id=ab"), Ok("http://127.0.0.1:8000/messages/?session_id=ab".to_owned()));
        assert_eq!(ok("messages?s=1"), Ok("http://127.0.0.1:8000/app/messages?s=1".to_owned()));
        assert_eq!(ok(" http://127.0.0.1:8000/m \r"), Ok("http://127.0.0.1:8000/m".to_owned()));
        assert_eq!(ok("http://127.0.0.1:9000/m"), Err(()));
        assert_eq!(ok("https://127.0.0.1:8000/m"), Err(()));
        assert_eq!(ok("//evil.example/m"), Err(()));
        assert_eq!(ok(""), Err(()));
        assert!(endpoint_url(&base, &[0xff, 0xfe]).is_err());
    }
}
