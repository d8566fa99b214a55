//! Convention mappers: each reads its own keys into a [`CanonicalSpan`].
//!
//! Mappers run in a fixed order (OTel GenAI, then OpenLLMetry, then OpenInference)
//! and only fill what is still empty, so the first convention that reports a value
//! wins; `docs/CONVENTIONS.md` lists the precedence. The helpers below are shared so
//! that every mapper fills fields the same way (no per-convention copies).
//!
//! Invariants: a value the span does not carry stays `None` / empty (absent is not 0);
//! mappers never panic on wrong types.

pub mod openinference;
pub mod openllmetry;
pub mod otel_genai;

use serde_json::Value;

use crate::attrs::{Attrs, json_scalar_to_string};
use crate::keys;
use crate::messages::MessageList;
use crate::span::{CanonicalSpan, Operation};

/// Run every mapper over one span's attributes (a mapper none of whose
/// keys the span carries is skipped: it would fill nothing).
pub fn map_all(a: &Attrs, out: &mut CanonicalSpan) {
    otel_genai::map(a, out);
    openllmetry::map(a, out);
    if a.has_any_root(openinference::ROOTS) {
        openinference::map(a, out);
    }
}

/// Which convention the span speaks (the first that matches, most specific first).
pub fn detect(a: &Attrs, scope_name: &str) -> &'static str {
    use keys::{openinference as oi, openllmetry as ol, otel};
    if scope_name == keys::loupe::SHIM_SCOPE {
        return "loupe_shim";
    }
    if a.contains(oi::SPAN_KIND)
        || a.contains(oi::LLM_MODEL_NAME)
        || a.contains(oi::EMBEDDING_MODEL_NAME)
        || a.has_prefix("llm.token_count.")
        || a.has_prefix("llm.input_messages.")
    {
        return "openinference";
    }
    if a.has_prefix(ol::TRACELOOP_PREFIX)
        || [
            ol::IS_STREAMING,
            ol::LLM_IS_STREAMING,
            ol::LLM_REQUEST_TYPE,
            ol::STRUCTURED_OUTPUT_SCHEMA,
            ol::USAGE_REASONING_TOKENS,
            ol::LLM_USAGE_TOTAL_TOKENS,
        ]
        .iter()
        .any(|k| a.contains(k))
        || a.has_prefix("gen_ai.prompt.")
        || a.has_prefix("gen_ai.completion.")
    {
        return "openllmetry";
    }
    if a.contains(otel::PROVIDER_NAME)
        || a.contains(otel::INPUT_MESSAGES)
        || a.contains(otel::OUTPUT_MESSAGES)
    {
        return "otel_genai";
    }
    if a.has_prefix("gen_ai.") {
        return "otel_genai_legacy";
    }
    "none"
}

pub(crate) fn set_str(dst: &mut String, v: Option<String>) {
    if dst.is_empty()
        && let Some(v) = v.filter(|s| !s.is_empty())
    {
        *dst = v;
    }
}

pub(crate) fn set_u64(dst: &mut Option<u64>, v: Option<u64>) {
    if dst.is_none() {
        *dst = v;
    }
}

/// Which body a message list goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Input,
    Output,
}

/// Store messages as the canonical JSON array, with their preview source,
/// unless the body is already filled.
pub(crate) fn set_messages<'a>(
    out: &mut CanonicalSpan,
    side: Side,
    msgs: impl Into<MessageList<'a>>,
) {
    let (body, preview) = match side {
        Side::Input => (&mut out.input_messages, &mut out.input_preview),
        Side::Output => (&mut out.output_messages, &mut out.output_preview),
    };
    let msgs = msgs.into();
    if body.is_empty() && !msgs.is_empty() {
        *body = msgs.to_json();
        *preview = crate::preview::source_of(&msgs, side == Side::Input);
    }
}

/// Store a JSON value (tool definitions, schema) compactly, unless already filled.
pub(crate) fn set_json(dst: &mut String, v: Option<Value>) {
    if dst.is_empty()
        && let Some(v) = v.filter(|v| !v.is_null())
    {
        *dst = v.to_string();
    }
}

pub(crate) fn set_operation(dst: &mut Operation, op: Option<Operation>) {
    if *dst == Operation::None
        && let Some(op) = op
    {
        *dst = op;
    }
}

pub(crate) fn add_param(out: &mut CanonicalSpan, key: &str, value: String) {
    if !value.is_empty() && !out.request_params.iter().any(|(k, _)| k == key) {
        out.request_params.push((key.to_owned(), value));
    }
}

/// `gen_ai.operation.name` values and their equivalents in other conventions.
pub fn parse_operation(s: &str) -> Operation {
    match s.trim().to_ascii_lowercase().as_str() {
        "chat" | "llm" | "chat_completion" | "chat.completions" | "messages" => Operation::Chat,
        "text_completion" | "completion" | "completions" => Operation::TextCompletion,
        "embeddings" | "embedding" | "embed" => Operation::Embeddings,
        "generate_content" => Operation::GenerateContent,
        "execute_tool" | "tool" => Operation::ExecuteTool,
        "invoke_agent" | "agent" => Operation::InvokeAgent,
        "create_agent" => Operation::CreateAgent,
        "" => Operation::None,
        _ => Operation::Other,
    }
}

/// Provider names of every convention onto the OTel GenAI `gen_ai.provider.name` values.
pub fn normalize_provider(raw: &str) -> String {
    let p = raw.trim().to_ascii_lowercase();
    let mapped = match p.as_str() {
        "openai" => "openai",
        "anthropic" => "anthropic",
        "azure" | "azure_openai" | "azure.openai" | "az.ai.openai" | "azure.ai.openai" => {
            "azure.ai.openai"
        }
        "az.ai.inference" | "azure.ai.inference" => "azure.ai.inference",
        "gemini" | "google" | "google_genai" | "google.genai" | "gcp.gemini"
        | "google_ai_studio" => "gcp.gemini",
        "vertexai" | "vertex_ai" | "vertex" | "gcp.vertex_ai" => "gcp.vertex_ai",
        "gcp.gen_ai" => "gcp.gen_ai",
        "aws" | "bedrock" | "aws_bedrock" | "aws.bedrock" | "amazon_bedrock" => "aws.bedrock",
        "mistral" | "mistralai" | "mistral_ai" => "mistral_ai",
        "cohere" => "cohere",
        "deepseek" => "deepseek",
        "groq" => "groq",
        "xai" | "x_ai" | "x.ai" => "x_ai",
        "perplexity" => "perplexity",
        "together" | "togetherai" | "together_ai" => "together_ai",
        "fireworks" | "fireworks_ai" => "fireworks_ai",
        "ibm.watsonx.ai" | "watsonx" => "ibm.watsonx.ai",
        "ollama" => "ollama",
        _ => return p,
    };
    mapped.to_owned()
}

/// What a provider request body declares about its output: `Some((type, schema))`
/// when it asks for JSON. Covers OpenAI `response_format`, Responses `text.format`,
/// Anthropic `output_config.format` / `output_format`, Gemini `generation_config`
/// and Ollama `format`.
pub fn declared_output(body: &Value) -> Option<(String, Option<Value>)> {
    let obj = body.as_object()?;
    let from_format = |f: &Value| -> Option<(String, Option<Value>)> {
        match f {
            Value::String(s) => json_type(s).map(|t| (t, None)),
            Value::Object(o) => {
                let t = o
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("json_schema");
                let t = json_type(t)?;
                let schema = o
                    .get("json_schema")
                    .and_then(|js| js.get("schema").or(Some(js)))
                    .or_else(|| o.get("schema"))
                    .filter(|s| s.is_object())
                    .cloned();
                Some((t, schema))
            }
            _ => None,
        }
    };
    if let Some(f) = obj.get("response_format") {
        return from_format(f);
    }
    if let Some(f) = obj.get("text").and_then(|t| t.get("format")) {
        return from_format(f);
    }
    if let Some(f) = obj.get("output_config").and_then(|c| c.get("format")) {
        return from_format(f);
    }
    if let Some(f) = obj.get("output_format") {
        return from_format(f);
    }
    let generation = obj
        .get("generation_config")
        .or_else(|| obj.get("generationConfig"));
    if let Some(g) = generation.and_then(Value::as_object) {
        let mime = g
            .get("response_mime_type")
            .or_else(|| g.get("responseMimeType"))
            .and_then(Value::as_str);
        if mime == Some("application/json") {
            let schema = [
                "response_json_schema",
                "responseJsonSchema",
                "response_schema",
                "responseSchema",
            ]
            .iter()
            .find_map(|k| g.get(*k))
            .filter(|s| s.is_object())
            .cloned();
            return Some(("json".to_owned(), schema));
        }
    }
    match obj.get("format") {
        Some(Value::String(s)) if s == "json" => Some(("json".to_owned(), None)),
        Some(s @ Value::Object(_)) => Some(("json".to_owned(), Some(s.clone()))),
        _ => None,
    }
}

/// `json_object` / `json_schema` / `json` mean JSON output; anything else (text) does not.
fn json_type(t: &str) -> Option<String> {
    matches!(t, "json_object" | "json_schema" | "json").then(|| "json".to_owned())
}

/// Record a declared JSON output (type and schema) unless one is already recorded.
pub(crate) fn set_declared_output(out: &mut CanonicalSpan, decl: Option<(String, Option<Value>)>) {
    if let Some((t, schema)) = decl {
        set_str(&mut out.output_type, Some(t));
        set_json(&mut out.output_schema, schema);
    }
}

/// Request parameters of a JSON request body, minus the model, the content and tools.
pub(crate) fn params_from_body(out: &mut CanonicalSpan, body: &Value) {
    const CONTENT_KEYS: &[&str] = &[
        "model",
        "messages",
        "input",
        "prompt",
        "system",
        "instructions",
        "contents",
        "tools",
        "functions",
        "extra_headers",
        "extra_body",
    ];
    if let Some(obj) = body.as_object() {
        for (k, v) in obj {
            if !CONTENT_KEYS.contains(&k.as_str()) {
                add_param(out, k, json_scalar_to_string(v));
            }
        }
    }
}

/// Seconds (as the conventions report durations) to nanoseconds, rejecting nonsense.
pub(crate) fn seconds_to_ns(s: f64) -> Option<u64> {
    (s.is_finite() && (0.0..1.0e9).contains(&s)).then(|| (s * 1.0e9).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn providers_map_to_otel_names() {
        for (raw, want) in [
            ("OpenAI", "openai"),
            ("anthropic", "anthropic"),
            ("mistralai", "mistral_ai"),
            ("vertexai", "gcp.vertex_ai"),
            ("gemini", "gcp.gemini"),
            ("az.ai.openai", "azure.ai.openai"),
            ("aws.bedrock", "aws.bedrock"),
            ("something_new", "something_new"),
        ] {
            assert_eq!(normalize_provider(raw), want, "{raw}");
        }
    }

    #[test]
    fn declared_outputs() {
        let schema = json!({"type":"object"});
        let openai = json!({"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":schema}}});
        assert_eq!(
            declared_output(&openai),
            Some(("json".into(), Some(schema.clone())))
        );
        let anthropic = json!({"output_config":{"format":{"type":"json_schema","schema":schema}}});
        assert_eq!(
            declared_output(&anthropic),
            Some(("json".into(), Some(schema.clone())))
        );
        let obj = json!({"response_format":{"type":"json_object"}});
        assert_eq!(declared_output(&obj), Some(("json".into(), None)));
        let text = json!({"response_format":{"type":"text"}});
        assert_eq!(declared_output(&text), None);
        let gemini = json!({"generationConfig":{"responseMimeType":"application/json","responseSchema":schema}});
        assert_eq!(
            declared_output(&gemini),
            Some(("json".into(), Some(schema)))
        );
        assert_eq!(declared_output(&json!({"temperature":0.2})), None);
    }

    #[test]
    fn operations() {
        assert_eq!(parse_operation("chat"), Operation::Chat);
        assert_eq!(parse_operation("LLM"), Operation::Chat);
        assert_eq!(parse_operation("EMBEDDING"), Operation::Embeddings);
        assert_eq!(parse_operation("rerank"), Operation::Other);
    }
}
