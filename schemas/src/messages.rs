//! Turning chat content of any shape into canonical [`Message`]s.
//!
//! One tolerant reader serves every convention: OTel GenAI `parts` messages
//! (`{role, parts:[{type:text|tool_call|tool_call_response|reasoning,...}]}`),
//! OpenAI chat messages (`content` string or parts, `tool_calls`), Anthropic content
//! blocks (`text`, `tool_use`, `tool_result`, `thinking`), Responses API items,
//! Gemini `parts`, legacy log-record bodies, and OpenInference / OpenLLMetry
//! flattened messages once unflattened (their `message` / `tool_call` /
//! `message_content` wrappers are peeled here).
//!
//! Invariants: never panics; unknown part types are skipped, never guessed into text;
//! reasoning goes to `Message::reasoning`, never into `content` (validation reads
//! `content` as the model's answer). [`to_json`] writes the canonical body
//! byte for byte as `serde_json` writes `Vec<Message>`, only faster.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::attrs::json_scalar_to_string;
use crate::span::{Message, ToolCall};

/// Parse a list of messages (array, single object, or a bare string as one message).
pub fn messages_from_value(v: &Value, default_role: &str) -> Vec<Message> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(|m| message_from_value(m, default_role))
            .collect(),
        Value::Object(_) => message_from_value(v, default_role).into_iter().collect(),
        Value::String(s) if !s.is_empty() => vec![Message {
            role: default_role.to_owned(),
            content: s.clone(),
            ..Message::default()
        }],
        _ => Vec::new(),
    }
}

/// A message of the common all-text shape, its text borrowed from the
/// attribute's JSON where that held no escape.
///
/// Invariant (what lets [`MessageList::to_json`] copy it without escaping):
/// a borrowed field is the raw text of a JSON string that had no escape, so
/// it holds no `"`, `\\` or control character. Only [`text_messages_fast`]
/// makes these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMessage<'a> {
    role: Cow<'a, str>,
    content: Cow<'a, str>,
    finish_reason: Cow<'a, str>,
}

impl TextMessage<'_> {
    pub fn role(&self) -> &str {
        &self.role
    }

    pub fn content(&self) -> &str {
        &self.content
    }

    /// The same message as a general [`Message`].
    pub fn to_message(&self) -> Message {
        Message {
            role: self.role.to_string(),
            content: self.content.to_string(),
            finish_reason: self.finish_reason.to_string(),
            ..Message::default()
        }
    }
}

/// The common shape of OTel GenAI messages read without building a JSON
/// tree: a JSON array of `{role, parts: [{type: "text", content}], finish_reason?}`.
/// `None` for anything else (other part types, extra keys, wrappers, a
/// non-string role...), which the general reader then takes. When `Some`, the
/// messages equal `messages_from_value` of the parsed text (tested).
pub fn text_messages_fast<'a>(json: &'a str, default_role: &str) -> Option<Vec<TextMessage<'a>>> {
    crate::text_scan::scan(json.trim_start())?
        .into_iter()
        .map(|m| {
            if m.parts.iter().any(|(kind, _)| kind != "text") {
                return None;
            }
            let mut texts = m
                .parts
                .into_iter()
                .map(|(_, c)| c)
                .filter(|c| !c.is_empty());
            let content = match (texts.next(), texts.next()) {
                (None, _) => Cow::Borrowed(""),
                (Some(only), None) => only,
                (Some(first), Some(second)) => {
                    let mut joined = first.into_owned();
                    push_text(&mut joined, &second);
                    texts.for_each(|t| push_text(&mut joined, &t));
                    Cow::Owned(joined)
                }
            };
            Some(TextMessage {
                role: if m.role.is_empty() {
                    Cow::Owned(default_role.to_owned())
                } else {
                    m.role
                },
                content,
                finish_reason: m.finish_reason.unwrap_or_default(),
            })
        })
        .collect()
}

/// A message list on its way to a body: general messages, or the common
/// all-text shape still borrowed from its attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageList<'a> {
    General(Vec<Message>),
    Text(Vec<TextMessage<'a>>),
}

impl From<Vec<Message>> for MessageList<'_> {
    fn from(v: Vec<Message>) -> Self {
        MessageList::General(v)
    }
}

impl MessageList<'_> {
    pub fn is_empty(&self) -> bool {
        match self {
            MessageList::General(v) => v.is_empty(),
            MessageList::Text(v) => v.is_empty(),
        }
    }

    /// The canonical body: what [`to_json`] writes for the same messages.
    pub fn to_json(&self) -> String {
        let v = match self {
            MessageList::General(v) => return to_json(v),
            MessageList::Text(v) => v,
        };
        let size: usize = v.iter().map(|m| m.role.len() + m.content.len() + 48).sum();
        json_array(v, size, |out, m| {
            out.push_str("{\"role\":");
            push_json(out, &m.role, raw(&m.role));
            push_field(out, "content", &m.content, raw(&m.content));
            push_field(
                out,
                "finish_reason",
                &m.finish_reason,
                raw(&m.finish_reason),
            );
            out.push('}');
        })
    }

    /// Every message as a general one.
    pub fn into_general(self) -> Vec<Message> {
        match self {
            MessageList::General(v) => v,
            MessageList::Text(v) => v.iter().map(TextMessage::to_message).collect(),
        }
    }
}

/// Whether a text of a [`TextMessage`] goes into JSON as it is: borrowed
/// text is JSON-safe by that type's invariant (the `Cow` is the argument:
/// whether it borrows is the point).
#[allow(clippy::ptr_arg)]
fn raw(s: &Cow<'_, str>) -> bool {
    matches!(s, Cow::Borrowed(_))
}

/// System instructions (`gen_ai.system_instructions`, Anthropic `system`, Responses
/// `instructions`): a string or a list of parts, as one `system` message.
pub fn system_message(v: &Value) -> Option<Message> {
    let mut m = Message {
        role: "system".to_owned(),
        ..Message::default()
    };
    match v {
        Value::String(s) => m.content = s.clone(),
        Value::Array(parts) => {
            for p in parts {
                add_part(&mut m, p);
            }
        }
        Value::Object(_) => add_part(&mut m, v),
        _ => {}
    }
    (!is_empty(&m)).then_some(m)
}

/// One message from any supported shape; `None` when it carries nothing.
pub fn message_from_value(v: &Value, default_role: &str) -> Option<Message> {
    let obj = match v {
        Value::Object(o) => peel(o, "message"),
        Value::String(s) if !s.is_empty() => {
            return Some(Message {
                role: default_role.to_owned(),
                content: s.clone(),
                ..Message::default()
            });
        }
        _ => return None,
    };
    let mut m = Message {
        role: str_field(obj, &["role"]).unwrap_or_else(|| default_role.to_owned()),
        ..Message::default()
    };
    // Responses API items carry their kind in `type` instead of a role.
    match str_field(obj, &["type"]).as_deref() {
        Some("function_call") => {
            m.role = "assistant".to_owned();
            add_part(&mut m, v);
            return Some(m);
        }
        Some("function_call_output") => {
            m.role = "tool".to_owned();
            add_part(&mut m, v);
            return Some(m);
        }
        Some("reasoning") if obj.get("role").is_none() => {
            m.role = "assistant".to_owned();
            add_part(&mut m, v);
            return (!is_empty(&m)).then_some(m);
        }
        _ => {}
    }
    for key in ["content", "parts", "contents"] {
        match obj.get(key) {
            Some(Value::String(s)) => push_text(&mut m.content, s),
            Some(Value::Array(parts)) => {
                for p in parts {
                    add_part(&mut m, p);
                }
            }
            Some(p @ Value::Object(_)) => add_part(&mut m, p),
            _ => {}
        }
    }
    if let Some(Value::Array(calls)) = obj.get("tool_calls") {
        // OpenInference repeats tool calls in `contents`; keep one copy.
        let before = m.tool_calls.len();
        for c in calls {
            if let Some(tc) = tool_call_from(c)
                && !m.tool_calls[..before].iter().any(|t| same_call(t, &tc))
            {
                m.tool_calls.push(tc);
            }
        }
    }
    if let Some(id) = str_field(obj, &["tool_call_id", "tool_use_id", "call_id"]) {
        m.tool_call_id = id;
    } else if m.role == "tool"
        && let Some(id) = str_field(obj, &["id"])
    {
        m.tool_call_id = id;
    }
    if let Some(r) = str_field(obj, &["finish_reason", "stop_reason"]) {
        m.finish_reason = r;
    }
    (!is_empty(&m) || obj.contains_key("role")).then_some(m)
}

/// Add one content part / block to a message.
fn add_part(m: &mut Message, part: &Value) {
    let obj = match part {
        Value::String(s) => {
            push_text(&mut m.content, s);
            return;
        }
        Value::Object(o) => peel(o, "message_content"),
        _ => return,
    };
    let kind = str_field(obj, &["type"]).unwrap_or_default();
    match kind.as_str() {
        "text" | "input_text" | "output_text" | "" => {
            if let Some(t) = str_field(obj, &["text", "content"]) {
                push_text(&mut m.content, &t);
            } else if let Some(fc) = obj.get("functionCall").or_else(|| obj.get("function_call")) {
                // Gemini: `{functionCall: {name, args}}` parts have no type.
                if let Some(tc) = tool_call_from(fc) {
                    m.tool_calls.push(tc);
                }
            } else if let Some(fr) = obj.get("functionResponse") {
                push_text(&mut m.content, &json_text(fr.get("response").unwrap_or(fr)));
            } else if obj.contains_key("tool_call")
                && let Some(tc) = tool_call_from(part)
            {
                push_unique(&mut m.tool_calls, tc);
            }
        }
        "reasoning" | "thinking" => {
            if let Some(t) = str_field(obj, &["content", "thinking", "text"]) {
                push_text(&mut m.reasoning, &t);
            } else if let Some(Value::Array(summary)) = obj.get("summary") {
                for s in summary {
                    if let Some(t) = s.get("text").and_then(Value::as_str) {
                        push_text(&mut m.reasoning, t);
                    }
                }
            }
        }
        "tool_call" | "tool_use" | "function_call" | "function" | "server_tool_use" => {
            if let Some(tc) = tool_call_from(part) {
                push_unique(&mut m.tool_calls, tc);
            }
        }
        "tool_call_response" | "tool_result" | "function_call_output" => {
            if let Some(id) = str_field(obj, &["id", "tool_use_id", "call_id", "tool_call_id"]) {
                m.tool_call_id = id;
            }
            let body = obj
                .get("response")
                .or_else(|| obj.get("content"))
                .or_else(|| obj.get("output"));
            if let Some(b) = body {
                match b {
                    // Anthropic tool_result content may itself be a list of text blocks.
                    Value::Array(inner) => {
                        for p in inner {
                            add_part(m, p);
                        }
                    }
                    other => push_text(&mut m.content, &json_text(other)),
                }
            }
        }
        // Images, audio, files, blobs, redacted thinking, signatures: not text.
        _ => {}
    }
}

/// A tool call from OpenAI (`{id, function:{name, arguments}}`), OTel parts
/// (`{id, name, arguments}`), Anthropic (`{id, name, input}`), Gemini (`{name, args}`),
/// Responses (`{call_id, name, arguments}`) or OpenInference (`{tool_call:{...}}`).
pub fn tool_call_from(v: &Value) -> Option<ToolCall> {
    let obj = peel(v.as_object()?, "tool_call");
    let func = obj.get("function").and_then(Value::as_object);
    let name = func
        .and_then(|f| str_field(f, &["name"]))
        .or_else(|| str_field(obj, &["name"]))?;
    let args = func
        .and_then(|f| f.get("arguments"))
        .or_else(|| obj.get("arguments"))
        .or_else(|| obj.get("input"))
        .or_else(|| obj.get("args"))
        .map(json_text)
        .unwrap_or_default();
    Some(ToolCall {
        id: str_field(obj, &["id", "call_id"]).unwrap_or_default(),
        name,
        arguments: args,
    })
}

/// The text a value stands for: strings as they are, structures as compact JSON.
pub fn json_text(v: &Value) -> String {
    json_scalar_to_string(v)
}

fn push_unique(calls: &mut Vec<ToolCall>, tc: ToolCall) {
    if !calls.iter().any(|t| same_call(t, &tc)) {
        calls.push(tc);
    }
}

fn same_call(a: &ToolCall, b: &ToolCall) -> bool {
    a.name == b.name && (a.id == b.id || a.id.is_empty() || b.id.is_empty())
}

/// OpenInference wraps each item in a single-key object (`{"message": {...}}`).
fn peel<'v>(o: &'v Map<String, Value>, wrapper: &str) -> &'v Map<String, Value> {
    match o.get(wrapper) {
        Some(Value::Object(inner)) if o.len() == 1 => inner,
        _ => o,
    }
}

fn str_field(o: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().filter_map(|k| o.get(*k)).find_map(|v| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn push_text(buf: &mut String, s: &str) {
    if s.is_empty() {
        return;
    }
    if !buf.is_empty() {
        buf.push('\n');
    }
    buf.push_str(s);
}

fn is_empty(m: &Message) -> bool {
    m.content.is_empty() && m.tool_calls.is_empty() && m.reasoning.is_empty()
}

/// Messages of a provider request body (OpenInference `input.value`): Anthropic
/// `system`, Responses `instructions` / `input`, chat `messages`, completion
/// `prompt`, embeddings `input`, Gemini `contents`.
pub fn request_body_messages(body: &Value) -> Vec<Message> {
    let mut out = Vec::new();
    let Some(obj) = body.as_object() else {
        return messages_from_value(body, "user");
    };
    for key in ["system", "instructions", "system_instruction"] {
        if let Some(m) = obj.get(key).and_then(system_message) {
            out.push(m);
        }
    }
    for key in ["messages", "contents", "input", "prompt"] {
        if let Some(v) = obj.get(key) {
            out.extend(messages_from_value(v, "user"));
        }
    }
    out
}

/// Messages of a provider response body (OpenInference `output.value`): chat
/// `choices[].message` / completion `choices[].text`, an Anthropic message, Responses
/// `output[]`, Gemini `candidates[].content`.
pub fn response_body_messages(body: &Value) -> Vec<Message> {
    let Some(obj) = body.as_object() else {
        return messages_from_value(body, "assistant");
    };
    let mut out = Vec::new();
    if let Some(Value::Array(choices)) = obj.get("choices") {
        for c in choices {
            let inner = c.get("message").or_else(|| c.get("delta"));
            let mut m = match (inner, c.get("text")) {
                (Some(msg), _) => message_from_value(msg, "assistant"),
                (None, Some(Value::String(t))) => {
                    message_from_value(&Value::String(t.clone()), "assistant")
                }
                _ => None,
            };
            if let (Some(m), Some(r)) = (m.as_mut(), c.get("finish_reason").and_then(Value::as_str))
            {
                m.finish_reason = r.to_owned();
            }
            out.extend(m);
        }
    } else if let Some(Value::Array(items)) = obj.get("output") {
        out.extend(
            items
                .iter()
                .filter_map(|i| message_from_value(i, "assistant")),
        );
    } else if let Some(Value::Array(cands)) = obj.get("candidates") {
        for c in cands {
            let mut m = c
                .get("content")
                .and_then(|x| message_from_value(x, "assistant"));
            if let Some(m) = m.as_mut() {
                if m.role == "model" {
                    m.role = "assistant".to_owned();
                }
                if let Some(r) = c.get("finishReason").and_then(Value::as_str) {
                    m.finish_reason = r.to_owned();
                }
            }
            out.extend(m);
        }
    } else if obj.get("content").is_some() {
        out.extend(message_from_value(body, "assistant"));
    }
    out
}

/// Text of the first output message that has any: the model's answer.
pub fn completion_text(messages: &[Message]) -> Option<&str> {
    messages
        .iter()
        .filter(|m| m.role != "tool")
        .map(|m| m.content.as_str())
        .find(|c| !c.is_empty())
}

/// The canonical JSON array of `messages`: the bytes `serde_json::to_string`
/// makes of them (field order and skipped empty fields of the serde derive),
/// with string escaping that skips eight plain bytes at a time, as bodies are
/// long runs of plain text.
pub fn to_json(messages: &[Message]) -> String {
    let size: usize = messages
        .iter()
        .map(|m| m.role.len() + m.content.len() + m.reasoning.len() + 48)
        .sum();
    json_array(messages, size, |out, m| {
        out.push_str("{\"role\":");
        push_json_str(out, &m.role);
        push_field(out, "content", &m.content, false);
        if !m.tool_calls.is_empty() {
            out.push_str(",\"tool_calls\":[");
            for (j, c) in m.tool_calls.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                out.push('{');
                if !c.id.is_empty() {
                    out.push_str("\"id\":");
                    push_json_str(out, &c.id);
                    out.push(',');
                }
                out.push_str("\"name\":");
                push_json_str(out, &c.name);
                push_field(out, "arguments", &c.arguments, false);
                out.push('}');
            }
            out.push(']');
        }
        push_field(out, "tool_call_id", &m.tool_call_id, false);
        push_field(out, "finish_reason", &m.finish_reason, false);
        push_field(out, "reasoning", &m.reasoning, false);
        out.push('}');
    })
}

/// `[item,item,...]`, each item written by `write` (`size`: a capacity hint).
fn json_array<T>(items: &[T], size: usize, mut write: impl FnMut(&mut String, &T)) -> String {
    let mut out = String::with_capacity(size + 2);
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(&mut out, item);
    }
    out.push(']');
    out
}

/// `,"name":"value"`, or nothing when `value` is empty (see [`push_json`]).
fn push_field(out: &mut String, name: &str, value: &str, raw: bool) {
    if !value.is_empty() {
        out.push_str(",\"");
        out.push_str(name);
        out.push_str("\":");
        push_json(out, value, raw);
    }
}

/// `s` as a JSON string: copied between quotes when `raw` (text known to
/// need no escape), else escaped.
fn push_json(out: &mut String, s: &str, raw: bool) {
    if raw {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        push_json_str(out, s);
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes in `w` is a control byte, `"` or `\\`.
fn any_escape(w: u64) -> bool {
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    (control | zero_in(w ^ (ONES * u64::from(b'"'))) | zero_in(w ^ (ONES * u64::from(b'\\')))) != 0
}

/// `s` as a JSON string, escaped as serde_json escapes it.
fn push_json_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            if !any_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let short = match b {
            b'"' => Some('"'),
            b'\\' => Some('\\'),
            b'\n' => Some('n'),
            b'\r' => Some('r'),
            b'\t' => Some('t'),
            0x08 => Some('b'),
            0x0c => Some('f'),
            0x00..=0x1f => None,
            _ => {
                i += 1;
                continue;
            }
        };
        // Every byte escaped is ASCII, so `start..i` ends on a char boundary.
        out.push_str(&s[start..i]);
        out.push('\\');
        match short {
            Some(c) => out.push(c),
            None => {
                out.push_str("u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        i += 1;
        start = i;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts that exercise the escaper: every ASCII byte, quotes and
    /// backslashes at every offset of an eight-byte chunk, multi-byte text.
    fn tricky_texts() -> Vec<String> {
        let mut texts: Vec<String> = vec![
            String::new(),
            "plain text that is long enough for several chunks".into(),
            (0u8..0x80).map(char::from).collect(),
            "日本語 🙂 é \u{7f} \u{a0} \u{2028}".into(),
        ];
        for special in [
            '"', '\\', '\n', '\u{1}', '\u{1f}', '\u{8}', '\u{c}', '\t', '\r',
        ] {
            for offset in 0..17 {
                let mut t = "a".repeat(offset);
                t.push(special);
                t.push_str(&"b".repeat(17 - offset));
                t.push('é');
                t.push(special);
                texts.push(t);
            }
        }
        texts
    }

    #[test]
    fn text_bodies_copied_from_their_attribute_are_what_serde_json_writes() {
        // Texts written raw (no escape: borrowed and copied as they are) and
        // with every kind of escape, and "\/" and "\u0041" escapes that
        // serde_json does not write itself.
        let mut attrs: Vec<String> = tricky_texts()
            .iter()
            .map(|t| serde_json::to_string(t).unwrap())
            .collect();
        attrs.extend([r#""a\/b""#.to_owned(), r#""\u0041\u00e9""#.to_owned()]);
        for (k, text) in attrs.iter().enumerate() {
            let other = &attrs[(k * 7 + 3) % attrs.len()];
            let json = format!(
                r#"[{{"role":"user","parts":[{{"type":"text","content":{text}}}]}},{{"role":"assistant","parts":[{{"type":"text","content":{other}}},{{"type":"text","content":{text}}}],"finish_reason":{other}}}]"#
            );
            let fast = MessageList::Text(text_messages_fast(&json, "user").expect(&json));
            let general = fast.clone().into_general();
            assert_eq!(
                fast.to_json(),
                serde_json::to_string(&general).unwrap(),
                "{json}"
            );
            assert_eq!(general, super::tests::general(&json, "user"), "{json}");
        }
    }

    #[test]
    fn to_json_writes_what_serde_json_writes() {
        let texts = tricky_texts();
        for (k, t) in texts.iter().enumerate() {
            let other = &texts[(k * 7 + 3) % texts.len()];
            let messages = vec![
                Message {
                    role: t.clone(),
                    content: other.clone(),
                    ..Default::default()
                },
                Message {
                    role: "assistant".into(),
                    tool_calls: vec![
                        ToolCall {
                            id: other.clone(),
                            name: t.clone(),
                            arguments: t.clone(),
                        },
                        ToolCall {
                            name: "f".into(),
                            ..Default::default()
                        },
                    ],
                    tool_call_id: t.clone(),
                    finish_reason: other.clone(),
                    reasoning: t.clone(),
                    ..Default::default()
                },
            ];
            let want = serde_json::to_string(&messages).unwrap();
            assert_eq!(to_json(&messages), want, "{t:?}");
            let back: Vec<Message> = serde_json::from_str(&to_json(&messages)).unwrap();
            assert_eq!(back, messages);
        }
        assert_eq!(to_json(&[]), "[]");
    }

    /// The general reader of the same text, as the slow path reads it.
    fn general(text: &str, role: &str) -> Vec<Message> {
        let v = crate::attrs::parse_json_container(text)
            .unwrap_or_else(|| Value::String(text.to_owned()));
        messages_from_value(&v, role)
    }

    #[test]
    fn the_fast_reader_agrees_with_the_general_one_or_declines() {
        let taken = [
            r#"[{"role":"user","parts":[{"type":"text","content":"Hi"}]}]"#,
            r#" [{"role":"system","parts":[{"type":"text","content":"a"},{"type":"text","content":""},{"type":"text","content":"b\n\u00e9"}]},{"role":"user","parts":[]}]"#,
            r#"[{"role":"assistant","parts":[{"type":"text","content":"ok"}],"finish_reason":"stop"}]"#,
            r#"[{"role":"assistant","parts":[{"type":"text","content":"ok"}],"finish_reason":""}]"#,
            r#"[{"role":"assistant","parts":[{"type":"text","content":"ok"}],"finish_reason":null}]"#,
            r#"[{"role":"","parts":[{"type":"text","content":"no role"}]}]"#,
            "[]",
        ];
        for t in taken {
            let fast = MessageList::Text(text_messages_fast(t, "user").expect(t));
            let general = general(t, "user");
            assert_eq!(fast.to_json(), to_json(&general), "{t}");
            assert_eq!(fast.into_general(), general, "{t}");
        }
        let declined = [
            r#"[{"role":"assistant","parts":[{"type":"tool_call","id":"c","name":"f","arguments":{}}]}]"#,
            r#"[{"role":"user","parts":[{"type":"text","content":"x","extra":1}]}]"#,
            r#"[{"role":"user","content":"plain"}]"#,
            r#"[{"message":{"role":"user","parts":[]}}]"#,
            r#"[{"role":7,"parts":[]}]"#,
            r#"[{"role":"user","parts":[{"type":"text","content":5}]}]"#,
            r#"[{"role":"user","role":"system","parts":[]}]"#,
            r#"{"role":"user","parts":[]}"#,
            "not json",
            r#"[{"role":"user","parts":[{"type":"text","content":"x"}]}] trailing"#,
        ];
        for t in declined {
            assert_eq!(text_messages_fast(t, "user"), None, "{t}");
        }
    }
    use serde_json::json;

    #[test]
    fn otel_parts_with_tool_calls_and_reasoning() {
        let v = json!([{"role":"assistant","parts":[
            {"type":"reasoning","content":"think"},
            {"type":"text","content":"hi"},
            {"type":"tool_call","id":"c1","name":"get_weather","arguments":{"city":"Paris"}}
        ],"finish_reason":"tool_calls"}]);
        let m = messages_from_value(&v, "user");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].content, "hi");
        assert_eq!(m[0].reasoning, "think");
        assert_eq!(m[0].tool_calls[0].name, "get_weather");
        assert_eq!(m[0].tool_calls[0].arguments, r#"{"city":"Paris"}"#);
        assert_eq!(m[0].finish_reason, "tool_calls");
    }

    #[test]
    fn openai_chat_shapes() {
        let v = json!([
            {"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c","content":"42"}
        ]);
        let m = messages_from_value(&v, "user");
        assert_eq!(m[0].content, "a");
        assert_eq!(m[1].tool_calls[0].id, "c");
        assert_eq!(m[2].tool_call_id, "c");
        assert_eq!(m[2].content, "42");
    }

    #[test]
    fn anthropic_blocks() {
        let v = json!({"role":"user","content":[
            {"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"21C"}]}
        ]});
        let m = message_from_value(&v, "user").unwrap();
        assert_eq!(m.tool_call_id, "t1");
        assert_eq!(m.content, "21C");
        let r = json!({"id":"msg_1","type":"message","role":"assistant","stop_reason":"tool_use",
            "content":[{"type":"thinking","thinking":"hmm"},{"type":"tool_use","id":"t1","name":"w","input":{"c":1}}]});
        let out = response_body_messages(&r);
        assert_eq!(out[0].tool_calls[0].arguments, r#"{"c":1}"#);
        assert_eq!(out[0].reasoning, "hmm");
        assert_eq!(out[0].finish_reason, "tool_use");
    }

    #[test]
    fn openinference_wrappers_are_peeled_without_duplicate_calls() {
        let v = json!([{"message":{"role":"assistant",
            "contents":[{"message_content":{"type":"text","text":"let me look"}},
                        {"tool_call":{"id":"t","function":{"name":"w","arguments":"{}"}}}],
            "tool_calls":[{"tool_call":{"id":"t","function":{"name":"w","arguments":"{}"}}}]}}]);
        let m = messages_from_value(&v, "user");
        assert_eq!(m[0].content, "let me look");
        assert_eq!(m[0].tool_calls.len(), 1);
    }

    #[test]
    fn request_and_response_bodies() {
        let req =
            json!({"model":"o4-mini","instructions":"Be brief.","input":"Capital of France?"});
        let m = request_body_messages(&req);
        assert_eq!(m[0].role, "system");
        assert_eq!(m[1].content, "Capital of France?");
        let resp = json!({"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":"Paris"}}]});
        let out = response_body_messages(&resp);
        assert_eq!(out[0].content, "Paris");
        assert_eq!(out[0].finish_reason, "stop");
        let responses = json!({"output":[{"type":"reasoning","summary":[]},
            {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Paris"}]}]});
        assert_eq!(
            completion_text(&response_body_messages(&responses)),
            Some("Paris")
        );
    }
}
