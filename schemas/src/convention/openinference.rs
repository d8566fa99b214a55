//! OpenInference (Arize) conventions onto the canonical span.
//!
//! Reads `openinference.span.kind`, `llm.provider` / `llm.system`, the model keys,
//! `llm.token_count.*`, flattened `llm.input_messages` / `llm.output_messages`,
//! `llm.tools`, `llm.invocation_parameters` and the raw request/response bodies in
//! `input.value` / `output.value` (JSON when their mime type says so, or when they
//! parse as a JSON object).
//!
//! `llm.model_name` is ambiguous: it is the response model once the call returned and
//! the requested model otherwise. It counts as the response model only when the span
//! carries a response (`output.value` or token counts), and always as a fallback for
//! the request model.

use serde_json::Value;

use crate::attrs::{Attrs, parse_json_container};
use crate::convention::{
    Side, declared_output, normalize_provider, params_from_body, parse_operation,
    set_declared_output, set_json, set_messages, set_operation, set_str, set_u64,
};
use crate::keys::openinference as oi;
use crate::messages::{messages_from_value, request_body_messages, response_body_messages};
use crate::span::{CanonicalSpan, Message, Operation};

/// The first segments of every key this mapper reads (`keys::openinference`);
/// a span with none of them is left alone.
pub const ROOTS: &[&str] = &[
    "openinference",
    "llm",
    "embedding",
    "input",
    "output",
    "tool",
    "tool_call",
];

pub fn map(a: &Attrs, out: &mut CanonicalSpan) {
    set_str(
        &mut out.provider,
        a.str_of(&[oi::LLM_PROVIDER, oi::LLM_SYSTEM])
            .map(|p| normalize_provider(&p)),
    );
    let kind = a.str_of(&[oi::SPAN_KIND]).unwrap_or_default();
    set_operation(&mut out.operation, kind_operation(&kind));

    let input_body = body(a, oi::INPUT_VALUE, oi::INPUT_MIME_TYPE);
    let output_body = body(a, oi::OUTPUT_VALUE, oi::OUTPUT_MIME_TYPE);
    let params = a
        .json_of(&[
            oi::LLM_INVOCATION_PARAMETERS,
            oi::EMBEDDING_INVOCATION_PARAMETERS,
        ])
        .filter(Value::is_object);

    map_models(
        a,
        out,
        params.as_ref(),
        input_body.as_ref(),
        output_body.as_ref(),
    );
    map_usage(a, out);
    if out.finish_reasons.is_empty()
        && let Some(r) = a.str_of(&[oi::LLM_FINISH_REASON])
    {
        out.finish_reasons = vec![r];
    }
    for b in [params.as_ref(), input_body.as_ref()].into_iter().flatten() {
        if out.streaming.is_none() {
            out.streaming = b.get("stream").and_then(Value::as_bool);
        }
        set_declared_output(out, declared_output(b));
    }
    if let Some(p) = params.as_ref() {
        params_from_body(out, p);
    }
    map_content(a, out, input_body.as_ref(), output_body.as_ref());
    if out.operation == Operation::ExecuteTool {
        set_str(
            &mut out.tool_name,
            a.str_of(&[oi::TOOL_NAME, oi::TOOL_CALL_FUNCTION_NAME]),
        );
        set_str(&mut out.tool_call_id, a.str_of(&[oi::TOOL_CALL_ID]));
    }
}

fn kind_operation(kind: &str) -> Option<Operation> {
    match kind.to_ascii_uppercase().as_str() {
        "" => None,
        "LLM" => Some(Operation::Chat),
        "EMBEDDING" => Some(Operation::Embeddings),
        "TOOL" => Some(Operation::ExecuteTool),
        "AGENT" => Some(Operation::InvokeAgent),
        other => Some(parse_operation(other)),
    }
}

/// A request/response body as JSON when it is JSON, else `None` (plain text is
/// handled as content by the caller).
fn body(a: &Attrs, value_key: &str, mime_key: &str) -> Option<Value> {
    let text = a.str_of(&[value_key])?;
    let declared_json = a
        .str_of(&[mime_key])
        .is_some_and(|m| m.contains(oi::MIME_JSON));
    match parse_json_container(&text) {
        Some(v) => Some(v),
        None if declared_json => serde_json::from_str(&text).ok(),
        None => None,
    }
}

fn map_models(
    a: &Attrs,
    out: &mut CanonicalSpan,
    params: Option<&Value>,
    input: Option<&Value>,
    output: Option<&Value>,
) {
    let model_in = |b: Option<&Value>| {
        b.and_then(|v| v.get("model"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let has_response = output.is_some() || a.has_prefix("llm.token_count.");
    let model_name = a.str_of(&[oi::LLM_MODEL_NAME, oi::EMBEDDING_MODEL_NAME]);
    set_str(
        &mut out.request_model,
        a.str_of(&[oi::LLM_REQUEST_MODEL_NAME])
            .or_else(|| model_in(params))
            .or_else(|| model_in(input)),
    );
    set_str(
        &mut out.response_model,
        a.str_of(&[oi::LLM_RESPONSE_MODEL_NAME])
            .or_else(|| model_name.clone().filter(|_| has_response))
            .or_else(|| model_in(output)),
    );
    set_str(&mut out.request_model, model_name);
    set_str(
        &mut out.response_id,
        output
            .and_then(|o| o.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    );
}

fn map_usage(a: &Attrs, out: &mut CanonicalSpan) {
    let u = &mut out.usage;
    set_u64(&mut u.input, a.u64_of(&[oi::TOKEN_COUNT_PROMPT]));
    set_u64(&mut u.output, a.u64_of(&[oi::TOKEN_COUNT_COMPLETION]));
    set_u64(&mut u.total, a.u64_of(&[oi::TOKEN_COUNT_TOTAL]));
    set_u64(&mut u.cache_read, a.u64_of(&[oi::TOKEN_COUNT_CACHE_READ]));
    set_u64(&mut u.cache_write, a.u64_of(&[oi::TOKEN_COUNT_CACHE_WRITE]));
    set_u64(&mut u.reasoning, a.u64_of(&[oi::TOKEN_COUNT_REASONING]));
}

fn map_content(a: &Attrs, out: &mut CanonicalSpan, input: Option<&Value>, output: Option<&Value>) {
    // Flattened messages first: they are what the instrumentation chose to record.
    let mut inputs = a
        .unflatten(oi::INPUT_MESSAGES_PREFIX)
        .map(|v| messages_from_value(&v, "user"))
        .unwrap_or_default();
    if inputs.is_empty()
        && let Some(Value::Array(items)) = a.unflatten(oi::EMBEDDINGS_PREFIX)
    {
        inputs = items
            .iter()
            .filter_map(|i| i.get("embedding")?.get("text")?.as_str())
            .map(|t| Message {
                role: "user".to_owned(),
                content: t.to_owned(),
                ..Message::default()
            })
            .collect();
    }
    if inputs.is_empty() {
        inputs = match input {
            Some(body) => request_body_messages(body),
            None => plain_text(a, oi::INPUT_VALUE, "user"),
        };
    }
    set_messages(out, Side::Input, inputs);

    let mut outputs = a
        .unflatten(oi::OUTPUT_MESSAGES_PREFIX)
        .map(|v| messages_from_value(&v, "assistant"))
        .unwrap_or_default();
    // Embedding responses are vectors, not messages.
    if outputs.is_empty() && out.operation != Operation::Embeddings {
        outputs = match output {
            Some(body) => response_body_messages(body),
            None => plain_text(a, oi::OUTPUT_VALUE, "assistant"),
        };
    }
    set_messages(out, Side::Output, outputs);

    if let Some(Value::Array(tools)) = a.unflatten(oi::TOOLS_PREFIX) {
        let defs: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("tool")?.get("json_schema"))
            .map(|s| {
                s.as_str()
                    .and_then(parse_json_container)
                    .unwrap_or_else(|| s.clone())
            })
            .collect();
        if !defs.is_empty() {
            set_json(&mut out.tool_definitions, Some(Value::Array(defs)));
        }
    }
    if let Some(tools) = input.and_then(|b| b.get("tools")).filter(|t| t.is_array()) {
        set_json(&mut out.tool_definitions, Some(tools.clone()));
    }
}

/// A non-JSON `input.value` / `output.value` as one message of plain text.
fn plain_text(a: &Attrs, key: &str, role: &str) -> Vec<Message> {
    a.str_of(&[key])
        .map(|t| messages_from_value(&Value::String(t), role))
        .unwrap_or_default()
}

#[cfg(test)]
mod roots_tests {
    use super::ROOTS;
    use crate::keys::openinference as oi;

    #[test]
    fn every_key_the_mapper_reads_has_its_root_listed() {
        let read = [
            oi::SPAN_KIND,
            oi::LLM_PROVIDER,
            oi::LLM_SYSTEM,
            oi::LLM_MODEL_NAME,
            oi::LLM_REQUEST_MODEL_NAME,
            oi::LLM_RESPONSE_MODEL_NAME,
            oi::EMBEDDING_MODEL_NAME,
            oi::LLM_INVOCATION_PARAMETERS,
            oi::EMBEDDING_INVOCATION_PARAMETERS,
            oi::LLM_FINISH_REASON,
            oi::TOKEN_COUNT_PROMPT,
            oi::TOKEN_COUNT_COMPLETION,
            oi::TOKEN_COUNT_TOTAL,
            oi::TOKEN_COUNT_CACHE_READ,
            oi::TOKEN_COUNT_CACHE_WRITE,
            oi::TOKEN_COUNT_REASONING,
            oi::INPUT_MESSAGES_PREFIX,
            oi::OUTPUT_MESSAGES_PREFIX,
            oi::TOOLS_PREFIX,
            oi::EMBEDDINGS_PREFIX,
            oi::INPUT_VALUE,
            oi::INPUT_MIME_TYPE,
            oi::OUTPUT_VALUE,
            oi::OUTPUT_MIME_TYPE,
            oi::TOOL_NAME,
            oi::TOOL_CALL_ID,
            oi::TOOL_CALL_FUNCTION_NAME,
        ];
        for k in read {
            let root = k.split('.').next().unwrap_or_default();
            assert!(ROOTS.contains(&root), "{k}: root {root} not in ROOTS");
        }
    }
}
