//! Anthropic Messages events: `message_start` (id, model, input usage),
//! `content_block_start` / `_delta` (text, tool-use JSON fragments, thinking),
//! `message_delta` (stop reason, cumulative output usage), `error`.

use std::time::Instant;

use serde_json::Value;

use schemas::{Message, ToolCall, Usage};

use super::{Capture, push_capped, str_at, usage_from};
use crate::provider::Endpoint;

#[derive(Debug)]
enum Block {
    Text(String),
    Tool {
        call: ToolCall,
        initial: Option<Value>,
    },
    Thinking(String),
    Other,
}

#[derive(Debug, Default)]
pub struct MessagesStream {
    id: String,
    model: String,
    /// (block index, block)
    blocks: Vec<(u64, Block)>,
    stop_reason: String,
    /// Raw usage fields, merged as events report them (message_delta's are cumulative).
    usage: serde_json::Map<String, Value>,
    first_token: Option<Instant>,
    error_type: Option<String>,
    used: usize,
    truncated: bool,
}

impl MessagesStream {
    pub fn on_event(&mut self, name: Option<&str>, data: &str, now: Instant, max: usize) {
        let Ok(v) = serde_json::from_str::<Value>(data.trim()) else {
            return;
        };
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(name)
            .unwrap_or_default()
            .to_owned();
        let mut budget = max.saturating_sub(self.used);
        match kind.as_str() {
            "message_start" => {
                if let Some(m) = v.get("message") {
                    self.id = str_at(m, "id");
                    self.model = str_at(m, "model");
                    self.merge_usage(m.get("usage"));
                }
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let b = v.get("content_block");
                let block = match b.and_then(|b| b.get("type")).and_then(Value::as_str) {
                    Some("text") => {
                        let t = b
                            .and_then(|b| b.get("text"))
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let mut s = String::new();
                        push_capped(&mut s, t, &mut budget, &mut self.truncated);
                        Block::Text(s)
                    }
                    Some("tool_use" | "server_tool_use") => Block::Tool {
                        call: ToolCall {
                            id: b.map(|b| str_at(b, "id")).unwrap_or_default(),
                            name: b.map(|b| str_at(b, "name")).unwrap_or_default(),
                            arguments: String::new(),
                        },
                        initial: b.and_then(|b| b.get("input")).cloned(),
                    },
                    Some("thinking") => Block::Thinking(String::new()),
                    _ => Block::Other,
                };
                self.blocks.push((index, block));
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let d = v.get("delta");
                let field = |k: &str| {
                    d.and_then(|d| d.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                };
                let (text, json, thinking) =
                    (field("text"), field("partial_json"), field("thinking"));
                if (!text.is_empty() || !json.is_empty() || !thinking.is_empty())
                    && self.first_token.is_none()
                {
                    self.first_token = Some(now);
                }
                let truncated = &mut self.truncated;
                if let Some((_, block)) = self.blocks.iter_mut().rev().find(|(i, _)| *i == index) {
                    match block {
                        Block::Text(s) => push_capped(s, text, &mut budget, truncated),
                        Block::Tool { call, .. } => {
                            push_capped(&mut call.arguments, json, &mut budget, truncated)
                        }
                        Block::Thinking(s) => push_capped(s, thinking, &mut budget, truncated),
                        Block::Other => {}
                    }
                }
            }
            "message_delta" => {
                if let Some(r) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = r.to_owned();
                }
                self.merge_usage(v.get("usage"));
            }
            "error" => {
                self.error_type = v
                    .get("error")
                    .and_then(|e| e.get("type"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| Some("stream_error".to_owned()));
            }
            _ => {}
        }
        self.used = max.saturating_sub(budget);
    }

    fn merge_usage(&mut self, u: Option<&Value>) {
        if let Some(Value::Object(o)) = u {
            for (k, v) in o {
                if !v.is_null() {
                    self.usage.insert(k.clone(), v.clone());
                }
            }
        }
    }

    pub fn held_bytes(&self) -> usize {
        self.used
    }

    pub fn finish(self) -> Capture {
        let mut msg = Message {
            role: "assistant".to_owned(),
            finish_reason: self.stop_reason.clone(),
            ..Message::default()
        };
        for (_, b) in self.blocks {
            match b {
                Block::Text(t) => msg.content.push_str(&t),
                Block::Thinking(t) => msg.reasoning.push_str(&t),
                Block::Tool { mut call, initial } => {
                    if call.arguments.is_empty()
                        && let Some(i) =
                            initial.filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                    {
                        call.arguments = i.to_string();
                    }
                    msg.tool_calls.push(call);
                }
                Block::Other => {}
            }
        }
        let has_output =
            !msg.content.is_empty() || !msg.tool_calls.is_empty() || !msg.reasoning.is_empty();
        let usage: Usage = if self.usage.is_empty() {
            Usage::default()
        } else {
            usage_from(Endpoint::Messages, &Value::Object(self.usage))
        };
        Capture {
            response_id: self.id,
            response_model: self.model,
            output: if has_output { vec![msg] } else { Vec::new() },
            finish_reasons: if self.stop_reason.is_empty() {
                Vec::new()
            } else {
                vec![self.stop_reason]
            },
            usage,
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
    fn text_tool_use_and_usage() {
        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":10,\"cache_creation_input_tokens\":0,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: ping\ndata: {\"type\":\"ping\"}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me check\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"Paris\\\"}\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":42}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
        let mut acc = Accumulator::new(Endpoint::Messages, true, 1 << 20);
        for c in stream.as_bytes().chunks(9) {
            acc.feed(c, Instant::now());
        }
        let c = acc.finish();
        assert_eq!(c.response_id, "msg_1");
        assert_eq!(c.output[0].content, "Let me check");
        assert_eq!(c.output[0].tool_calls[0].name, "get_weather");
        assert_eq!(c.output[0].tool_calls[0].arguments, "{\"city\": \"Paris\"}");
        assert_eq!(c.finish_reasons, vec!["tool_use"]);
        assert_eq!(c.usage.input, Some(35));
        assert_eq!(c.usage.cache_read, Some(10));
        assert_eq!(c.usage.output, Some(42));
        assert!(c.first_token.is_some());
    }
}
