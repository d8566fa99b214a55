//! OpenLLMetry (Traceloop) keys that the OTel GenAI mapper does not already read.
//!
//! Current releases (0.5x–0.6x) speak OTel GenAI plus a few extras: `gen_ai.is_streaming`,
//! `gen_ai.request.structured_output_schema`, `gen_ai.usage.reasoning_tokens`,
//! `gen_ai.usage.total_tokens`. Older releases flatten content into
//! `gen_ai.prompt.N.*` / `gen_ai.completion.N.*`, functions into
//! `llm.request.functions.N.*`, and name the operation in `llm.request.type`.
//! Workflow/task/tool spans carry `traceloop.span.kind` and `traceloop.entity.*`.

use serde_json::Value;

use crate::attrs::{Attrs, parse_json_container};
use crate::convention::{
    Side, parse_operation, set_json, set_messages, set_operation, set_str, set_u64,
};
use crate::keys::{openllmetry as ol, otel};
use crate::messages::messages_from_value;
use crate::span::{CanonicalSpan, Message, Operation, ToolCall};

pub fn map(a: &Attrs, out: &mut CanonicalSpan) {
    if out.streaming.is_none() {
        out.streaming = a.bool_of(&[ol::IS_STREAMING, ol::LLM_IS_STREAMING]);
    }
    set_operation(
        &mut out.operation,
        a.str_of(&[ol::LLM_REQUEST_TYPE])
            .map(|s| parse_operation(&s)),
    );
    if let Some(schema) = a
        .json_of(&[ol::STRUCTURED_OUTPUT_SCHEMA])
        .filter(Value::is_object)
    {
        set_str(&mut out.output_type, Some("json".to_owned()));
        set_json(&mut out.output_schema, Some(schema));
    }
    let u = &mut out.usage;
    set_u64(&mut u.reasoning, a.u64_of(&[ol::USAGE_REASONING_TOKENS]));
    set_u64(
        &mut u.cache_read,
        a.u64_of(&[ol::USAGE_CACHE_READ_INPUT_TOKENS]),
    );
    set_u64(
        &mut u.cache_write,
        a.u64_of(&[ol::USAGE_CACHE_CREATION_INPUT_TOKENS]),
    );
    set_u64(&mut u.total, a.u64_of(&[ol::LLM_USAGE_TOTAL_TOKENS]));

    // Flattened content (≤ 0.4x): same shapes as chat messages once unflattened.
    if let Some(v) = a.unflatten(ol::PROMPT_PREFIX) {
        set_messages(out, Side::Input, messages_from_value(&v, "user"));
    }
    if let Some(v) = a.unflatten(ol::COMPLETION_PREFIX) {
        set_messages(out, Side::Output, messages_from_value(&v, "assistant"));
    }
    if let Some(Value::Array(funcs)) = a.unflatten(ol::REQUEST_FUNCTIONS_PREFIX) {
        // `parameters` arrives as a JSON string; store it as the object it encodes.
        let defs: Vec<Value> = funcs
            .into_iter()
            .map(|mut f| {
                if let Some(p) = f.get_mut("parameters")
                    && let Some(parsed) = p.as_str().and_then(parse_json_container)
                {
                    *p = parsed;
                }
                f
            })
            .collect();
        set_json(&mut out.tool_definitions, Some(Value::Array(defs)));
    }
    map_entity(a, out);
}

/// `traceloop.span.kind` spans (workflow, task, agent, tool) made by the Traceloop SDK.
fn map_entity(a: &Attrs, out: &mut CanonicalSpan) {
    let Some(kind) = a.str_of(&[ol::SPAN_KIND]) else {
        return;
    };
    let op = match kind.as_str() {
        "tool" => Operation::ExecuteTool,
        "agent" => Operation::InvokeAgent,
        _ => Operation::Other,
    };
    // A workflow span wrapping an LLM call keeps the LLM operation the GenAI keys gave it.
    set_operation(&mut out.operation, Some(op));
    if out.operation != Operation::ExecuteTool {
        return;
    }
    set_str(
        &mut out.tool_name,
        a.str_of(&[ol::ENTITY_NAME])
            .filter(|_| !a.contains(otel::TOOL_NAME)),
    );
    if let Some(input) = a.str_of(&[ol::ENTITY_INPUT]) {
        let call = Message {
            role: "assistant".to_owned(),
            tool_calls: vec![ToolCall {
                id: out.tool_call_id.clone(),
                name: out.tool_name.clone(),
                arguments: input,
            }],
            ..Message::default()
        };
        set_messages(out, Side::Input, vec![call]);
    }
    if let Some(output) = a.str_of(&[ol::ENTITY_OUTPUT]) {
        let msg = Message {
            role: "tool".to_owned(),
            content: output,
            tool_call_id: out.tool_call_id.clone(),
            ..Message::default()
        };
        set_messages(out, Side::Output, vec![msg]);
    }
}
