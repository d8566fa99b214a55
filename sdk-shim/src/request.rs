//! What the shim learns from a client's request body, and the one change it may
//! make to it (asking an OpenAI stream for usage).
//!
//! Invariants: the body is only rewritten when usage must be injected; everything
//! else reaches the upstream byte for byte. Nothing here reads headers, so no
//! credential can end up in a [`RequestInfo`].

use serde_json::{Map, Value};

use schemas::Message;
use schemas::convention::declared_output;
use schemas::messages::{messages_from_value, system_message};

use crate::provider::Endpoint;

/// A request parameter recorded as `gen_ai.request.<key>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(i64),
    Float(f64),
    Str(String),
    Strs(Vec<String>),
    Bool(bool),
}

/// Where the JSON the request declared will be in the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// The answer text (`response_format`, Responses `text.format`, Anthropic output format).
    Text,
    /// The arguments of the named tool call (Anthropic forced `tool_choice`).
    ToolArguments(String),
}

/// A declared JSON output: validate the completion against `schema`, or for
/// parseability when there is none.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputDecl {
    pub name: Option<String>,
    pub schema: Option<Value>,
    pub target: OutputTarget,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestInfo {
    pub model: String,
    pub stream: bool,
    /// The shim added `stream_options.include_usage`; the client must not see its chunk.
    pub injected_usage: bool,
    pub params: Vec<(&'static str, Param)>,
    pub system: Option<Message>,
    pub input: Vec<Message>,
    /// The request's `tools`, as JSON.
    pub tool_definitions: Option<String>,
    pub output: Option<OutputDecl>,
}

/// Read a parsed request body. Content is only kept when `capture_content`.
pub fn read(endpoint: Endpoint, body: &Value, capture_content: bool) -> RequestInfo {
    let obj = body.as_object();
    let get = |k: &str| obj.and_then(|o| o.get(k));
    let mut info = RequestInfo {
        model: get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        stream: get("stream").and_then(Value::as_bool).unwrap_or(false),
        ..RequestInfo::default()
    };
    if let Some(o) = obj {
        info.params = params(endpoint, o);
    }
    info.output = output_decl(endpoint, body);
    if capture_content {
        let (system, input) = match endpoint {
            Endpoint::Chat => (None, get("messages")),
            Endpoint::Completions => (None, get("prompt")),
            Endpoint::Embeddings => (None, None),
            Endpoint::Responses => (get("instructions"), get("input")),
            Endpoint::Messages => (get("system"), get("messages")),
        };
        info.system = system.and_then(system_message);
        info.input = input
            .map(|v| messages_from_value(v, "user"))
            .unwrap_or_default();
        info.tool_definitions = get("tools").filter(|t| !t.is_null()).map(Value::to_string);
    }
    info
}

/// For an OpenAI stream that does not ask for usage, ask for it. Returns true when
/// the body was changed (the client must then not see the usage-only chunk).
pub fn inject_include_usage(endpoint: Endpoint, body: &mut Value) -> bool {
    if !matches!(endpoint, Endpoint::Chat | Endpoint::Completions) {
        return false;
    }
    let Some(obj) = body.as_object_mut() else {
        return false;
    };
    if obj.get("stream").and_then(Value::as_bool) != Some(true) {
        return false;
    }
    let already = obj
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    if already {
        return false;
    }
    let opts = obj
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if !opts.is_object() {
        *opts = Value::Object(Map::new());
    }
    if let Some(o) = opts.as_object_mut() {
        o.insert("include_usage".to_owned(), Value::Bool(true));
    }
    true
}

fn params(endpoint: Endpoint, o: &Map<String, Value>) -> Vec<(&'static str, Param)> {
    // (body key, gen_ai.request.* suffix)
    const COMMON: &[(&str, &str)] = &[
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_k", "top_k"),
        ("max_tokens", "max_tokens"),
        ("max_completion_tokens", "max_tokens"),
        ("max_output_tokens", "max_tokens"),
        ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"),
        ("seed", "seed"),
        ("n", "choice.count"),
        ("stop", "stop_sequences"),
        ("stop_sequences", "stop_sequences"),
        ("encoding_format", "encoding_formats"),
        ("dimensions", "embedding.dimensions"),
    ];
    let mut out: Vec<(&'static str, Param)> = Vec::new();
    for (key, attr) in COMMON {
        let Some(v) = o.get(*key) else { continue };
        if out.iter().any(|(a, _)| a == attr) {
            continue;
        }
        let p = match (*attr, v) {
            ("stop_sequences" | "encoding_formats", Value::String(s)) => {
                Param::Strs(vec![s.clone()])
            }
            ("stop_sequences" | "encoding_formats", Value::Array(a)) => Param::Strs(
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            ),
            (_, Value::Bool(b)) => Param::Bool(*b),
            (_, Value::Number(n)) => match n.as_i64() {
                Some(i) => Param::Int(i),
                None => match n.as_f64() {
                    Some(f) => Param::Float(f),
                    None => continue,
                },
            },
            (_, Value::String(s)) => Param::Str(s.clone()),
            _ => continue,
        };
        if endpoint != Endpoint::Embeddings && *attr == "encoding_formats" {
            continue;
        }
        out.push((attr, p));
    }
    out
}

fn output_decl(endpoint: Endpoint, body: &Value) -> Option<OutputDecl> {
    if let Some((_, schema)) = declared_output(body) {
        let name = body
            .get("response_format")
            .and_then(|f| f.get("json_schema"))
            .and_then(|j| j.get("name"))
            .or_else(|| {
                body.get("text")
                    .and_then(|t| t.get("format"))
                    .and_then(|f| f.get("name"))
            })
            .and_then(Value::as_str)
            .map(str::to_owned);
        return Some(OutputDecl {
            name,
            schema,
            target: OutputTarget::Text,
        });
    }
    if endpoint != Endpoint::Messages {
        return None;
    }
    // Anthropic's JSON-output idiom: one tool, forced with tool_choice.
    let choice = body.get("tool_choice")?;
    if choice.get("type").and_then(Value::as_str) != Some("tool") {
        return None;
    }
    let name = choice.get("name").and_then(Value::as_str)?;
    let tool = body
        .get("tools")?
        .as_array()?
        .iter()
        .find(|t| t.get("name").and_then(Value::as_str) == Some(name))?;
    Some(OutputDecl {
        name: Some(name.to_owned()),
        schema: tool.get("input_schema").filter(|s| s.is_object()).cloned(),
        target: OutputTarget::ToolArguments(name.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn injects_usage_only_when_streaming_without_it() {
        let mut b = json!({"model":"m","stream":true,"messages":[]});
        assert!(inject_include_usage(Endpoint::Chat, &mut b));
        assert_eq!(b["stream_options"]["include_usage"], true);
        let mut asked = json!({"stream":true,"stream_options":{"include_usage":true}});
        assert!(!inject_include_usage(Endpoint::Chat, &mut asked));
        let mut refused = json!({"stream":true,"stream_options":{"include_usage":false,"x":1}});
        assert!(inject_include_usage(Endpoint::Chat, &mut refused));
        assert_eq!(refused["stream_options"]["x"], 1);
        let mut plain = json!({"stream":false});
        assert!(!inject_include_usage(Endpoint::Chat, &mut plain));
        let mut anthropic = json!({"stream":true});
        assert!(!inject_include_usage(Endpoint::Messages, &mut anthropic));
    }

    #[test]
    fn reads_model_params_content_and_schema() {
        let b = json!({
            "model": "gpt-4o-mini",
            "messages": [{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],
            "temperature": 0.2, "max_completion_tokens": 50, "stop": "END", "n": 1,
            "response_format": {"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object"}}}
        });
        let r = read(Endpoint::Chat, &b, true);
        assert_eq!(r.model, "gpt-4o-mini");
        assert_eq!(r.input.len(), 2);
        assert!(r.params.contains(&("temperature", Param::Float(0.2))));
        assert!(r.params.contains(&("max_tokens", Param::Int(50))));
        assert!(
            r.params
                .contains(&("stop_sequences", Param::Strs(vec!["END".into()])))
        );
        let out = r.output.unwrap();
        assert_eq!(out.name.as_deref(), Some("w"));
        assert_eq!(out.schema, Some(json!({"type":"object"})));
        let no_content = read(Endpoint::Chat, &b, false);
        assert!(no_content.input.is_empty());
    }

    #[test]
    fn anthropic_forced_tool_declares_its_schema() {
        let b = json!({
            "model": "claude-sonnet-4-5", "max_tokens": 100, "system": "sys",
            "messages": [{"role":"user","content":"x"}],
            "tools": [{"name":"record","input_schema":{"type":"object","required":["a"]}}],
            "tool_choice": {"type":"tool","name":"record"}
        });
        let r = read(Endpoint::Messages, &b, true);
        assert_eq!(r.system.unwrap().content, "sys");
        let out = r.output.unwrap();
        assert_eq!(out.target, OutputTarget::ToolArguments("record".into()));
        assert!(out.schema.is_some());
        assert!(r.tool_definitions.unwrap().contains("record"));
    }
}
