//! An incremental Server-Sent Events parser over raw byte chunks, following
//! WHATWG HTML "event stream interpretation" (§9.2.6) to the letter.
//!
//! Hand-written rather than taken from a crate because the prober must account
//! for every byte it buffers (the caller caps the total) and must treat invalid
//! UTF-8 as a protocol error rather than decode it lossily as a browser does.
//! That is the one deliberate difference from the standard. The parser is
//! fuzzed against the `eventsource-stream` crate as an oracle (fuzz/).
//!
//! What the standard says, and this parser does:
//! - one leading U+FEFF BOM is dropped; lines end in CRLF, LF or CR (a CR at
//!   the end of one chunk and an LF at the start of the next are one CRLF);
//! - a blank line dispatches; a line starting with `:` is a comment; `field:
//!   value` drops one leading space of the value; a line without `:` is a
//!   field with an empty value;
//! - `data` appends the value and an LF to the data buffer; `event` sets the
//!   type; `id` sets the last event id unless the value contains NUL (the id
//!   is *not* reset by a dispatch); `retry` sets the reconnection time when the
//!   value is ASCII digits only; other fields are ignored;
//! - dispatch: when the data buffer is empty (no `data` field at all: an
//!   id-only or retry-only block) nothing is dispatched; otherwise one trailing
//!   LF is removed, so a single empty `data:` line dispatches an event with
//!   data "" (the TypeScript SDK's resumability priming event is such an
//!   event: readers skip empty-data events, as that SDK's own client does);
//! - at the end of the stream, an event not closed by a blank line is dropped.

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type; "message" when no `event` field set one.
    pub event: String,
    /// The `data` values joined with LF.
    pub data: String,
    /// The last event id at dispatch time (sticky across events).
    pub id: String,
}

/// The stream is not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event stream is not valid UTF-8")]
pub struct InvalidUtf8;

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended a line with CR: an LF right after it belongs to it.
    after_cr: bool,
    /// No line has ended yet (a BOM may lead the first one).
    started: bool,
    event_type: String,
    data: String,
    last_id: String,
    retry: Option<u64>,
}

const BOM: &[u8] = "\u{feff}".as_bytes();

impl SseParser {
    /// The reconnection time the stream last asked for, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Feeds a chunk and appends every event it completes to `out`. Invalid
    /// UTF-8 in a completed line is an error; the parser must not be used after one.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), InvalidUtf8> {
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        while let Some(i) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..i]);
            let is_cr = rest[i] == b'\r';
            rest = &rest[i + 1..];
            if is_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            let mut line = std::mem::take(&mut self.line);
            let result = self.line_done(&line, out);
            line.clear();
            self.line = line;
            result?;
        }
        self.line.extend_from_slice(rest);
        Ok(())
    }

    fn line_done(&mut self, raw: &[u8], out: &mut Vec<SseEvent>) -> Result<(), InvalidUtf8> {
        let raw = if self.started { raw } else { raw.strip_prefix(BOM).unwrap_or(raw) };
        self.started = true;
        let line = std::str::from_utf8(raw).map_err(|_| InvalidUtf8)?;
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(()); // a comment, e.g. a keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event_type),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => value.clone_into(&mut self.last_id),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // Digits only: a parse can fail only by overflow, which saturates.
                self.retry = Some(value.parse().unwrap_or(u64::MAX));
            }
            _ => {} // unknown fields are ignored
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let event = std::mem::take(&mut self.event_type);
        out.push(SseEvent {
            event: if event.is_empty() { "message".to_owned() } else { event },
            data,
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, InvalidUtf8> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out)?;
        }
        Ok(out)
    }

    /// (event type, data, last event id) of every dispatched event.
    #[track_caller]
    fn check(chunks: &[&[u8]], want: &[(&str, &str, &str)]) {
        let got: Vec<(String, String, String)> = run(chunks).unwrap().into_iter().map(|e| (e.event, e.data, e.id)).collect();
        let want: Vec<(String, String, String)> = want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
        assert_eq!(got, want, "chunks {chunks:?}");
        // Whatever the chunking, the same events: feed the bytes one at a time too.
        let all: Vec<u8> = chunks.concat();
        let singles: Vec<&[u8]> = all.chunks(1).collect();
        let got1: Vec<(String, String, String)> = run(&singles).unwrap().into_iter().map(|e| (e.event, e.data, e.id)).collect();
        assert_eq!(got1, want, "byte by byte {all:?}");
    }

    /// The examples of WHATWG HTML §9.2.6 ("event stream interpretation")
    /// and §9.2.4, with the events the standard says a browser dispatches.
    #[test]
    fn the_standards_examples() {
        // "The following event stream, once followed by a blank line: ... would
        // cause an event message with the interface MessageEvent to be
        // dispatched on the EventSource object. The event's data attribute
        // would contain the string "YHOO\n+2\n10"."
        check(&[b"data: YHOO\ndata: +2\ndata: 10\n\n"], &[("message", "YHOO\n+2\n10", "")]);
        // "The following stream contains four blocks. The first block has just
        // a comment, and will fire nothing. The second block has two fields
        // with names "data" and "id" respectively; an event will be fired for
        // this block, with the data "first event", and will then set the last
        // event ID to "1" ... The third block fires an event with data "second
        // event", and also has an "id" field, this time with no value, which
        // resets the last event ID to the empty string ... The fourth block
        // has only one line, which fires an event with the data " third
        // event" (with a single leading space)."
        check(
            &[b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"],
            &[
                ("message", "first event", "1"),
                ("message", "second event", ""),
                ("message", " third event", ""),
            ],
        );
        // "The following stream fires two events: ... The first block fires
        // events with the data set to the empty string, as would the last
        // block if it was followed by a blank line. The middle block fires an
        // event with the data set to a single newline character. The last
        // block is discarded because it is not followed by a blank line."
        check(&[b"data\n\ndata\ndata\n\ndata:"], &[("message", "", ""), ("message", "\n", "")]);
        // "The following stream fires two identical events: ... This is because
        // the space after the colon is ignored if present."
        check(&[b"data:test\n\ndata: test\n\n"], &[("message", "test", ""), ("message", "test", "")]);
        // §9.2.4: event types, and the default "message".
        check(
            &[b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n"],
            &[("add", "73857293", ""), ("remove", "2153", ""), ("add", "113411", "")],
        );
    }

    #[test]
    fn line_endings_crlf_lf_and_cr_also_split_across_chunks() {
        for stream in [
            &b"data: a\r\n\r\ndata: b\r\n\r\n"[..],
            b"data: a\n\ndata: b\n\n",
            b"data: a\r\rdata: b\r\r",
            b"data: a\r\n\ndata: b\r\r\n",
        ] {
            check(&[stream], &[("message", "a", ""), ("message", "b", "")]);
        }
        // A CR ending one chunk and an LF starting the next are one line end.
        check(&[b"data: a\r", b"\n", b"data: b\r", b"\n\r", b"\n"], &[("message", "a\nb", "")]);
        // A CR at the end of a chunk followed by another CR: two line ends.
        check(&[b"data: a\r", b"\rdata: b\r\r"], &[("message", "a", ""), ("message", "b", "")]);
    }

    #[test]
    fn id_only_retry_only_and_comment_blocks_dispatch_nothing() {
        check(&[b"id: 7\n\nretry: 1000\n\n: keepalive\n\n\n\n"], &[]);
        // The id is sticky: it rides the next event.
        check(&[b"id: 7\n\ndata: x\n\n"], &[("message", "x", "7")]);
        // An id with NUL is ignored; an event type without data is dropped.
        check(&[b"id: 1\n\nid: a\0b\nevent: e\n\ndata: y\n\n"], &[("message", "y", "1")]);
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.push(b"retry: 2500\n\nretry: 12x\n\nretry:\n\n", &mut out).unwrap();
        assert_eq!((p.retry(), out.len()), (Some(2500), 0));
    }

    #[test]
    fn the_typescript_sdk_priming_event_is_an_empty_data_event() {
        // webStandardStreamableHttp.js writePrimingEvent, then the reply.
        check(
            &[b"id: 0_a\nretry: 1000\ndata: \n\n", b"event: message\nid: 0_b\ndata: {\"id\":1}\n\n"],
            &[("message", "", "0_a"), ("message", "{\"id\":1}", "0_b")],
        );
    }

    #[test]
    fn fields_bom_and_unterminated_events() {
        check(&[b"\xEF\xBB\xBFdata: bom\n\n"], &[("message", "bom", "")]);
        check(&[b"\xEF", b"\xBB", b"\xBFdata: bom\n\n"], &[("message", "bom", "")]);
        // Only one leading BOM is dropped; a second one makes an unknown field.
        check(&[b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"], &[]);
        check(&[b"event: endpoint\ndata: /messages?s=1\n\n"], &[("endpoint", "/messages?s=1", "")]);
        check(&[b"event:\ndata: x\n\n"], &[("message", "x", "")]);
        check(&[b"data: unterminated"], &[]);
        check(&[b"data: unterminated\n"], &[]);
        check(&[b"Data: x\n\ndata : y\n\nfoo: z\n\n"], &[]);
        check(&[b"data: a: b\n\n"], &[("message", "a: b", "")]);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        assert_eq!(run(&[b"data: \xff\n\n"]), Err(InvalidUtf8));
        assert_eq!(run(&[b": \xc3\n"]), Err(InvalidUtf8));
        // A multi-byte character split across chunks is fine.
        assert_eq!(run(&[b"data: \xc3", b"\xa9\n\n"]).unwrap()[0].data, "é");
    }
}
