//! OTel GenAI semantic conventions (both generations) onto the canonical span.
//!
//! Reads `gen_ai.*` attributes: provider (current `gen_ai.provider.name` over legacy
//! `gen_ai.system`), operation, models, response id, finish reasons, usage (current
//! keys over legacy aliases), request parameters, declared output, content
//! (`gen_ai.system_instructions` + `gen_ai.input.messages`, `gen_ai.output.messages`,
//! `gen_ai.tool.definitions`) and tool-execution spans. Message span events and log
//! records are handled in `events` (they are not attributes).

use crate::attrs::{Attrs, as_string_list, render, to_json_parsing_strings};
use crate::convention::{
    Side, add_param, declared_output, normalize_provider, parse_operation, seconds_to_ns,
    set_declared_output, set_json, set_messages, set_operation, set_str, set_u64,
};
use crate::keys::{anthropic, otel};
use crate::messages::{MessageList, messages_from_value, system_message, text_messages_fast};
use crate::span::{CanonicalSpan, Message, Operation, ToolCall};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;

pub fn map(a: &Attrs, out: &mut CanonicalSpan) {
    set_str(
        &mut out.provider,
        a.str_of(&[otel::PROVIDER_NAME, otel::SYSTEM])
            .map(|p| normalize_provider(&p)),
    );
    set_operation(
        &mut out.operation,
        a.str_of(&[otel::OPERATION_NAME])
            .map(|s| parse_operation(&s)),
    );
    set_str(&mut out.request_model, a.str_of(&[otel::REQUEST_MODEL]));
    set_str(&mut out.response_model, a.str_of(&[otel::RESPONSE_MODEL]));
    set_str(&mut out.response_id, a.str_of(&[otel::RESPONSE_ID]));
    if out.finish_reasons.is_empty() {
        // The anthropic SDK's own span reports the raw stop reason instead.
        for key in [
            otel::RESPONSE_FINISH_REASONS,
            anthropic::MESSAGE_STOP_REASON,
        ] {
            if let Some(v) = a.get(key) {
                out.finish_reasons = as_string_list(v);
                if !out.finish_reasons.is_empty() {
                    break;
                }
            }
        }
    }
    map_usage(a, out);
    if out.streaming.is_none() {
        out.streaming = a.bool_of(&[otel::REQUEST_STREAM]);
    }
    if out.time_to_first_token_ns.is_none() {
        out.time_to_first_token_ns = a
            .f64_of(&[otel::RESPONSE_TIME_TO_FIRST_CHUNK])
            .and_then(seconds_to_ns);
    }
    map_params(a, out);
    map_content(a, out);
    map_tool(a, out);
}

fn map_usage(a: &Attrs, out: &mut CanonicalSpan) {
    let u = &mut out.usage;
    set_u64(
        &mut u.input,
        a.u64_of(&[otel::USAGE_INPUT_TOKENS, otel::USAGE_PROMPT_TOKENS]),
    );
    set_u64(
        &mut u.output,
        a.u64_of(&[otel::USAGE_OUTPUT_TOKENS, otel::USAGE_COMPLETION_TOKENS]),
    );
    set_u64(
        &mut u.cache_read,
        a.u64_of(&[otel::USAGE_CACHE_READ_INPUT_TOKENS]),
    );
    set_u64(
        &mut u.cache_write,
        a.u64_of(&[
            otel::USAGE_CACHE_CREATION_INPUT_TOKENS,
            otel::USAGE_CACHE_WRITE_INPUT_TOKENS,
        ]),
    );
    set_u64(
        &mut u.reasoning,
        a.u64_of(&[otel::USAGE_REASONING_OUTPUT_TOKENS]),
    );
    set_u64(&mut u.total, a.u64_of(&[otel::USAGE_TOTAL_TOKENS]));
}

fn map_params(a: &Attrs, out: &mut CanonicalSpan) {
    const NOT_PARAMS: &[&str] = &[
        otel::REQUEST_MODEL,
        crate::keys::openllmetry::STRUCTURED_OUTPUT_SCHEMA,
    ];
    for prefix in [otel::REQUEST_PREFIX, otel::OPENAI_REQUEST_PREFIX] {
        for (k, v) in a.with_prefix(prefix) {
            if !NOT_PARAMS.contains(&k) {
                add_param(out, &k[prefix.len()..], render(v));
            }
        }
    }
    set_str(&mut out.output_type, a.str_of(&[otel::OUTPUT_TYPE]));
    // `response_format` is a plain string ("json_object") in the OTel conventions, but
    // some instrumentations put the whole request object there.
    for key in [
        otel::OPENAI_REQUEST_RESPONSE_FORMAT,
        otel::OPENAI_REQUEST_RESPONSE_FORMAT_V137,
    ] {
        if let Some(v) = a.get(key) {
            let body = serde_json::json!({ "response_format": to_json_parsing_strings(v) });
            set_declared_output(out, declared_output(&body));
        }
    }
}

/// A messages attribute: the common all-text shape read directly, anything
/// else through the general reader.
fn read_messages<'a>(a: &Attrs<'a>, key: &str, default_role: &str) -> Option<MessageList<'a>> {
    let v = a.get(key)?;
    if let Some(Av::StringValue(text)) = v.value.as_ref()
        && let Some(msgs) = text_messages_fast(text, default_role)
    {
        return Some(MessageList::Text(msgs));
    }
    let json = to_json_parsing_strings(v);
    (!json.is_null()).then(|| MessageList::General(messages_from_value(&json, default_role)))
}

fn map_content(a: &Attrs, out: &mut CanonicalSpan) {
    let system = a
        .json_of(&[otel::SYSTEM_INSTRUCTIONS])
        .and_then(|v| system_message(&v));
    let input = read_messages(a, otel::INPUT_MESSAGES, "user");
    match (system, input) {
        (None, Some(msgs)) => set_messages(out, Side::Input, msgs),
        (system, msgs) => {
            let mut input: Vec<Message> = system.into_iter().collect();
            input.extend(msgs.map(MessageList::into_general).unwrap_or_default());
            set_messages(out, Side::Input, input);
        }
    }
    if let Some(msgs) = read_messages(a, otel::OUTPUT_MESSAGES, "assistant") {
        set_messages(out, Side::Output, msgs);
    }
    set_json(
        &mut out.tool_definitions,
        a.json_of(&[otel::TOOL_DEFINITIONS]),
    );
}

/// `execute_tool` spans: the call as an assistant tool call, the result as a tool message.
fn map_tool(a: &Attrs, out: &mut CanonicalSpan) {
    set_str(&mut out.tool_name, a.str_of(&[otel::TOOL_NAME]));
    set_str(&mut out.tool_call_id, a.str_of(&[otel::TOOL_CALL_ID]));
    if out.tool_name.is_empty() {
        return;
    }
    set_operation(&mut out.operation, Some(Operation::ExecuteTool));
    if let Some(args) = a.get(otel::TOOL_CALL_ARGUMENTS).map(render) {
        let call = Message {
            role: "assistant".to_owned(),
            tool_calls: vec![ToolCall {
                id: out.tool_call_id.clone(),
                name: out.tool_name.clone(),
                arguments: args,
            }],
            ..Message::default()
        };
        set_messages(out, Side::Input, vec![call]);
    }
    if let Some(result) = a.get(otel::TOOL_CALL_RESULT).map(render) {
        let msg = Message {
            role: "tool".to_owned(),
            content: result,
            tool_call_id: out.tool_call_id.clone(),
            ..Message::default()
        };
        set_messages(out, Side::Output, vec![msg]);
    }
}
