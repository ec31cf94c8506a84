//! An incremental Server-Sent Events parser over raw byte chunks.
//!
//! Hand-written rather than taken from a crate because the prober must account
//! for every byte it buffers (the caller caps the total) and must treat invalid
//! UTF-8 as a protocol error rather than a panic or a lossy decode.

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; empty means the default type "message".
    pub event: String,
    /// The `data:` lines joined with '\n'.
    pub data: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feeds a chunk and appends every event it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        for &b in chunk {
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.line_done(&line, out);
                line.clear();
                self.line = line;
            } else {
                self.line.push(b);
            }
        }
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.current));
            }
            self.current = SseEvent::default();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return; // comment, e.g. a keep-alive
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.current.data.push(b'\n');
                }
                self.current.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.current.event = String::from_utf8_lossy(value).into_owned(),
            _ => {} // id, retry and unknown fields do not matter to a probe
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(chunks: &[&[u8]], want: &[(&str, &str)]) {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out);
        }
        let got: Vec<(String, String)> = out.iter().map(|e| (e.event.clone(), String::from_utf8_lossy(&e.data).into_owned())).collect();
        let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn parses_events() {
        check(&[b"event: message\ndata: {\"a\":1}\n\n"], &[("message", "{\"a\":1}")]);
        check(&[b"data: x\r\n\r\n"], &[("", "x")]);
        check(&[b"da", b"ta: split", b"\n", b"\n"], &[("", "split")]);
        check(&[b": keepalive\n\n: again\n\n"], &[]);
        check(&[b"data: a\ndata: b\n\n"], &[("", "a\nb")]);
        check(&[b"event: endpoint\ndata: /messages?s=1\n\n"], &[("endpoint", "/messages?s=1")]);
        check(&[b"data: unterminated"], &[]);
        check(&[b"data:nospace\n\n"], &[("", "nospace")]);
    }
}
