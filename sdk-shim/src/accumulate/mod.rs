//! Accumulators: read the bytes the client receives and build what the span
//! needs — output messages, tool calls, finish reasons, usage, response id and
//! model, time to first token, in-band errors.
//!
//! One accumulator per response, chosen by the route and the response's content
//! type: a JSON body (any route, errors included), or a stream of OpenAI chat /
//! completion chunks, Responses events or Anthropic message events.
//!
//! Invariants: feeding never fails and never panics on malformed input (the
//! client's bytes matter, the span is best effort); captured text is bounded by
//! `max_capture`; streams are parsed as they pass (so time to first token is the
//! arrival of the first content, not the end), JSON bodies only at the end — in
//! the export worker, off the caller's path.

pub mod anthropic;
pub mod openai;
pub mod responses;

use std::time::Instant;

use serde_json::Value;

use schemas::messages::response_body_messages;
use schemas::{Message, Usage};

use crate::provider::Endpoint;
use crate::sse::{SseSplitter, parse_event};

/// What a response told the shim.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capture {
    pub response_id: String,
    pub response_model: String,
    pub output: Vec<Message>,
    pub finish_reasons: Vec<String>,
    pub usage: Usage,
    pub first_token: Option<Instant>,
    /// Error reported inside the body (an error JSON, an SSE `error` event).
    pub error_type: Option<String>,
    /// True when captured text hit the cap (the span's content is cut).
    pub truncated: bool,
}

/// Builds a [`Capture`] from response bytes.
#[derive(Debug)]
pub enum Accumulator {
    Json(JsonBody),
    Stream(Box<StreamAcc>),
}

impl Accumulator {
    pub fn new(endpoint: Endpoint, streaming_response: bool, max_capture: usize) -> Self {
        if !streaming_response {
            return Accumulator::Json(JsonBody {
                endpoint,
                buf: Vec::new(),
                max: max_capture,
                truncated: false,
            });
        }
        let events = match endpoint {
            Endpoint::Responses => Events::Responses(responses::ResponsesStream::default()),
            Endpoint::Messages => Events::Anthropic(anthropic::MessagesStream::default()),
            Endpoint::Chat | Endpoint::Completions | Endpoint::Embeddings => {
                Events::OpenAi(openai::ChatStream::default())
            }
        };
        Accumulator::Stream(Box::new(StreamAcc {
            splitter: SseSplitter::new(max_capture.max(64 << 10)),
            events,
            max: max_capture,
        }))
    }

    /// Feed bytes as they pass to the client.
    pub fn feed(&mut self, data: &[u8], now: Instant) {
        match self {
            Accumulator::Json(j) => j.feed(data),
            Accumulator::Stream(s) => {
                let StreamAcc {
                    splitter,
                    events,
                    max,
                } = s.as_mut();
                splitter.push(data, |raw| {
                    if let Some(ev) = parse_event(raw) {
                        events.on_event(ev.event.as_deref(), &ev.data, now, *max);
                    }
                });
            }
        }
    }

    /// Bytes held for the export worker (for the export queue's byte budget).
    pub fn held_bytes(&self) -> usize {
        match self {
            Accumulator::Json(j) => j.buf.len(),
            Accumulator::Stream(s) => s.events.held_bytes(),
        }
    }

    /// Everything learnt (parses a JSON body; call off the caller's path).
    pub fn finish(self) -> Capture {
        match self {
            Accumulator::Json(j) => j.finish(),
            Accumulator::Stream(s) => s.events.finish(),
        }
    }
}

/// A whole (non-streamed) body, parsed at the end.
#[derive(Debug)]
pub struct JsonBody {
    endpoint: Endpoint,
    buf: Vec<u8>,
    max: usize,
    truncated: bool,
}

impl JsonBody {
    fn feed(&mut self, data: &[u8]) {
        if self.truncated {
            return;
        }
        if self.buf.len() + data.len() > self.max {
            self.truncated = true;
            self.buf.clear();
            return;
        }
        self.buf.extend_from_slice(data);
    }

    fn finish(self) -> Capture {
        let mut c = Capture {
            truncated: self.truncated,
            ..Capture::default()
        };
        if let Ok(v) = serde_json::from_slice::<Value>(&self.buf) {
            read_json_response(self.endpoint, &v, &mut c);
        }
        c
    }
}

/// A streamed body, parsed event by event.
#[derive(Debug)]
pub struct StreamAcc {
    splitter: SseSplitter,
    events: Events,
    max: usize,
}

#[derive(Debug)]
enum Events {
    OpenAi(openai::ChatStream),
    Responses(responses::ResponsesStream),
    Anthropic(anthropic::MessagesStream),
}

impl Events {
    fn on_event(&mut self, name: Option<&str>, data: &str, now: Instant, max: usize) {
        match self {
            Events::OpenAi(s) => s.on_event(data, now, max),
            Events::Responses(s) => s.on_event(data, now, max),
            Events::Anthropic(s) => s.on_event(name, data, now, max),
        }
    }

    fn held_bytes(&self) -> usize {
        match self {
            Events::OpenAi(s) => s.held_bytes(),
            Events::Responses(s) => s.held_bytes(),
            Events::Anthropic(s) => s.held_bytes(),
        }
    }

    fn finish(self) -> Capture {
        match self {
            Events::OpenAi(s) => s.finish(),
            Events::Responses(s) => s.finish(),
            Events::Anthropic(s) => s.finish(),
        }
    }
}

/// A complete response object (a JSON body, or the final object of a Responses stream).
pub(crate) fn read_json_response(endpoint: Endpoint, v: &Value, c: &mut Capture) {
    if let Some(err) = v.get("error").filter(|e| e.is_object()) {
        c.error_type = err
            .get("type")
            .or_else(|| err.get("code"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        return;
    }
    c.response_id = str_at(v, "id");
    c.response_model = str_at(v, "model");
    if let Some(u) = v.get("usage") {
        c.usage = usage_from(endpoint, u);
    }
    if endpoint == Endpoint::Embeddings {
        return;
    }
    c.output = response_body_messages(v);
    if endpoint == Endpoint::Responses {
        c.finish_reasons = vec![responses_finish_reason(v, &c.output)];
        for m in &mut c.output {
            m.finish_reason.clear();
        }
        merge_assistant(&mut c.output);
    } else {
        c.finish_reasons = c
            .output
            .iter()
            .map(|m| m.finish_reason.clone())
            .filter(|r| !r.is_empty())
            .collect();
    }
}

/// Responses has no finish reason: `stop`, `tool_calls`, or why it is incomplete.
pub(crate) fn responses_finish_reason(v: &Value, output: &[Message]) -> String {
    match v.get("status").and_then(Value::as_str) {
        Some("incomplete") => v
            .get("incomplete_details")
            .and_then(|d| d.get("reason"))
            .and_then(Value::as_str)
            .unwrap_or("incomplete")
            .to_owned(),
        Some("failed") => "error".to_owned(),
        _ if output.iter().any(|m| !m.tool_calls.is_empty()) => "tool_calls".to_owned(),
        _ => "stop".to_owned(),
    }
}

/// Responses items (reasoning, message, function calls) are one assistant turn.
fn merge_assistant(out: &mut Vec<Message>) {
    if out.len() < 2 || out.iter().any(|m| m.role != "assistant") {
        return;
    }
    let mut merged = Message {
        role: "assistant".to_owned(),
        ..Message::default()
    };
    for m in out.drain(..) {
        merged.content.push_str(&m.content);
        merged.reasoning.push_str(&m.reasoning);
        merged.tool_calls.extend(m.tool_calls);
    }
    out.push(merged);
}

/// Usage of any of the three APIs, in OTel terms (input includes cached parts).
pub(crate) fn usage_from(endpoint: Endpoint, u: &Value) -> Usage {
    let n = |path: &[&str]| -> Option<u64> {
        let mut cur = u;
        for p in path {
            cur = cur.get(p)?;
        }
        cur.as_u64()
    };
    match endpoint {
        Endpoint::Messages => {
            let cache_read = n(&["cache_read_input_tokens"]);
            let cache_write = n(&["cache_creation_input_tokens"]);
            let input = n(&["input_tokens"])
                .map(|i| i + cache_read.unwrap_or(0) + cache_write.unwrap_or(0));
            let output = n(&["output_tokens"]);
            Usage {
                input,
                output,
                cache_read,
                cache_write,
                reasoning: None,
                total: input.zip(output).map(|(i, o)| i + o),
            }
        }
        Endpoint::Responses => Usage {
            input: n(&["input_tokens"]),
            output: n(&["output_tokens"]),
            cache_read: n(&["input_tokens_details", "cached_tokens"]),
            cache_write: None,
            reasoning: n(&["output_tokens_details", "reasoning_tokens"]),
            total: n(&["total_tokens"]),
        },
        Endpoint::Chat | Endpoint::Completions | Endpoint::Embeddings => Usage {
            input: n(&["prompt_tokens"]),
            output: n(&["completion_tokens"]),
            cache_read: n(&["prompt_tokens_details", "cached_tokens"]),
            cache_write: None,
            reasoning: n(&["completion_tokens_details", "reasoning_tokens"]),
            total: n(&["total_tokens"]),
        },
    }
}

pub(crate) fn str_at(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Append `s` to `dst` while the capture budget allows.
pub(crate) fn push_capped(dst: &mut String, s: &str, budget: &mut usize, truncated: &mut bool) {
    if s.len() <= *budget {
        dst.push_str(s);
        *budget -= s.len();
    } else {
        *truncated = true;
        *budget = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_capture(endpoint: Endpoint, v: Value) -> Capture {
        let mut acc = Accumulator::new(endpoint, false, 1 << 20);
        let bytes = serde_json::to_vec(&v).unwrap();
        for c in bytes.chunks(13) {
            acc.feed(c, Instant::now());
        }
        acc.finish()
    }

    #[test]
    fn openai_chat_json_with_tool_calls() {
        let c = json_capture(
            Endpoint::Chat,
            json!({"id":"chatcmpl-1","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,
                "message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
                "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],
                "usage":{"prompt_tokens":20,"completion_tokens":10,"total_tokens":30,
                "prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}),
        );
        assert_eq!(c.response_id, "chatcmpl-1");
        assert_eq!(c.finish_reasons, vec!["tool_calls"]);
        assert_eq!(c.output[0].tool_calls[0].name, "get_weather");
        assert_eq!(c.usage.input, Some(20));
        assert_eq!(c.usage.cache_read, Some(4));
        assert_eq!(c.usage.reasoning, Some(2));
    }

    #[test]
    fn anthropic_json_input_includes_cache() {
        let c = json_capture(
            Endpoint::Messages,
            json!({"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5",
                "content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn",
                "usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":7}}),
        );
        assert_eq!(c.usage.input, Some(117));
        assert_eq!(c.usage.cache_read, Some(100));
        assert_eq!(c.usage.cache_write, Some(7));
        assert_eq!(c.finish_reasons, vec!["end_turn"]);
        assert_eq!(c.output[0].content, "Hello");
    }

    #[test]
    fn error_bodies_give_the_error_type() {
        let c = json_capture(
            Endpoint::Chat,
            json!({"error":{"message":"Rate limit","type":"rate_limit_exceeded","code":null}}),
        );
        assert_eq!(c.error_type.as_deref(), Some("rate_limit_exceeded"));
        let a = json_capture(
            Endpoint::Messages,
            json!({"type":"error","error":{"type":"overloaded_error","message":"x"}}),
        );
        assert_eq!(a.error_type.as_deref(), Some("overloaded_error"));
    }

    #[test]
    fn oversized_json_is_cut_not_held() {
        let mut acc = Accumulator::new(Endpoint::Chat, false, 8);
        acc.feed(b"{\"id\":\"0123456789\"}", Instant::now());
        assert_eq!(acc.held_bytes(), 0);
        assert!(acc.finish().truncated);
    }
}
