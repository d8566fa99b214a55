//! The demo workload: a deterministic, realistic stream of GenAI traces as
//! OTLP export requests. Pure: no IO, no clock (the caller passes "now").
//!
//! What it contains, so the dashboard has something true to show:
//! - three tenants with their own services and features, `days` of history
//!   with a daily rhythm (busier in working hours);
//! - OpenAI, Anthropic and Gemini models, streaming calls with time to first
//!   token, tool-calling traces (model → tool → model), embeddings, errors
//!   (429 and 500), cache-read tokens on long conversations;
//! - structured JSON outputs that declare their schema, so the collector
//!   validates them: ~2 % fail, until the response model of globex's
//!   `ticket-triage` changes version three days ago and ~20 % fail after it;
//! - one model that has no price (a self-hosted fine-tune), to be flagged.
//!
//! Every attribute key comes from `schemas::keys`.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemas::keys::{loupe, openllmetry as ol, otel};

const NS_PER_SEC: u64 = 1_000_000_000;
const DAY_NS: u64 = 86_400 * NS_PER_SEC;
/// Days before "now" when globex's triage model changed version.
pub const MODEL_CHANGE_DAYS_AGO: u64 = 3;
pub const TRIAGE_MODEL_BEFORE: &str = "gpt-4o-mini-2024-07-18";
pub const TRIAGE_MODEL_AFTER: &str = "gpt-4o-mini-2025-04-14";
pub const UNPRICED_MODEL: &str = "initech-llama-3.1-8b-ft";

/// How much to generate.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub days: u64,
    /// Traces per tenant per day, on average.
    pub traces_per_tenant_day: u64,
    /// Stop after about this many spans (for benchmarks); `None`: the whole history.
    pub max_spans: Option<u64>,
    /// Spans per export request.
    pub spans_per_request: usize,
    pub seed: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            days: 14,
            traces_per_tenant_day: 120,
            max_spans: None,
            spans_per_request: 400,
            seed: 7,
        }
    }
}

struct Tenant {
    id: &'static str,
    service: &'static str,
    weight: u64,
}

const TENANTS: &[Tenant] = &[
    Tenant {
        id: "acme",
        service: "support-bot",
        weight: 5,
    },
    Tenant {
        id: "globex",
        service: "helpdesk-api",
        weight: 4,
    },
    Tenant {
        id: "initech",
        service: "docs-assistant",
        weight: 2,
    },
];

/// The kinds of trace the workload draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    StreamingChat,
    ToolCall,
    Triage,
    Embedding,
    Summarize,
    SelfHosted,
}

const QUESTIONS: &[&str] = &[
    "My blender arrived with a cracked jar. Can I get a replacement before the weekend?",
    "How do I rotate the API key for our staging project without downtime?",
    "The invoice for October charged us twice. Please explain the second line item.",
    "Can you summarise the attached incident report in three bullet points?",
    "What's the difference between the Pro and Team plans for a 12-person company?",
    "Our webhook deliveries started failing with 401 at 09:14 UTC. What changed?",
    "Draft a polite reply declining the refund: the order is outside the 30-day window.",
    "Which regions support data residency in the EU, and how do I enable it?",
];

const ANSWERS: &[&str] = &[
    "I'm sorry about the cracked jar. I've started a replacement order; it ships today with express delivery.",
    "Create the new key first, deploy it to staging, then revoke the old one from the console once traffic has moved.",
    "The second line is a prorated seat added on October 12; I've attached the breakdown and can reverse it if unintended.",
    "- Root cause: expired TLS certificate on the ingress\n- Impact: 23 minutes of 5xx for EU users\n- Fix: automated renewal with alerting",
    "Team adds SSO, audit logs and shared workspaces; for 12 people it's cheaper than 12 Pro seats after the volume discount.",
    "A key rotation at 09:12 UTC invalidated the signing secret; update the webhook secret in your endpoint settings.",
    "Thank you for reaching out. Unfortunately this order falls outside our 30-day window, so we can't offer a refund.",
    "Frankfurt and Dublin support residency; enable it under Settings → Data → Region before creating projects.",
];

const TRIAGE_SCHEMA: &str = r#"{"type":"object","properties":{"category":{"type":"string","enum":["billing","bug","account","other"]},"priority":{"type":"integer","minimum":1,"maximum":4},"summary":{"type":"string"}},"required":["category","priority","summary"],"additionalProperties":false}"#;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

fn i(key: &str, v: u64) -> KeyValue {
    kv(
        key,
        any_value::Value::IntValue(i64::try_from(v).unwrap_or(i64::MAX)),
    )
}

fn f(key: &str, v: f64) -> KeyValue {
    kv(key, any_value::Value::DoubleValue(v))
}

fn tokens_of(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4).max(1)
}

fn messages_json(pairs: &[(&str, &str)]) -> String {
    let items: Vec<serde_json::Value> = pairs
        .iter()
        .map(|(role, text)| {
            serde_json::json!({"role": role, "parts": [{"type": "text", "content": text}]})
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

fn output_json(text: &str, finish: &str) -> String {
    serde_json::json!([{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": finish}])
        .to_string()
}

/// One trace's spans, before they are grouped by tenant into requests.
struct Trace {
    tenant: &'static Tenant,
    spans: Vec<Span>,
}

/// The generator. Iterate it to get export requests, oldest first.
pub struct Workload {
    cfg: WorkloadConfig,
    rng: StdRng,
    now_ns: u64,
    /// Next trace start, walking from `days` ago to now.
    cursor_ns: u64,
    step_ns: u64,
    emitted_spans: u64,
    next_id: u64,
}

impl Workload {
    pub fn new(cfg: WorkloadConfig, now_ns: u64) -> Self {
        let total_traces = cfg.traces_per_tenant_day.max(1)
            * cfg.days.max(1)
            * TENANTS.iter().map(|t| t.weight).sum::<u64>()
            / 3;
        let span = cfg.days.max(1) * DAY_NS;
        Self {
            rng: StdRng::seed_from_u64(cfg.seed),
            now_ns,
            cursor_ns: now_ns.saturating_sub(span),
            step_ns: (span / total_traces.max(1)).max(1),
            emitted_spans: 0,
            next_id: cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            cfg,
        }
    }

    fn id(&mut self, bytes: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes);
        while out.len() < bytes {
            self.next_id = self.next_id.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.next_id;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            out.extend_from_slice(&(z ^ (z >> 31)).to_be_bytes());
        }
        out.truncate(bytes);
        out
    }

    /// Traffic follows the working day: fewer traces at night (UTC).
    fn keep_at(&mut self, t_ns: u64) -> bool {
        let hour = (t_ns / NS_PER_SEC / 3600) % 24;
        let p = if (8..19).contains(&hour) { 1.0 } else { 0.35 };
        self.rng.random_bool(p)
    }

    fn pick_tenant(&mut self) -> &'static Tenant {
        let total: u64 = TENANTS.iter().map(|t| t.weight).sum();
        let mut x = self.rng.random_range(0..total);
        for t in TENANTS {
            if x < t.weight {
                return t;
            }
            x -= t.weight;
        }
        &TENANTS[0]
    }

    fn pick_kind(&mut self, tenant: &Tenant) -> Kind {
        let x = self.rng.random_range(0..100);
        match tenant.id {
            "globex" if x < 35 => Kind::Triage,
            "initech" if x < 25 => Kind::SelfHosted,
            _ => match x % 10 {
                0..=2 => Kind::Chat,
                3 | 4 => Kind::StreamingChat,
                5 | 6 => Kind::ToolCall,
                7 => Kind::Embedding,
                _ => Kind::Summarize,
            },
        }
    }

    fn trace(&mut self, start: u64) -> Trace {
        let tenant = self.pick_tenant();
        let kind = self.pick_kind(tenant);
        let trace_id = self.id(16);
        let root_id = self.id(8);
        let user = format!("user-{}", self.rng.random_range(1..400));
        let session = format!("sess-{:x}", self.rng.random_range(1u32..50_000));
        let feature = match kind {
            Kind::Chat | Kind::StreamingChat => "chat-support",
            Kind::ToolCall => "order-lookup",
            Kind::Triage => "ticket-triage",
            Kind::Embedding => "search",
            Kind::Summarize => "summarize",
            Kind::SelfHosted => "doc-qa",
        };
        let q = QUESTIONS[self.rng.random_range(0..QUESTIONS.len())];
        let a = ANSWERS[self.rng.random_range(0..ANSWERS.len())];
        let mut spans = Vec::new();
        let mut t = start + self.rng.random_range(2..20) * 1_000_000;
        let attribution = |spans_attrs: &mut Vec<KeyValue>| {
            spans_attrs.push(s(loupe::TENANT_ID, tenant.id));
            spans_attrs.push(s(loupe::FEATURE, feature));
            spans_attrs.push(s(otel_user(), user.clone()));
            spans_attrs.push(s(otel_session(), session.clone()));
        };
        macro_rules! llm {
            ($call:expr) => {{
                let call = $call;
                let id = self.id(8);
                let sp = self.llm_span(&trace_id, &root_id, &id, t, &call, &attribution);
                t = sp.end_time_unix_nano + self.rng.random_range(1..30) * 1_000_000;
                spans.push(sp);
            }};
        }
        match kind {
            Kind::Chat | Kind::StreamingChat | Kind::Summarize => {
                let (model, provider) = self.chat_model(tenant);
                let stream = kind == Kind::StreamingChat;
                llm!(Call::chat(provider, model, q, a, stream));
            }
            Kind::ToolCall => {
                let mut first = Call::chat("openai", "gpt-4o", q, "", false);
                first.tool_call = Some(("get_order", r#"{"order_id":"A-10442"}"#));
                llm!(first);
                let tool_id = self.id(8);
                let dur = self.rng.random_range(20..180) * 1_000_000;
                let mut attrs = vec![
                    s(otel::OPERATION_NAME, "execute_tool"),
                    s(otel::TOOL_NAME, "get_order"),
                    s(otel::TOOL_CALL_ID, "call_A10442"),
                ];
                attribution(&mut attrs);
                spans.push(span(
                    &trace_id,
                    &root_id,
                    &tool_id,
                    "execute_tool get_order",
                    t,
                    t + dur,
                    attrs,
                    SpanKind::Internal,
                ));
                t += dur + 2_000_000;
                let mut second = Call::chat("openai", "gpt-4o", q, a, false);
                second.history_tokens = 180;
                llm!(second);
            }
            Kind::Triage => {
                let after = start + MODEL_CHANGE_DAYS_AGO * DAY_NS >= self.now_ns;
                let fail_rate = if after { 0.20 } else { 0.02 };
                let fails = self.rng.random_bool(fail_rate);
                let body = if fails {
                    if self.rng.random_bool(0.5) {
                        r#"{"category":"billing","priority":"high","summary":"Double charge on October invoice"}"#
                    } else {
                        r#"{"category": "billing", "priority": 2, "summary": "Double charge on Oct"#
                    }
                } else {
                    r#"{"category":"billing","priority":2,"summary":"Double charge on October invoice"}"#
                };
                let mut call = Call::chat("openai", "gpt-4o-mini", q, body, false);
                call.response_model = Some(if after {
                    TRIAGE_MODEL_AFTER
                } else {
                    TRIAGE_MODEL_BEFORE
                });
                call.schema = Some(TRIAGE_SCHEMA);
                llm!(call);
            }
            Kind::Embedding => {
                let mut call = Call::chat("openai", "text-embedding-3-small", q, "", false);
                call.operation = "embeddings";
                llm!(call);
            }
            Kind::SelfHosted => {
                llm!(Call::chat("vllm", UNPRICED_MODEL, q, a, false));
            }
        }
        let end = spans
            .iter()
            .map(|s| s.end_time_unix_nano)
            .max()
            .unwrap_or(t)
            + 3_000_000;
        let mut attrs = vec![
            s("http.request.method", "POST"),
            s("http.route", "/api/v1/assist"),
        ];
        attribution(&mut attrs);
        let errored = spans.iter().any(|s| {
            s.status
                .as_ref()
                .is_some_and(|st| st.code == StatusCode::Error as i32)
        });
        let mut root = span(
            &trace_id,
            &[],
            &root_id,
            "POST /api/v1/assist",
            start,
            end,
            attrs,
            SpanKind::Server,
        );
        if errored {
            root.status = Some(Status {
                code: StatusCode::Error as i32,
                message: "upstream model call failed".into(),
            });
        }
        spans.insert(0, root);
        Trace { tenant, spans }
    }

    fn chat_model(&mut self, tenant: &Tenant) -> (&'static str, &'static str) {
        match (tenant.id, self.rng.random_range(0..4)) {
            ("acme", 0 | 1) => ("gpt-4o-mini", "openai"),
            ("acme", _) => ("claude-haiku-4-5", "anthropic"),
            ("globex", 0) => ("gemini-2.5-flash", "gcp.gemini"),
            ("globex", _) => ("gpt-4o-mini", "openai"),
            (_, 0) => ("claude-sonnet-4-5", "anthropic"),
            _ => ("o4-mini", "openai"),
        }
    }

    fn llm_span(
        &mut self,
        trace_id: &[u8],
        parent: &[u8],
        id: &[u8],
        start: u64,
        call: &Call,
        attribution: &dyn Fn(&mut Vec<KeyValue>),
    ) -> Span {
        let input_tokens = tokens_of(call.prompt) + 40 + call.history_tokens;
        let output_tokens = if call.operation == "embeddings" {
            0
        } else {
            tokens_of(call.completion).max(8)
        };
        let per_token_ms = match call.model {
            m if m.starts_with("o4") => 18,
            m if m.contains("sonnet") || m == "gpt-4o" => 14,
            _ => 7,
        };
        let ttft = self.rng.random_range(180..700) * 1_000_000;
        let dur = ttft
            + output_tokens * per_token_ms * 1_000_000
            + self.rng.random_range(0..200) * 1_000_000;
        let mut attrs = vec![
            s(otel::OPERATION_NAME, call.operation),
            s(otel::PROVIDER_NAME, call.provider),
            s(otel::REQUEST_MODEL, call.model),
        ];
        attribution(&mut attrs);
        let error = self.rng.random_range(0..1000);
        let mut status = Status {
            code: StatusCode::Ok as i32,
            message: String::new(),
        };
        let mut events = Vec::new();
        if call.operation != "embeddings" {
            attrs.push(s(
                otel::INPUT_MESSAGES,
                messages_json(&[
                    ("system", "You are a concise, friendly support assistant."),
                    ("user", call.prompt),
                ]),
            ));
            attrs.push(f("gen_ai.request.temperature", 0.2));
            attrs.push(i("gen_ai.request.max_tokens", 512));
        }
        if error < 12 {
            let (code, kind) = if error < 8 {
                (429, "RateLimitError")
            } else {
                (500, "InternalServerError")
            };
            status = Status {
                code: StatusCode::Error as i32,
                message: format!("Error code: {code} - upstream error"),
            };
            attrs.push(s("error.type", kind));
            events.push(Event {
                time_unix_nano: start + ttft,
                name: "exception".into(),
                attributes: vec![
                    s("exception.type", kind),
                    s("exception.message", format!("Error code: {code}")),
                ],
                ..Default::default()
            });
            return Span {
                events,
                status: Some(status),
                ..span(
                    trace_id,
                    parent,
                    id,
                    &format!("{} {}", call.operation, call.model),
                    start,
                    start + ttft,
                    attrs,
                    SpanKind::Client,
                )
            };
        }
        let response_model = call
            .response_model
            .map(str::to_string)
            .unwrap_or_else(|| call.model.to_string());
        attrs.push(s(otel::RESPONSE_MODEL, response_model));
        attrs.push(s(otel::RESPONSE_ID, format!("resp_{}", hex_of(id))));
        attrs.push(i(otel::USAGE_INPUT_TOKENS, input_tokens));
        if call.history_tokens > 0 {
            attrs.push(i(otel::USAGE_CACHE_READ_INPUT_TOKENS, call.history_tokens));
        }
        if call.operation != "embeddings" {
            attrs.push(i(otel::USAGE_OUTPUT_TOKENS, output_tokens));
            if call.model.starts_with("o4") {
                attrs.push(i(otel::USAGE_REASONING_OUTPUT_TOKENS, output_tokens / 2));
            }
            let finish = if call.tool_call.is_some() {
                "tool_calls"
            } else {
                "stop"
            };
            attrs.push(kv(
                otel::RESPONSE_FINISH_REASONS,
                any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::StringValue(finish.into())),
                    }],
                }),
            ));
            let out = match call.tool_call {
                Some((name, args)) => serde_json::json!([{"role": "assistant", "parts": [{"type": "tool_call", "id": "call_A10442", "name": name, "arguments": serde_json::from_str::<serde_json::Value>(args).unwrap_or_default()}], "finish_reason": finish}]).to_string(),
                None => output_json(call.completion, finish),
            };
            attrs.push(s(otel::OUTPUT_MESSAGES, out));
        }
        if call.stream {
            attrs.push(kv(otel::REQUEST_STREAM, any_value::Value::BoolValue(true)));
            attrs.push(f(otel::RESPONSE_TIME_TO_FIRST_CHUNK, ttft as f64 / 1e9));
        }
        if let Some(schema) = call.schema {
            attrs.push(s(otel::OUTPUT_TYPE, "json"));
            attrs.push(s(ol::STRUCTURED_OUTPUT_SCHEMA, schema));
        }
        Span {
            events,
            status: Some(status),
            ..span(
                trace_id,
                parent,
                id,
                &format!("{} {}", call.operation, call.model),
                start,
                start + dur,
                attrs,
                SpanKind::Client,
            )
        }
    }

    fn group(traces: Vec<Trace>) -> ExportTraceServiceRequest {
        let mut resource_spans: Vec<ResourceSpans> = Vec::new();
        for t in TENANTS {
            let spans: Vec<Span> = traces
                .iter()
                .filter(|tr| tr.tenant.id == t.id)
                .flat_map(|tr| tr.spans.iter().cloned())
                .collect();
            if spans.is_empty() {
                continue;
            }
            resource_spans.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        s("service.name", t.service),
                        s(loupe::TENANT_ID, t.id),
                        s("deployment.environment.name", "production"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "loupe.demo".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        ExportTraceServiceRequest { resource_spans }
    }
}

fn otel_user() -> &'static str {
    schemas::keys::general::USER_ID
}

fn otel_session() -> &'static str {
    schemas::keys::general::SESSION_ID
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace_id: &[u8],
    parent: &[u8],
    id: &[u8],
    name: &str,
    start: u64,
    end: u64,
    attributes: Vec<KeyValue>,
    kind: SpanKind,
) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: id.to_vec(),
        parent_span_id: parent.to_vec(),
        name: name.to_string(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        status: Some(Status {
            code: StatusCode::Ok as i32,
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// One model call to synthesise.
struct Call {
    provider: &'static str,
    model: &'static str,
    operation: &'static str,
    prompt: &'static str,
    completion: &'static str,
    stream: bool,
    history_tokens: u64,
    tool_call: Option<(&'static str, &'static str)>,
    response_model: Option<&'static str>,
    schema: Option<&'static str>,
}

impl Call {
    fn chat(
        provider: &'static str,
        model: &'static str,
        prompt: &'static str,
        completion: &'static str,
        stream: bool,
    ) -> Self {
        Self {
            provider,
            model,
            operation: "chat",
            prompt,
            completion,
            stream,
            history_tokens: 0,
            tool_call: None,
            response_model: None,
            schema: None,
        }
    }
}

impl Iterator for Workload {
    type Item = ExportTraceServiceRequest;

    fn next(&mut self) -> Option<Self::Item> {
        let mut traces = Vec::new();
        let mut spans = 0usize;
        while spans < self.cfg.spans_per_request {
            if let Some(max) = self.cfg.max_spans
                && self.emitted_spans + spans as u64 >= max
            {
                break;
            }
            // With a span budget, wrap around the history window so any
            // volume fits inside retention.
            if self.cursor_ns >= self.now_ns.saturating_sub(60 * NS_PER_SEC) {
                if self.cfg.max_spans.is_none() {
                    break;
                }
                self.cursor_ns = self.now_ns.saturating_sub(self.cfg.days.max(1) * DAY_NS);
            }
            let jitter = self.rng.random_range(0..self.step_ns.max(2));
            let start = self.cursor_ns + jitter / 2;
            self.cursor_ns += self.step_ns;
            if !self.keep_at(start) {
                continue;
            }
            let t = self.trace(start);
            spans += t.spans.len();
            traces.push(t);
        }
        if traces.is_empty() {
            return None;
        }
        self.emitted_spans += spans as u64;
        Some(Self::group(traces))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_000_000 * NS_PER_SEC;

    fn all(cfg: WorkloadConfig) -> Vec<Span> {
        Workload::new(cfg, NOW)
            .flat_map(|r| r.resource_spans.into_iter())
            .flat_map(|rs| rs.scope_spans.into_iter())
            .flat_map(|ss| ss.spans.into_iter())
            .collect()
    }

    fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a any_value::Value> {
        s.attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    #[test]
    fn covers_the_history_and_every_tenant() {
        let spans = all(WorkloadConfig::default());
        assert!(spans.len() > 5_000, "{} spans", spans.len());
        let oldest = spans.iter().map(|s| s.start_time_unix_nano).min().unwrap();
        let newest = spans.iter().map(|s| s.end_time_unix_nano).max().unwrap();
        assert!(NOW - oldest > 13 * DAY_NS && NOW - oldest <= 14 * DAY_NS + DAY_NS);
        assert!(newest <= NOW, "nothing in the future");
        for t in TENANTS {
            assert!(spans.iter().any(|s| matches!(attr(s, loupe::TENANT_ID), Some(any_value::Value::StringValue(v)) if v == t.id)));
        }
    }

    #[test]
    fn triage_failures_jump_after_the_model_change() {
        let spans = all(WorkloadConfig::default());
        let triage: Vec<&Span> = spans
            .iter()
            .filter(|s| attr(s, ol::STRUCTURED_OUTPUT_SCHEMA).is_some())
            .collect();
        let rate = |model: &str| {
            let of: Vec<&&Span> = triage
                .iter()
                .filter(|s| matches!(attr(s, otel::RESPONSE_MODEL), Some(any_value::Value::StringValue(m)) if m == model))
                .collect();
            let bad = of
                .iter()
                .filter(|s| {
                    let Some(any_value::Value::StringValue(out)) = attr(s, otel::OUTPUT_MESSAGES)
                    else {
                        return false;
                    };
                    out.contains("\\\"high\\\"") || !out.contains("invoice\\\"}")
                })
                .count();
            (bad as f64 / of.len().max(1) as f64, of.len())
        };
        let (before, n_before) = rate(TRIAGE_MODEL_BEFORE);
        let (after, n_after) = rate(TRIAGE_MODEL_AFTER);
        assert!(n_before > 200 && n_after > 50, "{n_before} {n_after}");
        assert!(before < 0.06, "before {before}");
        assert!(after > 0.12, "after {after}");
    }

    #[test]
    fn has_errors_streams_tools_and_an_unpriced_model() {
        let spans = all(WorkloadConfig::default());
        let errors = spans
            .iter()
            .filter(|s| {
                s.status
                    .as_ref()
                    .is_some_and(|st| st.code == StatusCode::Error as i32)
            })
            .count();
        assert!(errors > 10);
        assert!(
            spans
                .iter()
                .any(|s| attr(s, otel::REQUEST_STREAM).is_some())
        );
        assert!(spans.iter().any(|s| s.name == "execute_tool get_order"));
        assert!(spans.iter().any(|s| matches!(attr(s, otel::REQUEST_MODEL), Some(any_value::Value::StringValue(m)) if m == UNPRICED_MODEL)));
    }

    #[test]
    fn a_span_budget_is_respected_and_deterministic() {
        let cfg = WorkloadConfig {
            max_spans: Some(10_000),
            ..Default::default()
        };
        let a = all(cfg.clone());
        assert!(a.len() >= 9_990 && a.len() <= 10_000 + 8, "{}", a.len());
        let b = all(cfg);
        assert_eq!(a.len(), b.len());
        assert_eq!(a[100].span_id, b[100].span_id);
        let big = all(WorkloadConfig {
            max_spans: Some(120_000),
            ..Default::default()
        });
        assert!(
            big.len() >= 119_990,
            "wraps the history to reach the budget: {}",
            big.len()
        );
    }

    #[test]
    fn the_real_mapping_reads_it_as_intended() {
        let prices = schemas::pricing::PriceTable::bundled().unwrap();
        let ctx = schemas::NormalizeContext {
            key_tenant: None,
            default_tenant: "default".into(),
        };
        let mut spans = Vec::new();
        for req in Workload::new(
            WorkloadConfig {
                max_spans: Some(6_000),
                ..Default::default()
            },
            NOW,
        ) {
            spans.extend(schemas::process_batch(req, None, &ctx, &prices));
        }
        let llm: Vec<_> = spans
            .iter()
            .filter(|s| s.operation.is_model_call())
            .collect();
        assert!(
            llm.iter().all(|s| s.tenant_id != "default"),
            "every span is attributed"
        );
        let status = |st: schemas::PriceStatus| llm.iter().filter(|s| s.price_status == st).count();
        assert!(status(schemas::PriceStatus::Priced) > llm.len() / 2);
        assert!(status(schemas::PriceStatus::UnpricedModel) > 0);
        assert!(
            llm.iter()
                .filter(|s| s.request_model == UNPRICED_MODEL)
                .all(|s| s.price_status != schemas::PriceStatus::Priced
                    || s.status == schemas::StatusCode::Error)
        );
        let evals: Vec<_> = llm.iter().flat_map(|s| s.evaluations.iter()).collect();
        assert!(
            evals
                .iter()
                .any(|e| e.name == "json_schema" && e.label == "fail")
        );
        assert!(
            evals
                .iter()
                .any(|e| e.name == "json_schema" && e.label == "pass")
        );
        assert!(llm.iter().any(|s| s.usage.cache_read.is_some()));
        assert!(
            llm.iter().any(|s| s.time_to_first_token_ns.is_some()),
            "streaming spans carry TTFT"
        );
    }
}
