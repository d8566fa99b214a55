//! Property test: normalisation, log joining, validation, dedupe and pricing never
//! panic, whatever the attributes hold — wrong types under known keys, huge numbers,
//! deep kvlist/array nesting, invalid UTF-8 in bytes values, odd indices.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed load is a failed test

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::Event};
use proptest::prelude::*;
use schemas::pricing::PriceTable;

/// Keys the mappers read (so wrong types hit real code paths) plus free-form ones.
const KEYS: &[&str] = &[
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "gen_ai.response.finish_reasons",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.output.type",
    "gen_ai.openai.request.response_format",
    "gen_ai.request.structured_output_schema",
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.tool.name",
    "gen_ai.tool.call.arguments",
    "gen_ai.evaluation.name",
    "gen_ai.evaluation.score.label",
    "gen_ai.evaluation.score.value",
    "gen_ai.prompt.0.content",
    "gen_ai.prompt.99999999999999999999.role",
    "gen_ai.completion.0.tool_calls.5.name",
    "llm.input_messages.0.message.contents.1.message_content.text",
    "llm.output_messages.18446744073709551615.message.tool_calls.0.tool_call.function.name",
    "llm.invocation_parameters",
    "llm.model_name",
    "llm.token_count.prompt",
    "llm.tools.0.tool.json_schema",
    "input.value",
    "output.value",
    "input.mime_type",
    "output.mime_type",
    "openinference.span.kind",
    "llm.request.functions.0.parameters",
    "traceloop.span.kind",
    "traceloop.entity.input",
    "http.response.status_code",
    "error.type",
    "tenant.id",
    "user.id",
    "session.id",
    "metadata",
    "llm.cost.total",
    "a",
    "a.b",
    "a.b.c",
    "",
];

fn leaf() -> impl Strategy<Value = AnyValue> {
    let json_ish = prop_oneof![
        Just(r#"[{"role":"user","parts":[{"type":"text","content":"hi"}]}]"#.to_owned()),
        Just(r##"{"model":"gpt-4o","response_format":{"type":"json_schema","json_schema":{"schema":{"$ref":"#/x"}}}}"##.to_owned()),
        Just(r#"{"id":"x","choices":[{"message":{"content":"{}"}}]}"#.to_owned()),
        Just("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_owned()),
        Just("LLM".to_owned()),
        Just("json".to_owned()),
        ".{0,40}",
    ];
    prop_oneof![
        json_ish.prop_map(Value::StringValue),
        any::<bool>().prop_map(Value::BoolValue),
        any::<i64>().prop_map(Value::IntValue),
        any::<f64>().prop_map(Value::DoubleValue),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(Value::BytesValue),
        Just(Value::StringValueStrindex(3)),
    ]
    .prop_map(|v| AnyValue { value: Some(v) })
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    leaf().prop_recursive(48, 256, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                value: Some(Value::ArrayValue(ArrayValue { values }))
            }),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..4).prop_map(|kvs| {
                AnyValue {
                    value: Some(Value::KvlistValue(KeyValueList {
                        values: kvs.into_iter().map(|(k, v)| kv(k, Some(v))).collect(),
                    })),
                }
            }),
        ]
    })
}

fn kv(k: &str, v: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: k.to_owned(),
        value: v,
        ..Default::default()
    }
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(
        (prop::sample::select(KEYS), prop::option::of(any_value())),
        0..12,
    )
    .prop_map(|kvs| kvs.into_iter().map(|(k, v)| kv(k, v)).collect())
}

fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), len),
        prop::collection::vec(any::<u8>(), 0..3)
    ]
}

fn span() -> impl Strategy<Value = Span> {
    (
        id(16),
        id(8),
        id(8),
        attributes(),
        attributes(),
        any::<i32>(),
        any::<i32>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(trace_id, span_id, parent, attrs, event_attrs, kind, code, start, end)| Span {
                trace_id,
                span_id,
                parent_span_id: parent,
                name: "x".into(),
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes: attrs,
                events: [
                    "exception",
                    "gen_ai.choice",
                    "gen_ai.evaluation.result",
                    "First Token Stream Event",
                ]
                .iter()
                .map(|n| Event {
                    name: (*n).into(),
                    attributes: event_attrs.clone(),
                    time_unix_nano: end,
                    ..Default::default()
                })
                .collect(),
                status: Some(Status {
                    code,
                    message: "Error code: 429 - x".into(),
                }),
                ..Default::default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn pipeline_never_panics(
        spans in prop::collection::vec(span(), 0..6),
        resource in attributes(),
        body in prop::option::of(any_value()),
        log_attrs in attributes(),
        event_name in prop::sample::select(&["gen_ai.choice", "gen_ai.user.message", "gen_ai.client.inference.operation.details", "gen_ai.evaluation.result", ""][..]),
    ) {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource { attributes: resource.clone(), ..Default::default() }),
                scope_spans: vec![ScopeSpans { spans: spans.clone(), ..Default::default() }],
                ..Default::default()
            }],
        };
        let logs = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: spans.iter().map(|s| LogRecord {
                        trace_id: s.trace_id.clone(),
                        span_id: s.span_id.clone(),
                        event_name: event_name.to_owned(),
                        body: body.clone(),
                        attributes: log_attrs.clone(),
                        ..Default::default()
                    }).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let prices = PriceTable::bundled().unwrap();
        let out = schemas::process_batch(req, Some(&logs), &schemas::NormalizeContext::default(), &prices);
        prop_assert_eq!(out.len(), spans.len());
        for s in &out {
            prop_assert!(!s.tenant_id.is_empty());
            prop_assert!(s.input_messages.is_empty() || serde_json::from_str::<Vec<schemas::Message>>(&s.input_messages).is_ok());
        }
    }
}
