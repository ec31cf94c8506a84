//! Differential fuzzing of mcp-health's SSE parser (crates/probe/src/sse.rs) against
//! the `eventsource-stream` crate as an oracle, both fed the same chunks.
//! The first input byte picks the chunk size (0: one chunk); the rest is the
//! stream. For valid UTF-8 both must dispatch the same events (type, data,
//! last event id); our parser must also give the same events however the
//! stream is chunked. Invalid UTF-8 must never panic.
//!
//! One known difference is normalized away: at the very end of a stream, the
//! oracle's streaming line parser waits for an LF after a final CR, so a final
//! CR never ends a line there, while the standard says it does. Inputs ending
//! in CR get an LF appended (CRLF is the same single line end for both).
//! And the oracle panics on a leading BOM (it slices `[1..]` inside the
//! 3-byte U+FEFF), so the oracle gets the stream without it (and streams
//! with a second BOM are not compared); ours gets it.
#![no_main]

use futures::StreamExt;
use libfuzzer_sys::fuzz_target;
use mcp_health::probe::sse::{SseEvent, SseParser};

type Seen = Vec<(String, String, String)>;

fn ours(chunks: &[&[u8]]) -> Option<Seen> {
    let mut p = SseParser::default();
    let mut out: Vec<SseEvent> = Vec::new();
    for c in chunks {
        p.push(c, &mut out).ok()?;
    }
    Some(out.into_iter().map(|e| (e.event, e.data, e.id)).collect())
}

fn oracle(chunks: &[&[u8]]) -> Option<Seen> {
    let owned: Vec<Result<Vec<u8>, std::convert::Infallible>> = chunks.iter().map(|c| Ok(c.to_vec())).collect();
    let events = eventsource_stream::EventStream::new(futures::stream::iter(owned));
    futures::executor::block_on(async {
        let mut seen = Vec::new();
        futures::pin_mut!(events);
        while let Some(e) = events.next().await {
            let e = e.ok()?;
            seen.push((e.event, e.data, e.id));
        }
        Some(seen)
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&size, stream)) = input.split_first() else { return };
    let mut stream = stream.to_vec();
    if stream.last() == Some(&b'\r') {
        stream.push(b'\n');
    }
    let chunks: Vec<&[u8]> = if size == 0 {
        vec![&stream[..]]
    } else {
        stream.chunks(usize::from(size)).collect()
    };
    let got = ours(&chunks);
    if std::str::from_utf8(&stream).is_err() {
        return; // no panic is all we ask of invalid UTF-8
    }
    let got = got.expect("valid UTF-8 is never an error");
    assert_eq!(Some(&got), ours(&[&stream[..]]).as_ref(), "chunking changed the events");
    let bare = stream.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&stream);
    if bare.starts_with("\u{feff}".as_bytes()) {
        return; // a second BOM: the oracle would panic again
    }
    let bare_chunks: Vec<&[u8]> = if size == 0 { vec![bare] } else { bare.chunks(usize::from(size)).collect() };
    assert_eq!(Some(got), oracle(&bare_chunks), "differs from eventsource-stream");
});
