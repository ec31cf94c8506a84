//! Response body type: full, empty, dripped, huge (lazy), endless keepalive and channel-fed SSE.

use std::any::Any;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

/// Bytes served by [`Body::huge`]: one static block, sliced, so nothing is allocated per chunk.
static PAD: [u8; 64 * 1024] = [b'a'; 64 * 1024];
const KEEPALIVE: &[u8] = b": keepalive\n\n";
const KEEPALIVE_EVERY: Duration = Duration::from_millis(10);
const DRIP_EVERY: Duration = Duration::from_secs(1);

/// A response body. Every variant is `Unpin`, so polling needs no projection.
pub(crate) struct Body {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    /// `data[pos..]` still to send, one byte per tick.
    Drip {
        data: Bytes,
        pos: usize,
        sleep: Pin<Box<Sleep>>,
    },
    /// `prefix` first, then `remaining` bytes of padding.
    Huge {
        prefix: Option<Bytes>,
        remaining: u64,
    },
    Endless {
        sleep: Pin<Box<Sleep>>,
    },
    /// Frames from a channel (legacy SSE stream); `keepalive` also emits comments every 10 ms.
    /// `_guard` runs its `Drop` when the client goes away (e.g. unregisters the session).
    Channel {
        rx: mpsc::Receiver<Bytes>,
        keepalive: Option<Pin<Box<Sleep>>>,
        _guard: Option<Box<dyn Any + Send + Sync>>,
    },
}

impl Body {
    pub(crate) fn empty() -> Body {
        Body { kind: Kind::Full(None) }
    }

    pub(crate) fn full(b: impl Into<Bytes>) -> Body {
        let b = b.into();
        Body {
            kind: Kind::Full(if b.is_empty() { None } else { Some(b) }),
        }
    }

    pub(crate) fn drip(data: Bytes) -> Body {
        // The first byte goes out at once, then one per second.
        let sleep = Box::pin(tokio::time::sleep(Duration::ZERO));
        Body {
            kind: Kind::Drip { data, pos: 0, sleep },
        }
    }

    /// `total` bytes: `prefix` then `a` padding. Never allocates more than the prefix.
    pub(crate) fn huge(prefix: Bytes, total: u64) -> Body {
        let remaining = total.saturating_sub(prefix.len() as u64);
        let prefix = if prefix.is_empty() { None } else { Some(prefix) };
        Body {
            kind: Kind::Huge { prefix, remaining },
        }
    }

    pub(crate) fn endless() -> Body {
        Body {
            kind: Kind::Endless {
                sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            },
        }
    }

    pub(crate) fn channel(rx: mpsc::Receiver<Bytes>, keepalive: bool, guard: Option<Box<dyn Any + Send + Sync>>) -> Body {
        let keepalive = keepalive.then(|| Box::pin(tokio::time::sleep(KEEPALIVE_EVERY)));
        Body {
            kind: Kind::Channel { rx, keepalive, _guard: guard },
        }
    }
}

fn data(b: Bytes) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
    Poll::Ready(Some(Ok(Frame::data(b))))
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().kind {
            Kind::Full(b) => match b.take() {
                Some(b) => data(b),
                None => Poll::Ready(None),
            },
            Kind::Drip { data: d, pos, sleep } => {
                if *pos >= d.len() {
                    return Poll::Ready(None);
                }
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                sleep.as_mut().reset(Instant::now() + DRIP_EVERY);
                let byte = d.slice(*pos..*pos + 1);
                *pos += 1;
                data(byte)
            }
            Kind::Huge { prefix, remaining } => {
                if let Some(p) = prefix.take() {
                    return data(p);
                }
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = (*remaining).min(PAD.len() as u64) as usize;
                *remaining -= n as u64;
                data(Bytes::from_static(&PAD[..n]))
            }
            Kind::Endless { sleep } => {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                sleep.as_mut().reset(Instant::now() + KEEPALIVE_EVERY);
                data(Bytes::from_static(KEEPALIVE))
            }
            Kind::Channel { rx, keepalive, .. } => {
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(b)) => return data(b),
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => {}
                }
                if let Some(sleep) = keepalive
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    sleep.as_mut().reset(Instant::now() + KEEPALIVE_EVERY);
                    return data(Bytes::from_static(KEEPALIVE));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Drip { data, pos, .. } => *pos >= data.len(),
            Kind::Huge { prefix, remaining } => prefix.is_none() && *remaining == 0,
            Kind::Endless { .. } | Kind::Channel { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            // Exact, so the client sees a Content-Length and waits for every byte.
            Kind::Drip { data, pos, .. } => SizeHint::with_exact((data.len() - *pos) as u64),
            // Deliberately no exact hint: the body goes out chunked, with no length up front.
            Kind::Huge { .. } | Kind::Endless { .. } | Kind::Channel { .. } => SizeHint::default(),
        }
    }
}

/// Frame one SSE `message` event around a JSON payload.
pub(crate) fn sse_message(json: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(json.len() + 24);
    v.extend_from_slice(b"event: message\ndata: ");
    v.extend_from_slice(json);
    v.extend_from_slice(b"\n\n");
    Bytes::from(v)
}
