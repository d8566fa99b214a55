//! OpenAI chat-completion (and legacy completion) chunks: `data: {...}` events
//! ending with `data: [DONE]`, deltas per choice, tool-call fragments keyed by
//! index, and a final usage chunk when `stream_options.include_usage` is on.

use std::borrow::Cow;
use std::time::Instant;

use serde::Deserialize;
use serde_json::Value;

use schemas::{Message, ToolCall, Usage};

use super::{Capture, push_capped, usage_from};
use crate::provider::Endpoint;

#[derive(Debug, Default)]
struct Choice {
    index: u64,
    content: String,
    reasoning: String,
    tools: Vec<(u64, ToolCall)>,
    finish_reason: String,
}

#[derive(Debug, Default)]
pub struct ChatStream {
    id: String,
    model: String,
    choices: Vec<Choice>,
    usage: Usage,
    first_token: Option<Instant>,
    error_type: Option<String>,
    used: usize,
    truncated: bool,
}

/// One chunk, borrowed from the event's text (parsed per event on the client's path,
/// so no `Value` tree); unknown fields are ignored, `null`s are `None`.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Option<Vec<ChunkChoice<'a>>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default)]
    index: u64,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    /// Legacy completions put the text here.
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<ToolDelta<'a>>>,
}

#[derive(Deserialize)]
struct ToolDelta<'a> {
    #[serde(default)]
    index: u64,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}

impl ChatStream {
    pub fn on_event(&mut self, data: &str, now: Instant, max: usize) {
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Chunk<'_>>(data) else {
            return;
        };
        if let Some(err) = chunk.error.filter(|e| e.is_object()) {
            self.error_type = err
                .get("type")
                .or_else(|| err.get("code"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| Some("stream_error".to_owned()));
            return;
        }
        if self.id.is_empty()
            && let Some(id) = &chunk.id
        {
            self.id = id.to_string();
        }
        if self.model.is_empty()
            && let Some(m) = &chunk.model
        {
            self.model = m.to_string();
        }
        if let Some(u) = chunk.usage.filter(|u| u.is_object()) {
            self.usage = usage_from(Endpoint::Chat, &u);
        }
        let Some(choices) = chunk.choices else {
            return;
        };
        let mut budget = max.saturating_sub(self.used);
        for c in choices {
            let pos = match self.choices.iter().position(|x| x.index == c.index) {
                Some(p) => p,
                None => {
                    self.choices.push(Choice {
                        index: c.index,
                        ..Choice::default()
                    });
                    self.choices.len() - 1
                }
            };
            let choice = &mut self.choices[pos];
            let (text, reasoning, calls) = match c.delta {
                Some(d) => (
                    d.content.or(c.text),
                    d.reasoning_content.or(d.reasoning),
                    d.tool_calls.unwrap_or_default(),
                ),
                None => (c.text, None, Vec::new()),
            };
            let text = text.unwrap_or_default();
            let reasoning = reasoning.unwrap_or_default();
            let mut produced = !text.is_empty() || !reasoning.is_empty();
            push_capped(&mut choice.content, &text, &mut budget, &mut self.truncated);
            push_capped(
                &mut choice.reasoning,
                &reasoning,
                &mut budget,
                &mut self.truncated,
            );
            for call in calls {
                let tpos = match choice.tools.iter().position(|(i, _)| *i == call.index) {
                    Some(p) => p,
                    None => {
                        choice.tools.push((call.index, ToolCall::default()));
                        choice.tools.len() - 1
                    }
                };
                let tc = &mut choice.tools[tpos].1;
                if let Some(id) = call.id {
                    tc.id = id.into_owned();
                }
                if let Some(f) = call.function {
                    if let Some(name) = f.name {
                        tc.name.push_str(&name);
                        produced = true;
                    }
                    if let Some(args) = f.arguments {
                        push_capped(&mut tc.arguments, &args, &mut budget, &mut self.truncated);
                        produced |= !args.is_empty();
                    }
                }
            }
            if let Some(r) = c.finish_reason {
                choice.finish_reason = r.into_owned();
            }
            if produced && self.first_token.is_none() {
                self.first_token = Some(now);
            }
        }
        self.used = max.saturating_sub(budget);
    }

    pub fn held_bytes(&self) -> usize {
        self.used
    }

    pub fn finish(mut self) -> Capture {
        self.choices.sort_by_key(|c| c.index);
        let finish_reasons = self
            .choices
            .iter()
            .map(|c| c.finish_reason.clone())
            .filter(|r| !r.is_empty())
            .collect();
        let output = self
            .choices
            .into_iter()
            .map(|c| Message {
                role: "assistant".to_owned(),
                content: c.content,
                reasoning: c.reasoning,
                tool_calls: c.tools.into_iter().map(|(_, t)| t).collect(),
                finish_reason: c.finish_reason,
                ..Message::default()
            })
            .collect();
        Capture {
            response_id: self.id,
            response_model: self.model,
            output,
            finish_reasons,
            usage: self.usage,
            first_token: self.first_token,
            error_type: self.error_type,
            truncated: self.truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Accumulator;
    use super::*;

    #[test]
    fn text_tool_calls_usage_and_ttft() {
        let stream = concat!(
            "data: {\"id\":\"chatcmpl-9\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13}}\n\n",
            "data: [DONE]\n\n"
        );
        let mut acc = Accumulator::new(Endpoint::Chat, true, 1 << 20);
        let t0 = Instant::now();
        let mut times = Vec::new();
        for (i, c) in stream.as_bytes().chunks(11).enumerate() {
            let t = t0 + std::time::Duration::from_millis(i as u64);
            times.push(t);
            acc.feed(c, t);
        }
        let c = acc.finish();
        assert_eq!(c.response_id, "chatcmpl-9");
        assert_eq!(c.response_model, "gpt-4o-mini");
        assert_eq!(c.output[0].content, "Hello");
        assert_eq!(c.output[0].tool_calls[0].arguments, "{\"a\":1}");
        assert_eq!(c.output[0].tool_calls[0].id, "call_1");
        assert_eq!(c.finish_reasons, vec!["tool_calls"]);
        assert_eq!(c.usage.input, Some(9));
        assert_eq!(c.usage.output, Some(4));
        // The empty role chunk is not the first token; "Hel" is.
        let first = c.first_token.unwrap();
        let hel = stream.find("Hel").unwrap();
        let event_end = hel + stream[hel..].find("\n\n").unwrap() + 2;
        assert_eq!(first, times[(event_end - 1) / 11]);
    }

    #[test]
    fn legacy_completions_text_and_errors() {
        let mut s = ChatStream::default();
        let now = Instant::now();
        s.on_event("{\"id\":\"cmpl-1\",\"choices\":[{\"index\":0,\"text\":\"abc\",\"finish_reason\":null}]}", now, 100);
        s.on_event(
            "{\"error\":{\"type\":\"server_error\",\"message\":\"boom\"}}",
            now,
            100,
        );
        let c = s.finish();
        assert_eq!(c.output[0].content, "abc");
        assert_eq!(c.error_type.as_deref(), Some("server_error"));
    }

    #[test]
    fn capture_is_bounded() {
        let mut s = ChatStream::default();
        let now = Instant::now();
        for _ in 0..10 {
            s.on_event(
                "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"0123456789\"}}]}",
                now,
                35,
            );
        }
        let c = s.finish();
        assert!(c.output[0].content.len() <= 35);
        assert!(c.truncated);
    }
}
