//! One finished call → one OTel span in the current GenAI conventions
//! (semconv 1.37: `gen_ai.provider.name`, `gen_ai.input.messages` /
//! `gen_ai.output.messages` as JSON in the `parts` form, usage per token type).
//!
//! Invariants: runs in the export worker, never on the caller's path; reads only
//! the request body's content and the response, never headers, so credentials
//! cannot reach a span; usage the shim estimated (a cancelled stream) is marked
//! `loupe.usage.estimated`; instrumentation scope is `loupe.shim`, which the
//! collector maps to `source_convention = loupe_shim`.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value as OtelValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use serde_json::{Value, json};

use schemas::keys::{general, loupe, otel};
use schemas::pricing::estimate::estimate_usage;
use schemas::pricing::normalize_model;
use schemas::{CanonicalSpan, Evaluation, Message, Operation, Usage};

use crate::accumulate::Capture;
use crate::evaluate::evaluate;
use crate::record::{End, Finished};
use crate::request::Param;

/// Keys the schemas crate does not define (it reads them from raw attributes).
pub mod extra_keys {
    /// OTel general semconv: the upstream host and port.
    pub const SERVER_ADDRESS: &str = "server.address";
    pub const SERVER_PORT: &str = "server.port";
    /// Loupe: the client went away mid-call; the upstream request was aborted.
    pub const CANCELLED: &str = "loupe.cancelled";
    /// Loupe: the shim asked the upstream for usage the client did not request.
    pub const USAGE_INJECTED: &str = "loupe.usage.injected";
    /// Loupe: captured content was cut at `max_capture_bytes`.
    pub const CONTENT_TRUNCATED: &str = "loupe.content.truncated";
    /// Loupe: the declared output's name (`response_format.json_schema.name`, tool name).
    pub const EVALUATION_SCHEMA_NAME: &str = "loupe.evaluation.schema_name";
    /// Version of the `loupe.shim` instrumentation scope.
    pub const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");
}

use extra_keys as x;

/// Build the span of one finished call.
pub fn build(f: Finished) -> SpanData {
    let Finished {
        call,
        status,
        acc,
        end,
        ended,
    } = f;
    let mut capture = acc.map(|a| a.finish()).unwrap_or_default();
    let elapsed = ended.saturating_duration_since(call.started);
    let end_time = call.start + elapsed;
    let req = &call.request;
    let model = req.model.as_str();
    let mut attrs: Vec<KeyValue> = Vec::with_capacity(40);
    let operation = call.endpoint.operation();
    attrs.push(KeyValue::new(otel::OPERATION_NAME, operation));
    attrs.push(KeyValue::new(otel::PROVIDER_NAME, call.provider.clone()));
    if !model.is_empty() {
        attrs.push(KeyValue::new(otel::REQUEST_MODEL, model.to_owned()));
    }
    if !call.server_address.is_empty() {
        attrs.push(KeyValue::new(
            x::SERVER_ADDRESS,
            call.server_address.clone(),
        ));
    }
    if let Some(p) = call.server_port {
        attrs.push(KeyValue::new(x::SERVER_PORT, i64::from(p)));
    }
    for (k, p) in &req.params {
        let key = format!("{}{}", otel::REQUEST_PREFIX, k);
        attrs.push(match p {
            Param::Int(i) => KeyValue::new(key, *i),
            Param::Float(v) => KeyValue::new(key, *v),
            Param::Str(s) => KeyValue::new(key, s.clone()),
            Param::Bool(b) => KeyValue::new(key, *b),
            Param::Strs(v) => KeyValue::new(key, string_array(v)),
        });
    }
    attrs.push(KeyValue::new(otel::REQUEST_STREAM, req.stream));
    if req.injected_usage {
        attrs.push(KeyValue::new(x::USAGE_INJECTED, true));
    }
    if let Some(decl) = &req.output {
        attrs.push(KeyValue::new(otel::OUTPUT_TYPE, "json"));
        if let Some(schema) = &decl.schema {
            attrs.push(KeyValue::new(
                schemas::keys::openllmetry::STRUCTURED_OUTPUT_SCHEMA,
                schema.to_string(),
            ));
        }
    }
    // attribution
    let a = &call.attribution;
    for (key, v) in [
        (loupe::TENANT_ID, &a.tenant),
        (loupe::FEATURE, &a.feature),
        (general::USER_ID, &a.user),
        (general::SESSION_ID, &a.session),
    ] {
        if let Some(v) = v {
            attrs.push(KeyValue::new(key, v.clone()));
        }
    }
    // content
    if let Some(sys) = &req.system {
        attrs.push(KeyValue::new(
            otel::SYSTEM_INSTRUCTIONS,
            system_parts(sys).to_string(),
        ));
    }
    if !req.input.is_empty() {
        attrs.push(KeyValue::new(
            otel::INPUT_MESSAGES,
            otel_messages(&req.input).to_string(),
        ));
    }
    if let Some(t) = &req.tool_definitions {
        attrs.push(KeyValue::new(otel::TOOL_DEFINITIONS, t.clone()));
    }
    // response
    if !capture.response_id.is_empty() {
        attrs.push(KeyValue::new(
            otel::RESPONSE_ID,
            capture.response_id.clone(),
        ));
    }
    if !capture.response_model.is_empty() {
        attrs.push(KeyValue::new(
            otel::RESPONSE_MODEL,
            capture.response_model.clone(),
        ));
    }
    if !capture.finish_reasons.is_empty() {
        attrs.push(KeyValue::new(
            otel::RESPONSE_FINISH_REASONS,
            string_array(&capture.finish_reasons),
        ));
    }
    if req.stream
        && let Some(t) = capture.first_token
    {
        let ttft = t.saturating_duration_since(call.started).as_secs_f64();
        attrs.push(KeyValue::new(otel::RESPONSE_TIME_TO_FIRST_CHUNK, ttft));
    }
    let cancelled = matches!(
        end,
        End::ClientCancelled | End::IdleTimeout | End::UpstreamBodyError
    );
    let estimated = cancelled && estimate_missing(&mut capture, req, model);
    push_usage(&mut attrs, &capture.usage);
    if estimated {
        attrs.push(KeyValue::new(loupe::USAGE_ESTIMATED, true));
    }
    if !capture.output.is_empty() && call.endpoint.operation() != Operation::Embeddings.as_str() {
        attrs.push(KeyValue::new(
            otel::OUTPUT_MESSAGES,
            otel_messages(&capture.output).to_string(),
        ));
    }
    if capture.truncated {
        attrs.push(KeyValue::new(x::CONTENT_TRUNCATED, true));
    }
    if let Some(s) = status {
        attrs.push(KeyValue::new(
            general::HTTP_RESPONSE_STATUS_CODE,
            i64::from(s),
        ));
    }
    // errors and status
    let (error_type, message): (Option<String>, Option<String>) = match &end {
        End::Failed(e) => (Some(e.kind().to_owned()), Some(e.to_string())),
        End::ClientCancelled => (
            Some("cancelled".to_owned()),
            Some("client disconnected before the response ended".to_owned()),
        ),
        End::IdleTimeout => (
            Some("timeout".to_owned()),
            Some("upstream went silent mid-response".to_owned()),
        ),
        End::UpstreamBodyError => (
            Some("upstream_body_error".to_owned()),
            Some("upstream connection failed mid-response".to_owned()),
        ),
        End::Completed => match status {
            Some(s) if s >= 400 => (
                Some(capture.error_type.clone().unwrap_or_else(|| s.to_string())),
                Some(format!("upstream answered HTTP {s}")),
            ),
            _ => match &capture.error_type {
                Some(t) => (
                    Some(t.clone()),
                    Some("upstream reported an error in the stream".to_owned()),
                ),
                None => (None, None),
            },
        },
    };
    if cancelled {
        attrs.push(KeyValue::new(
            x::CANCELLED,
            matches!(end, End::ClientCancelled),
        ));
    }
    if let Some(t) = &error_type {
        attrs.push(KeyValue::new(general::ERROR_TYPE, t.clone()));
    }
    let span_status = match message {
        Some(m) => Status::error(m),
        None => Status::Unset,
    };
    // evaluation
    let mut events = Vec::new();
    let ok = end == End::Completed
        && status.is_some_and(|s| (200..300).contains(&s))
        && error_type.is_none();
    if ok
        && !capture.truncated
        && let Some(decl) = &req.output
        && let Some(ev) = evaluate(decl, &capture.output)
    {
        events.push(evaluation_event(&ev, decl.name.as_deref(), end_time));
    }
    let mut span_events = SpanEvents::default();
    span_events.events = events;
    let (trace_id, parent_span_id, remote) = match call.parent {
        Some(p) => (
            TraceId::from_bytes(p.trace_id),
            SpanId::from_bytes(p.span_id),
            true,
        ),
        None => (TraceId::from_bytes(nonzero_id()), SpanId::INVALID, false),
    };
    let span_id = SpanId::from_bytes(nonzero_id());
    let name = if model.is_empty() {
        operation.to_owned()
    } else {
        format!("{operation} {model}")
    };
    SpanData {
        span_context: SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id,
        parent_span_is_remote: remote,
        span_kind: SpanKind::Client,
        name: Cow::Owned(name),
        start_time: call.start,
        end_time,
        attributes: attrs,
        dropped_attributes_count: 0,
        events: span_events,
        links: SpanLinks::default(),
        status: span_status,
        instrumentation_scope: scope(),
    }
}

pub fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(loupe::SHIM_SCOPE)
        .with_version(x::SCOPE_VERSION)
        .build()
}

fn nonzero_id<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = rand::random();
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

fn string_array(v: &[String]) -> OtelValue {
    OtelValue::Array(Array::String(
        v.iter().cloned().map(StringValue::from).collect(),
    ))
}

fn push_usage(attrs: &mut Vec<KeyValue>, u: &Usage) {
    for (key, v) in [
        (otel::USAGE_INPUT_TOKENS, u.input),
        (otel::USAGE_OUTPUT_TOKENS, u.output),
        (otel::USAGE_CACHE_READ_INPUT_TOKENS, u.cache_read),
        (otel::USAGE_CACHE_CREATION_INPUT_TOKENS, u.cache_write),
        (otel::USAGE_REASONING_OUTPUT_TOKENS, u.reasoning),
    ] {
        if let Some(n) = v {
            attrs.push(KeyValue::new(key, i64::try_from(n).unwrap_or(i64::MAX)));
        }
    }
}

/// A stream cut short: keep reported input; estimate what is missing, and the
/// output unless the stream got to its final usage. Returns true when it estimated.
fn estimate_missing(c: &mut Capture, req: &crate::request::RequestInfo, model: &str) -> bool {
    let output_final = c.usage.output.is_some() && !c.finish_reasons.is_empty();
    if c.usage.input.is_some() && output_final {
        return false;
    }
    let mut input = req.input.clone();
    if let Some(s) = &req.system {
        input.insert(0, s.clone());
    }
    let span = CanonicalSpan {
        operation: Operation::Chat,
        input_messages: serde_json::to_string(&input).unwrap_or_default(),
        output_messages: serde_json::to_string(&c.output).unwrap_or_default(),
        ..CanonicalSpan::default()
    };
    let family = if c.response_model.is_empty() {
        model
    } else {
        &c.response_model
    };
    let Some(est) = estimate_usage(&span, &normalize_model(family)) else {
        return false;
    };
    let mut changed = false;
    if c.usage.input.is_none() && est.input.is_some() {
        c.usage.input = est.input;
        changed = true;
    }
    if !output_final {
        c.usage.output = Some(est.output.unwrap_or(0));
        changed = true;
    }
    c.usage.total = None;
    changed
}

fn evaluation_event(ev: &Evaluation, schema_name: Option<&str>, at: SystemTime) -> Event {
    let mut a = vec![
        KeyValue::new(otel::EVALUATION_NAME, ev.name.clone()),
        KeyValue::new(otel::EVALUATION_SCORE_LABEL, ev.label.clone()),
        KeyValue::new(loupe::EVALUATION_SOURCE, ev.source.clone()),
    ];
    if let Some(s) = ev.score {
        a.push(KeyValue::new(otel::EVALUATION_SCORE_VALUE, s));
    }
    if !ev.explanation.is_empty() {
        a.push(KeyValue::new(
            otel::EVALUATION_EXPLANATION,
            ev.explanation.clone(),
        ));
    }
    if let Some(n) = schema_name {
        a.push(KeyValue::new(x::EVALUATION_SCHEMA_NAME, n.to_owned()));
    }
    Event::new(otel::EVENT_EVALUATION_RESULT, at, a, 0)
}

/// Canonical messages → OTel GenAI `parts` messages.
pub fn otel_messages(msgs: &[Message]) -> Value {
    Value::Array(msgs.iter().map(otel_message).collect())
}

fn otel_message(m: &Message) -> Value {
    let mut parts = Vec::new();
    if !m.reasoning.is_empty() {
        parts.push(json!({"type": "reasoning", "content": m.reasoning}));
    }
    if m.role == "tool" {
        parts.push(
            json!({"type": "tool_call_response", "id": m.tool_call_id, "response": m.content}),
        );
    } else if !m.content.is_empty() {
        parts.push(json!({"type": "text", "content": m.content}));
    }
    for c in &m.tool_calls {
        let args = serde_json::from_str::<Value>(&c.arguments)
            .unwrap_or_else(|_| Value::String(c.arguments.clone()));
        parts.push(json!({"type": "tool_call", "id": c.id, "name": c.name, "arguments": args}));
    }
    let mut out = json!({"role": m.role, "parts": parts});
    if !m.finish_reason.is_empty() {
        out["finish_reason"] = Value::String(m.finish_reason.clone());
    }
    out
}

fn system_parts(m: &Message) -> Value {
    json!([{"type": "text", "content": m.content}])
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::ToolCall;
    use schemas::messages::messages_from_value;

    #[test]
    fn otel_parts_round_trip_through_the_schemas_reader() {
        let msgs = vec![
            Message {
                role: "user".into(),
                content: "hi".into(),
                ..Message::default()
            },
            Message {
                role: "assistant".into(),
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "f".into(),
                    arguments: "{\"a\":1}".into(),
                }],
                finish_reason: "tool_calls".into(),
                ..Message::default()
            },
            Message {
                role: "tool".into(),
                content: "42".into(),
                tool_call_id: "c1".into(),
                ..Message::default()
            },
        ];
        let back = messages_from_value(&otel_messages(&msgs), "user");
        assert_eq!(back.len(), 3);
        assert_eq!(back[0].content, "hi");
        assert_eq!(back[1].tool_calls[0].name, "f");
        assert_eq!(back[1].finish_reason, "tool_calls");
        assert_eq!(back[2].tool_call_id, "c1");
        assert_eq!(back[2].content, "42");
    }
}
