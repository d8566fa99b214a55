//! Server-sent events, incrementally: split a byte stream into complete events
//! (whatever the chunking), and read one event's `event:` name and `data:`.
//!
//! Invariants: bytes are never reordered or altered; an event larger than the
//! splitter's cap is skipped (the splitter resynchronises at the next boundary)
//! rather than buffered without bound.

/// Splits a byte stream into raw events, each ending with its blank line.
#[derive(Debug)]
pub struct SseSplitter {
    buf: Vec<u8>,
    /// Position up to which `buf` is known to hold no boundary.
    scanned: usize,
    max_event: usize,
    /// Skipping an oversized event until the next boundary.
    skipping: bool,
}

impl SseSplitter {
    pub fn new(max_event: usize) -> Self {
        SseSplitter {
            buf: Vec::new(),
            scanned: 0,
            max_event,
            skipping: false,
        }
    }

    /// Feed bytes; `on_event` gets each complete raw event (terminator included).
    pub fn push(&mut self, data: &[u8], mut on_event: impl FnMut(&[u8])) {
        self.buf.extend_from_slice(data);
        loop {
            match find_boundary(&self.buf, self.scanned) {
                Some(end) => {
                    if !self.skipping {
                        on_event(&self.buf[..end]);
                    }
                    self.skipping = false;
                    self.buf.drain(..end);
                    self.scanned = 0;
                }
                None => {
                    self.scanned = self.buf.len().saturating_sub(2);
                    if self.buf.len() > self.max_event {
                        self.skipping = true;
                        // Keep the tail: it may hold the start of a boundary.
                        let keep = self.buf.len().min(2);
                        self.buf.drain(..self.buf.len() - keep);
                        self.scanned = 0;
                    }
                    return;
                }
            }
        }
    }

    /// Bytes of an unfinished event (at end of stream).
    pub fn take_rest(&mut self) -> Vec<u8> {
        self.scanned = 0;
        if self.skipping {
            self.skipping = false;
            self.buf.clear();
        }
        std::mem::take(&mut self.buf)
    }
}

/// End (exclusive) of the first event: a `\n\n` or `\n\r\n` at or after `from`.
fn find_boundary(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match (buf.get(i + 1), buf.get(i + 2)) {
                (Some(b'\n'), _) => return Some(i + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// One parsed event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

/// Parse one raw event; `None` for comment-only or empty events.
pub fn parse_event(raw: &[u8]) -> Option<Event> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut ev = Event::default();
    let mut has_data = false;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => ev.event = Some(value.to_owned()),
            "data" => {
                if has_data {
                    ev.data.push('\n');
                }
                ev.data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    (has_data || ev.event.is_some()).then_some(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]], max: usize) -> Vec<Vec<u8>> {
        let mut s = SseSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |e| out.push(e.to_vec()));
        }
        out
    }

    #[test]
    fn events_survive_any_chunking() {
        let stream = b"event: a\ndata: {\"x\":1}\n\ndata: two\r\n\r\n: comment\n\ndata: [DONE]\n\n";
        let whole = split_all(&[stream], 1 << 20);
        assert_eq!(whole.len(), 4);
        for cut in 1..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(split_all(&[a, b], 1 << 20), whole, "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(split_all(&bytewise, 1 << 20), whole);
        assert_eq!(whole.concat(), stream.to_vec());
        let e = parse_event(&whole[0]).unwrap();
        assert_eq!(e.event.as_deref(), Some("a"));
        assert_eq!(e.data, "{\"x\":1}");
        assert_eq!(parse_event(&whole[1]).unwrap().data, "two");
        assert!(parse_event(&whole[2]).is_none());
    }

    #[test]
    fn oversized_events_are_skipped_not_buffered() {
        let big = vec![b'x'; 100];
        let mut stream = b"data: ".to_vec();
        stream.extend_from_slice(&big);
        stream.extend_from_slice(b"\n\ndata: ok\n\n");
        let chunks: Vec<&[u8]> = stream.chunks(7).collect();
        let out = split_all(&chunks, 32);
        assert_eq!(out.len(), 1);
        assert_eq!(parse_event(&out[0]).unwrap().data, "ok");
    }

    #[test]
    fn multi_line_data_is_joined() {
        let e = parse_event(b"data: a\ndata: b\n\n").unwrap();
        assert_eq!(e.data, "a\nb");
    }
}
