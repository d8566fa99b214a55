//! OpenAI Responses API events: `response.created` (id, model), text and
//! function-call argument deltas (first token, partial output for a cancelled
//! stream), and the final `response.completed` / `incomplete` / `failed` object,
//! which is read like a JSON body and replaces the partial state.

use std::time::Instant;

use serde_json::Value;

use schemas::{Message, ToolCall};

use super::{Capture, push_capped, read_json_response, str_at};
use crate::provider::Endpoint;

#[derive(Debug, Default)]
pub struct ResponsesStream {
    id: String,
    model: String,
    text: String,
    reasoning: String,
    /// (item id, call)
    calls: Vec<(String, ToolCall)>,
    first_token: Option<Instant>,
    final_capture: Option<Capture>,
    error_type: Option<String>,
    used: usize,
    truncated: bool,
}

impl ResponsesStream {
    pub fn on_event(&mut self, data: &str, now: Instant, max: usize) {
        let Ok(v) = serde_json::from_str::<Value>(data.trim()) else {
            return;
        };
        let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
        let mut budget = max.saturating_sub(self.used);
        match kind {
            "response.created" | "response.in_progress" => {
                if let Some(r) = v.get("response") {
                    self.id = str_at(r, "id");
                    self.model = str_at(r, "model");
                }
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                let d = v.get("delta").and_then(Value::as_str).unwrap_or_default();
                self.mark_first(now, d);
                push_capped(&mut self.text, d, &mut budget, &mut self.truncated);
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let d = v.get("delta").and_then(Value::as_str).unwrap_or_default();
                self.mark_first(now, d);
                push_capped(&mut self.reasoning, d, &mut budget, &mut self.truncated);
            }
            "response.output_item.added" => {
                let item = v.get("item");
                if item.and_then(|i| i.get("type")).and_then(Value::as_str) == Some("function_call")
                    && let Some(item) = item
                {
                    self.calls.push((
                        str_at(item, "id"),
                        ToolCall {
                            id: str_at(item, "call_id"),
                            name: str_at(item, "name"),
                            arguments: String::new(),
                        },
                    ));
                }
            }
            "response.function_call_arguments.delta" => {
                let d = v.get("delta").and_then(Value::as_str).unwrap_or_default();
                self.mark_first(now, d);
                let item_id = str_at(&v, "item_id");
                if let Some((_, call)) = self.calls.iter_mut().find(|(id, _)| *id == item_id) {
                    push_capped(&mut call.arguments, d, &mut budget, &mut self.truncated);
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                if let Some(r) = v.get("response") {
                    let mut c = Capture::default();
                    read_json_response(Endpoint::Responses, r, &mut c);
                    if kind == "response.failed" {
                        c.error_type = r
                            .get("error")
                            .and_then(|e| e.get("code"))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .or_else(|| Some("response_failed".to_owned()));
                    }
                    self.final_capture = Some(c);
                }
            }
            "error" => {
                self.error_type = v
                    .get("code")
                    .or_else(|| v.get("error").and_then(|e| e.get("type")))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| Some("stream_error".to_owned()));
            }
            _ => {}
        }
        self.used = max.saturating_sub(budget);
    }

    fn mark_first(&mut self, now: Instant, delta: &str) {
        if !delta.is_empty() && self.first_token.is_none() {
            self.first_token = Some(now);
        }
    }

    pub fn held_bytes(&self) -> usize {
        self.used
    }

    pub fn finish(self) -> Capture {
        let mut c = match self.final_capture {
            Some(c) => c,
            None => {
                let msg = Message {
                    role: "assistant".to_owned(),
                    content: self.text,
                    reasoning: self.reasoning,
                    tool_calls: self.calls.into_iter().map(|(_, c)| c).collect(),
                    ..Message::default()
                };
                let empty =
                    msg.content.is_empty() && msg.reasoning.is_empty() && msg.tool_calls.is_empty();
                Capture {
                    output: if empty { Vec::new() } else { vec![msg] },
                    ..Capture::default()
                }
            }
        };
        if c.response_id.is_empty() {
            c.response_id = self.id;
        }
        if c.response_model.is_empty() {
            c.response_model = self.model;
        }
        c.first_token = self.first_token;
        c.error_type = c.error_type.or(self.error_type);
        c.truncated |= self.truncated;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_object_wins_and_partial_state_covers_cancellation() {
        let now = Instant::now();
        let mut s = ResponsesStream::default();
        s.on_event(r#"{"type":"response.created","response":{"id":"resp_1","model":"gpt-4.1","status":"in_progress"}}"#, now, 1000);
        s.on_event(
            r#"{"type":"response.output_text.delta","item_id":"m1","delta":"Hi"}"#,
            now,
            1000,
        );
        let partial = ResponsesStream {
            id: s.id.clone(),
            model: s.model.clone(),
            text: s.text.clone(),
            first_token: s.first_token,
            ..ResponsesStream::default()
        }
        .finish();
        assert_eq!(partial.output[0].content, "Hi");
        assert_eq!(partial.response_id, "resp_1");
        s.on_event(r#"{"type":"response.completed","response":{"id":"resp_1","model":"gpt-4.1-2025-04-14","status":"completed",
            "output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hi there"}]}],
            "usage":{"input_tokens":5,"output_tokens":3,"total_tokens":8,"input_tokens_details":{"cached_tokens":0},"output_tokens_details":{"reasoning_tokens":0}}}}"#, now, 1000);
        let c = s.finish();
        assert_eq!(c.output[0].content, "Hi there");
        assert_eq!(c.response_model, "gpt-4.1-2025-04-14");
        assert_eq!(c.usage.output, Some(3));
        assert_eq!(c.finish_reasons, vec!["stop"]);
        assert!(c.first_token.is_some());
    }
}
