//! Bounded reading of a probe reply, as a JSON body or as an SSE stream that
//! carries the JSON-RPC response. Every byte read counts against one cap.

use crate::classify;
use crate::jsonrpc::{self, Message};
use crate::sse::{SseEvent, SseParser};
use mcp_health_core::outcome::Reason;
use mcp_health_proto::v1::ReasonCode;

/// How a reply's body is framed, from its Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Json,
    EventStream,
}

pub fn framing(resp: &reqwest::Response) -> Result<Framing, Reason> {
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    match essence {
        "application/json" => Ok(Framing::Json),
        "text/event-stream" => Ok(Framing::EventStream),
        "" => Err(Reason::new(ReasonCode::Protocol, "reply has no content type")),
        _ => Err(Reason::new(ReasonCode::Protocol, "reply has an unexpected content type")),
    }
}

fn too_large(cap: usize) -> Reason {
    Reason::new(ReasonCode::ResponseTooLarge, format!("reply exceeds {cap} bytes"))
}

async fn next_chunk(resp: &mut reqwest::Response) -> Result<Option<bytes::Bytes>, Reason> {
    resp.chunk().await.map_err(|e| classify::transport_error(&e))
}

/// Reads a whole body, failing as soon as it exceeds `cap` bytes.
pub async fn read_all(resp: &mut reqwest::Response, cap: usize) -> Result<Vec<u8>, Reason> {
    let mut body = Vec::new();
    while let Some(chunk) = next_chunk(resp).await? {
        if body.len() + chunk.len() > cap {
            return Err(too_large(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads the reply to request `id`, whichever framing it uses.
pub async fn read_reply(resp: &mut reqwest::Response, id: u64, cap: usize) -> Result<Message, Reason> {
    match framing(resp)? {
        Framing::Json => {
            let body = read_all(resp, cap).await?;
            match jsonrpc::parse(&body, id)? {
                Message::Unrelated => Err(Reason::new(ReasonCode::Protocol, "reply is not a response")),
                m => Ok(m),
            }
        }
        Framing::EventStream => EventReader::new(cap).response(resp, id).await,
    }
}

/// Reads SSE events from a response, counting bytes against a cap.
pub struct EventReader {
    parser: SseParser,
    pending: std::collections::VecDeque<SseEvent>,
    read: usize,
    cap: usize,
}

impl EventReader {
    pub fn new(cap: usize) -> Self {
        EventReader {
            parser: SseParser::default(),
            pending: Default::default(),
            read: 0,
            cap,
        }
    }

    /// The next event, or None when the stream ends.
    pub async fn next(&mut self, resp: &mut reqwest::Response) -> Result<Option<SseEvent>, Reason> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            let Some(chunk) = next_chunk(resp).await? else { return Ok(None) };
            self.read += chunk.len();
            if self.read > self.cap {
                return Err(too_large(self.cap));
            }
            let mut out = Vec::new();
            self.parser
                .push(&chunk, &mut out)
                .map_err(|e| Reason::new(ReasonCode::Protocol, e.to_string()))?;
            self.pending.extend(out);
        }
    }

    /// Reads events until the response to request `id`. Everything else is
    /// skipped: events of other types, events with empty data (the TypeScript
    /// SDK's resumability priming event, as its own client skips them), and
    /// JSON-RPC requests and notifications from the server (progress, logs,
    /// `ping`, `roots/list`, elicitation). A stream that ends first is a
    /// protocol failure.
    pub async fn response(&mut self, resp: &mut reqwest::Response, id: u64) -> Result<Message, Reason> {
        loop {
            let Some(event) = self.next(resp).await? else {
                return Err(Reason::new(ReasonCode::Protocol, "event stream ended without the response"));
            };
            if event.event != "message" || event.data.is_empty() {
                continue;
            }
            match jsonrpc::parse(event.data.as_bytes(), id)? {
                Message::Unrelated => continue,
                m => return Ok(m),
            }
        }
    }
}
