//! Content and outcomes carried by events: span events and OTLP log records.
//!
//! Both transports carry the same event shapes, so one reader serves both:
//! the legacy per-message events (`gen_ai.{system,user,assistant,tool}.message`,
//! `gen_ai.choice`, body in a kvlist for logs or flat attributes for span events),
//! the oldest `gen_ai.content.prompt|completion` events (a JSON string attribute),
//! the current `gen_ai.client.inference.operation.details` (structured
//! `gen_ai.input.messages` etc. in attributes) and `gen_ai.evaluation.result`.
//!
//! Invariant: an event this module does not know yields nothing (never an error).

use serde_json::{Map, Value};

use crate::attrs::{Attrs, to_json_parsing_strings};
use crate::keys::{loupe, otel};
use crate::messages::{message_from_value, messages_from_value, system_message};
use crate::span::{Evaluation, Message};

/// What one event contributes to its span.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventContent {
    pub input: Vec<Message>,
    pub output: Vec<Message>,
    pub tool_definitions: Option<Value>,
    pub evaluation: Option<Evaluation>,
}

/// Read one event. `body` is the log record body (span events have none: their
/// attributes are the body).
pub fn read_event(name: &str, body: Option<&Value>, a: &Attrs) -> EventContent {
    let mut out = EventContent::default();
    let attrs_body;
    let body = match body.filter(|b| !b.is_null()) {
        Some(b) => b,
        None => {
            attrs_body = attrs_as_object(a);
            &attrs_body
        }
    };
    match name {
        otel::EVENT_SYSTEM_MESSAGE => out.input.extend(role_message(body, "system")),
        otel::EVENT_USER_MESSAGE => out.input.extend(role_message(body, "user")),
        otel::EVENT_ASSISTANT_MESSAGE => out.input.extend(role_message(body, "assistant")),
        otel::EVENT_TOOL_MESSAGE => out.input.extend(role_message(body, "tool")),
        otel::EVENT_CHOICE => {
            // `{index, finish_reason, message:{role, content, tool_calls}}`
            let msg = body.get("message").unwrap_or(body);
            if let Some(mut m) = message_from_value(msg, "assistant") {
                if let Some(r) = body.get("finish_reason").and_then(Value::as_str) {
                    m.finish_reason = r.to_owned();
                }
                out.output.push(m);
            }
        }
        otel::EVENT_CONTENT_PROMPT => {
            if let Some(v) = a.json_of(&[otel::PROMPT]) {
                out.input = messages_from_value(&v, "user");
            }
        }
        otel::EVENT_CONTENT_COMPLETION => {
            if let Some(v) = a.json_of(&[otel::COMPLETION]) {
                out.output = messages_from_value(&v, "assistant");
            }
        }
        otel::EVENT_OPERATION_DETAILS => {
            if let Some(sys) = a
                .json_of(&[otel::SYSTEM_INSTRUCTIONS])
                .and_then(|v| system_message(&v))
            {
                out.input.push(sys);
            }
            if let Some(v) = a.json_of(&[otel::INPUT_MESSAGES]) {
                out.input.extend(messages_from_value(&v, "user"));
            }
            if let Some(v) = a.json_of(&[otel::OUTPUT_MESSAGES]) {
                out.output = messages_from_value(&v, "assistant");
            }
            out.tool_definitions = a.json_of(&[otel::TOOL_DEFINITIONS]);
        }
        otel::EVENT_EVALUATION_RESULT => out.evaluation = evaluation_from(a),
        _ => {}
    }
    out
}

/// An evaluation from `gen_ai.evaluation.*` keys (on an event or on the span itself).
pub fn evaluation_from(a: &Attrs) -> Option<Evaluation> {
    let name = a.str_of(&[otel::EVALUATION_NAME])?;
    let label = a
        .str_of(&[otel::EVALUATION_SCORE_LABEL])
        .unwrap_or_default();
    let score = a.f64_of(&[otel::EVALUATION_SCORE_VALUE]);
    if label.is_empty() && score.is_none() {
        return None;
    }
    Some(Evaluation {
        name,
        label,
        score,
        explanation: a
            .str_of(&[otel::EVALUATION_EXPLANATION])
            .unwrap_or_default(),
        source: a
            .str_of(&[loupe::EVALUATION_SOURCE])
            .unwrap_or_else(|| "app".to_owned()),
    })
}

/// A per-message event body as a message of the role its event name gives
/// (the body's own `role`, when present, wins).
fn role_message(body: &Value, role: &str) -> Option<Message> {
    let mut m = message_from_value(body, role)?;
    if role == "tool"
        && m.tool_call_id.is_empty()
        && let Some(id) = body.get("id").and_then(Value::as_str)
    {
        m.tool_call_id = id.to_owned();
    }
    Some(m)
}

/// Span events carry their "body" as flat attributes; the provider attribute is noise.
fn attrs_as_object(a: &Attrs) -> Value {
    let mut m = Map::new();
    for k in a.keys() {
        if k == otel::SYSTEM || k == otel::PROVIDER_NAME {
            continue;
        }
        if let Some(v) = a.get(k) {
            m.insert(k.to_owned(), to_json_parsing_strings(v));
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
    use serde_json::json;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.to_owned(),
            value: Some(AnyValue {
                value: Some(Av::StringValue(v.to_owned())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn choice_body_with_tool_calls() {
        let body = json!({"index":0,"finish_reason":"tool_calls","message":{"role":"assistant",
            "tool_calls":[{"id":"c","type":"function","function":{"name":"get_weather","arguments":"{}"}}]}});
        let e = read_event(otel::EVENT_CHOICE, Some(&body), &Attrs::default());
        assert_eq!(e.output[0].tool_calls[0].name, "get_weather");
        assert_eq!(e.output[0].finish_reason, "tool_calls");
    }

    #[test]
    fn span_event_attributes_are_the_body() {
        let kvs = vec![kv("content", "hello"), kv(otel::SYSTEM, "openai")];
        let e = read_event(otel::EVENT_USER_MESSAGE, None, &Attrs::new(&kvs));
        assert_eq!(e.input[0].role, "user");
        assert_eq!(e.input[0].content, "hello");
    }

    #[test]
    fn tool_message_id_becomes_tool_call_id() {
        let body = json!({"content":"21C","id":"call_1"});
        let e = read_event(otel::EVENT_TOOL_MESSAGE, Some(&body), &Attrs::default());
        assert_eq!(e.input[0].tool_call_id, "call_1");
    }

    #[test]
    fn evaluation_needs_a_name_and_an_outcome() {
        let kvs = vec![
            kv(otel::EVALUATION_NAME, "json_schema"),
            kv(otel::EVALUATION_SCORE_LABEL, "fail"),
        ];
        let e = read_event(otel::EVENT_EVALUATION_RESULT, None, &Attrs::new(&kvs));
        let ev = e.evaluation.unwrap();
        assert_eq!(
            (ev.name.as_str(), ev.label.as_str(), ev.source.as_str()),
            ("json_schema", "fail", "app")
        );
        let only_name = vec![kv(otel::EVALUATION_NAME, "x")];
        assert!(evaluation_from(&Attrs::new(&only_name)).is_none());
    }
}
