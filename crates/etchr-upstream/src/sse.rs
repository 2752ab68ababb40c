//! A small server-sent-events parser: bytes in, events out.
//!
//! Hand-written because chat streams use a tiny subset of SSE (`data:` lines, an optional `event:`,
//! comments for keep-alives) and chunks arrive split at arbitrary byte boundaries, including inside
//! a UTF-8 character; the parser buffers raw bytes and only decodes complete lines.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (OpenAI-compatible servers rarely send one; some send `error`).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE parser.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(nl) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            let line_bytes = &self.buf[start..end];
            let line_bytes = line_bytes.strip_suffix(b"\r").unwrap_or(line_bytes);
            let line = String::from_utf8_lossy(line_bytes).into_owned();
            start = end + 1;
            if let Some(ev) = self.line(&line) {
                out.push(ev);
            }
        }
        self.buf.drain(..start);
        out
    }

    /// Ends the input: a final event not followed by a blank line is still dispatched.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let line = String::from_utf8_lossy(&rest)
                .trim_end_matches('\r')
                .to_string();
            if let Some(ev) = self.line(&line) {
                return Some(ev);
            }
        }
        self.dispatch()
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None; // comment / keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => self.data.push(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            _ => {} // id, retry: irrelevant to chat streams
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        if self.data.is_empty() {
            self.event = None;
            return None;
        }
        Some(SseEvent {
            event: self.event.take(),
            data: std::mem::take(&mut self.data).join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_are_reassembled() {
        let input = "data: {\"a\":\"é\"}\n\n: keep-alive\n\nevent: error\ndata: {\"error\":1}\r\n\r\ndata: [DONE]\n\n";
        let bytes = input.as_bytes();
        for split in 0..bytes.len() {
            let mut p = SseParser::new();
            let mut evs = p.push(&bytes[..split]);
            evs.extend(p.push(&bytes[split..]));
            evs.extend(p.finish());
            assert_eq!(evs.len(), 3, "split at {split}");
            assert_eq!(evs[0].data, "{\"a\":\"é\"}");
            assert_eq!(evs[1].event.as_deref(), Some("error"));
            assert_eq!(evs[2].data, "[DONE]");
        }
    }

    #[test]
    fn multi_line_data_and_unterminated_tail() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: a\ndata:b\n").is_empty());
        let evs = p.push(b"\ndata: tail");
        assert_eq!(evs[0].data, "a\nb");
        assert_eq!(p.finish().unwrap().data, "tail");
        assert!(p.finish().is_none());
    }
}
