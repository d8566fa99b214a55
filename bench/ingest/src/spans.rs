//! Realistic GenAI traces, pre-encoded as OTLP export requests (protobuf).
//!
//! One trace: a root server span and three LLM client spans (OTel GenAI
//! semantic conventions: `gen_ai.input.messages` ≈ 1 KB of system + user
//! message, `gen_ai.output.messages` ≈ 0.5 KB, usage, models, response ids).
//! One request carries whole traces of one tenant (service), tenants taking
//! turns, like several instrumented services exporting batches.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};
use prost::Message;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use schemas::keys::{general, loupe, otel as gen_ai};

pub const SPANS_PER_TRACE: u64 = 4;
const PROMPT_SYSTEM_BYTES: usize = 300;
const PROMPT_USER_BYTES: usize = 620;
const COMPLETION_BYTES: usize = 420;

const MODELS: &[(&str, &str, &str)] = &[
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ("openai", "gpt-4o", "gpt-4o-2024-08-06"),
    (
        "anthropic",
        "claude-3-5-sonnet-latest",
        "claude-3-5-sonnet-20241022",
    ),
];

const WORDS: &[&str] = &[
    "the",
    "customer",
    "order",
    "invoice",
    "refund",
    "shipping",
    "account",
    "please",
    "summarise",
    "ticket",
    "priority",
    "billing",
    "replacement",
    "warranty",
    "support",
    "delivery",
    "region",
    "policy",
    "webhook",
    "deployment",
    "staging",
    "rotate",
    "secret",
    "error",
    "timeout",
    "retry",
    "plan",
    "seats",
    "discount",
    "explain",
    "because",
    "within",
    "days",
    "before",
    "after",
    "and",
    "with",
    "for",
    "our",
    "your",
    "team",
    "incident",
    "report",
    "latency",
    "database",
    "migration",
    "schedule",
    "approve",
    "decline",
    "escalate",
    "manager",
    "answer",
    "politely",
    "briefly",
    "in",
    "three",
    "bullet",
    "points",
    "of",
    "to",
];

pub struct GenConfig {
    pub spans: u64,
    pub spans_per_request: u64,
    pub tenants: usize,
    pub seed: u64,
    pub now_ns: u64,
}

/// Bytes before a gRPC message: compressed flag and length.
pub const GRPC_PREFIX: usize = 5;

pub struct Generated {
    /// Each export request, protobuf-encoded.
    pub requests: Vec<Bytes>,
    /// The same requests in gRPC's length-prefixed framing (`requests` are
    /// slices of these: one copy in memory).
    pub grpc_framed: Vec<Bytes>,
    pub spans: u64,
    pub bytes: u64,
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

fn text(rng: &mut StdRng, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 16);
    while out.len() < bytes {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(WORDS.choose(rng).copied().unwrap_or("the"));
    }
    out.push('.');
    out
}

fn message(role: &str, content: &str) -> serde_json::Value {
    serde_json::json!({"role": role, "parts": [{"type": "text", "content": content}]})
}

struct Ids {
    next: u64,
}

impl Ids {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        self.next = self.next.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut v = Vec::with_capacity(n);
        let mut x = self.next;
        while v.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

fn llm_span(
    rng: &mut StdRng,
    ids: &mut Ids,
    trace_id: &[u8],
    parent: &[u8],
    start_ns: u64,
) -> Span {
    let &(provider, model, response_model) = MODELS.choose(rng).unwrap_or(&MODELS[0]);
    let system = text(rng, PROMPT_SYSTEM_BYTES);
    let user = text(rng, PROMPT_USER_BYTES);
    let answer = text(rng, COMPLETION_BYTES);
    let input = serde_json::Value::Array(vec![message("system", &system), message("user", &user)])
        .to_string();
    let mut out = message("assistant", &answer);
    out["finish_reason"] = "stop".into();
    let output = serde_json::Value::Array(vec![out]).to_string();
    let input_tokens = i64::try_from(input.len() / 4).unwrap_or(0);
    let output_tokens = i64::try_from(output.len() / 4).unwrap_or(0);
    let dur_ns = rng.random_range(300_000_000..2_500_000_000u64);
    Span {
        trace_id: trace_id.to_vec(),
        span_id: ids.bytes(8),
        parent_span_id: parent.to_vec(),
        name: format!("chat {model}"),
        kind: SpanKind::Client as i32,
        start_time_unix_nano: start_ns,
        end_time_unix_nano: start_ns + dur_ns,
        attributes: vec![
            s(gen_ai::OPERATION_NAME, "chat"),
            s(gen_ai::PROVIDER_NAME, provider),
            s(gen_ai::REQUEST_MODEL, model),
            s(gen_ai::RESPONSE_MODEL, response_model),
            s(gen_ai::RESPONSE_ID, format!("resp_{}", hex(&ids.bytes(12)))),
            kv(
                gen_ai::RESPONSE_FINISH_REASONS,
                any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::StringValue("stop".into())),
                    }],
                }),
            ),
            i(gen_ai::USAGE_INPUT_TOKENS, input_tokens),
            i(gen_ai::USAGE_OUTPUT_TOKENS, output_tokens),
            s(gen_ai::INPUT_MESSAGES, input),
            s(gen_ai::OUTPUT_MESSAGES, output),
        ],
        ..Default::default()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Generates about `cfg.spans` spans (whole traces, whole requests).
pub fn generate(cfg: &GenConfig) -> Generated {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut ids = Ids { next: cfg.seed };
    let traces_per_request = (cfg.spans_per_request / SPANS_PER_TRACE).max(1);
    let per_request = traces_per_request * SPANS_PER_TRACE;
    let n_requests = cfg.spans.div_ceil(per_request);
    let mut requests = Vec::with_capacity(usize::try_from(n_requests).unwrap_or(0));
    let mut grpc_framed = Vec::with_capacity(requests.capacity());
    let mut bytes = 0u64;
    for r in 0..n_requests {
        let tenant = usize::try_from(r).unwrap_or(0) % cfg.tenants.max(1);
        let mut spans = Vec::with_capacity(usize::try_from(per_request).unwrap_or(0));
        for t in 0..traces_per_request {
            let trace_id = ids.bytes(16);
            let root_id = ids.bytes(8);
            // Traces spread over the last hour, oldest first.
            let start = cfg.now_ns.saturating_sub(3_600_000_000_000)
                + (r * traces_per_request + t) * 1_000_000;
            let mut at = start + 5_000_000;
            let mut children = Vec::with_capacity(3);
            for _ in 0..3 {
                let sp = llm_span(&mut rng, &mut ids, &trace_id, &root_id, at);
                at = sp.end_time_unix_nano + 2_000_000;
                children.push(sp);
            }
            spans.push(Span {
                trace_id: trace_id.clone(),
                span_id: root_id,
                name: "POST /v1/assist".into(),
                kind: SpanKind::Server as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: at,
                attributes: vec![
                    s("http.request.method", "POST"),
                    s("http.route", "/v1/assist"),
                    i(general::HTTP_RESPONSE_STATUS_CODE, 200),
                    s(
                        general::USER_ID,
                        format!("user-{}", rng.random_range(0..5_000u32)),
                    ),
                    s(loupe::FEATURE, "assistant"),
                ],
                ..Default::default()
            });
            spans.extend(children);
        }
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        s(general::SERVICE_NAME, format!("service-{tenant}")),
                        s(loupe::TENANT_ID, format!("tenant-{tenant}")),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "opentelemetry.instrumentation.openai_v2".into(),
                        version: "2.1b0".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        // gRPC message framing: uncompressed flag, big-endian length, message.
        let len = req.encoded_len();
        let mut framed = Vec::with_capacity(GRPC_PREFIX + len);
        framed.push(0);
        framed.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        req.encode(&mut framed).expect("a Vec grows as needed");
        let framed = Bytes::from(framed);
        bytes += len as u64;
        requests.push(framed.slice(GRPC_PREFIX..));
        grpc_framed.push(framed);
    }
    Generated {
        requests,
        grpc_framed,
        spans: n_requests * per_request,
        bytes,
    }
}
