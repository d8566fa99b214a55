//! Hides what the shim added to an OpenAI stream whose client did not ask for
//! usage: the usage-only chunk (`"choices":[]` with `usage`) and the
//! `"usage":null` member OpenAI then appends to every other chunk.
//!
//! Invariants: only complete events are released (a partial event waits for its
//! boundary, nothing else is delayed); every other byte reaches the client as the
//! upstream sent it.

use bytes::Bytes;
use serde_json::Value;

use crate::sse::{SseSplitter, parse_event};

const USAGE_NULL_TAIL: &[u8] = b",\"usage\":null}";

#[derive(Debug)]
pub struct UsageChunkFilter {
    splitter: SseSplitter,
}

impl UsageChunkFilter {
    pub fn new(max_event: usize) -> Self {
        UsageChunkFilter {
            splitter: SseSplitter::new(max_event),
        }
    }

    /// The bytes of `data` the client may see now.
    pub fn push(&mut self, data: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(data.len());
        self.splitter.push(data, |raw| filter_event(raw, &mut out));
        Bytes::from(out)
    }

    /// Whatever is left at the end of the stream, unchanged.
    pub fn finish(&mut self) -> Bytes {
        Bytes::from(self.splitter.take_rest())
    }
}

fn filter_event(raw: &[u8], out: &mut Vec<u8>) {
    let Some(ev) = parse_event(raw) else {
        out.extend_from_slice(raw);
        return;
    };
    if ev.data.starts_with('{') {
        // Only the usage chunk has an empty choices array: parse nothing else.
        if (ev.data.contains("\"choices\":[]") || ev.data.contains("\"choices\": []"))
            && let Ok(v) = serde_json::from_str::<Value>(&ev.data)
            && v.get("choices")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
            && v.get("usage").is_some_and(Value::is_object)
        {
            return;
        }
        if let Some(pos) = find_last(raw, USAGE_NULL_TAIL) {
            out.extend_from_slice(&raw[..pos]);
            out.push(b'}');
            out.extend_from_slice(&raw[pos + USAGE_NULL_TAIL.len()..]);
            return;
        }
    }
    out.extend_from_slice(raw);
}

fn find_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_the_usage_chunk_and_null_usage_members() {
        let upstream = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
            "data: [DONE]\n\n"
        );
        let expected = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: [DONE]\n\n"
        );
        for step in [1, 5, 17, upstream.len()] {
            let mut f = UsageChunkFilter::new(1 << 20);
            let mut got = Vec::new();
            for c in upstream.as_bytes().chunks(step) {
                got.extend_from_slice(&f.push(c));
            }
            got.extend_from_slice(&f.finish());
            assert_eq!(String::from_utf8(got).unwrap(), expected, "step {step}");
        }
    }
}
