//! A realistic, deterministic dataset relative to "now": three tenants, 14
//! days, several providers and models, tool-calling traces, errors, an
//! unpriced model, a response-model change followed by a validation-failure
//! spike, and a trace whose prompt is hostile HTML.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use schemas::span::{
    CanonicalSpan, Evaluation, Message, Operation, PriceStatus, StatusCode, ToolCall,
};
use store::Store;
use store::rows::{EvaluationRow, Retention, SpanRow, tables};

pub const XSS_TRACE: &str = "0000000000000000000000000000dead";
pub const XSS_SPAN: &str = "000000000000bad1";
pub const XSS_PROMPT: &str =
    "<script>alert(1)</script><img src=x onerror=\"alert(2)\"><b>bold?</b> & friends";
pub const BIG_TRACE: &str = "00000000000000000000000000000b16";
pub const DAY_NS: u64 = 86_400_000_000_000;

/// What the dataset adds up to, for tests that check the pages' numbers.
#[derive(Debug, Default)]
pub struct Seeded {
    pub spans: usize,
    /// Counted cost per tenant over the whole dataset.
    pub cost_by_tenant: BTreeMap<String, Decimal>,
    pub calls_by_tenant: BTreeMap<String, u64>,
    pub unpriced_calls: u64,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn msgs(m: &[(&str, &str)]) -> String {
    serde_json::to_string(
        &m.iter()
            .map(|(r, c)| Message {
                role: (*r).into(),
                content: (*c).into(),
                ..Default::default()
            })
            .collect::<Vec<_>>(),
    )
    .unwrap()
}

/// Price per million tokens (input, output) in USD; `None` = unpriced.
fn price(model: &str) -> Option<(Decimal, Decimal)> {
    match model {
        "gpt-4o-mini" => Some((Decimal::new(15, 2), Decimal::new(60, 2))),
        "gpt-4o" => Some((Decimal::new(250, 2), Decimal::new(1000, 2))),
        "claude-3-5-sonnet" => Some((Decimal::new(300, 2), Decimal::new(1500, 2))),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn llm(
    tenant: &str,
    trace: &str,
    span: &str,
    parent: &str,
    start: u64,
    dur: u64,
    provider: &str,
    model: &str,
    resp_model: &str,
    input: u64,
    output: u64,
    feature: &str,
    service: &str,
) -> CanonicalSpan {
    let mut s = CanonicalSpan {
        tenant_id: tenant.into(),
        trace_id: trace.into(),
        span_id: span.into(),
        parent_span_id: parent.into(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + dur,
        name: format!("chat {model}"),
        kind: "client".into(),
        service_name: service.into(),
        scope_name: "opentelemetry.instrumentation.openai".into(),
        status: StatusCode::Ok,
        operation: Operation::Chat,
        provider: provider.into(),
        request_model: model.into(),
        response_model: resp_model.into(),
        response_id: format!("resp-{span}"),
        finish_reasons: vec!["stop".into()],
        streaming: Some(dur.is_multiple_of(2)),
        time_to_first_token_ns: Some(dur / 4),
        feature: feature.into(),
        source_convention: "otel_genai".into(),
        counted: true,
        attributes: vec![
            ("gen_ai.request.model".into(), model.into()),
            ("gen_ai.request.temperature".into(), "0.2".into()),
        ],
        resource_attributes: vec![
            ("service.name".into(), service.into()),
            ("tenant.id".into(), tenant.into()),
        ]
        .into(),
        ..Default::default()
    };
    s.usage.input = Some(input);
    s.usage.output = Some(output);
    s.cost.currency = "USD".into();
    match price(model) {
        Some((pi, po)) => {
            let m = Decimal::from(1_000_000);
            s.cost.input = Decimal::from(input) * pi / m;
            s.cost.output = Decimal::from(output) * po / m;
            s.cost.total = s.cost.input + s.cost.output;
            s.price_status = PriceStatus::Priced;
            s.price_version = "2025-01".into();
        }
        None => s.price_status = PriceStatus::UnpricedModel,
    }
    s
}

fn app_span(
    tenant: &str,
    trace: &str,
    span: &str,
    start: u64,
    dur: u64,
    service: &str,
    name: &str,
) -> CanonicalSpan {
    CanonicalSpan {
        tenant_id: tenant.into(),
        trace_id: trace.into(),
        span_id: span.into(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + dur,
        name: name.into(),
        kind: "server".into(),
        service_name: service.into(),
        status: StatusCode::Ok,
        feature: "support-chat".into(),
        source_convention: "none".into(),
        ..Default::default()
    }
}

/// Builds the dataset. `traces_per_day` per tenant; `big_trace_spans` > 0 adds
/// one trace with that many spans.
pub fn build(now: u64, traces_per_day: u64, big_trace_spans: u64) -> Vec<CanonicalSpan> {
    let mut rng = Rng(42);
    let mut out = Vec::new();
    let tenants = [
        ("acme", "openai", "gpt-4o", "support-chat", "support-api"),
        (
            "globex",
            "anthropic",
            "claude-3-5-sonnet",
            "summarize",
            "docs-worker",
        ),
        ("initech", "openai", "gpt-4o-mini", "classify", "tickets"),
    ];
    let prompts = [
        (
            "You are a helpful support agent. Answer in JSON.",
            "Where is my order #1234? It was due Tuesday.",
        ),
        (
            "Summarize the document for an executive.",
            "Q3 revenue grew 12% while costs fell; churn ticked up in EMEA.",
        ),
        (
            "Classify the ticket.",
            "My invoice shows the wrong VAT number.",
        ),
        (
            "You are a helpful support agent. Answer in JSON.",
            "Can I change the delivery address after shipping?",
        ),
    ];
    let mut n = 0u64;
    for day in 0..14u64 {
        for (ti, (tenant, provider, model, feature, service)) in tenants.iter().enumerate() {
            for k in 0..traces_per_day {
                n += 1;
                let trace = format!("{:032x}", 0x1000_0000u64 + n);
                let start = now
                    - (13 - day) * DAY_NS
                    - 3_600_000_000_000 * (1 + (k % 8))
                    - rng.below(3_000_000_000_000);
                let start = start.min(now - 60_000_000_000);
                let root_id = format!("{:016x}", n * 16);
                let total_dur = 800_000_000 + rng.below(4_000_000_000);
                let mut root = app_span(
                    tenant,
                    &trace,
                    &root_id,
                    start,
                    total_dur,
                    service,
                    "POST /v1/assist",
                );
                root.feature = (*feature).into();
                out.push(root);
                // model-version change for acme three days ago
                let changed = *tenant == "acme" && day >= 11;
                let resp = match (*model, changed) {
                    ("gpt-4o", false) => "gpt-4o-2024-08-06",
                    ("gpt-4o", true) => "gpt-4o-2024-11-20",
                    ("claude-3-5-sonnet", _) => "claude-3-5-sonnet-20241022",
                    _ => "gpt-4o-mini-2024-07-18",
                };
                let (sys, user) = prompts[(n as usize + ti) % prompts.len()];
                let inp = 200 + rng.below(1800);
                let outp = 40 + rng.below(400);
                let mut call = llm(
                    tenant,
                    &trace,
                    &format!("{:016x}", n * 16 + 1),
                    &root_id,
                    start + 20_000_000,
                    total_dur / 2,
                    provider,
                    model,
                    resp,
                    inp,
                    outp,
                    feature,
                    service,
                );
                call.input_messages = msgs(&[("system", sys), ("user", user)]);
                call.output_messages =
                    msgs(&[("assistant", r#"{"status":"shipped","eta":"Thursday"}"#)]);
                if rng.below(25) == 0 {
                    call.status = StatusCode::Error;
                    call.status_message = "Rate limit reached for requests".into();
                    call.error_type = "RateLimitError".into();
                    call.http_status = Some(429);
                    call.usage = Default::default();
                    call.cost = schemas::span::Cost {
                        currency: "USD".into(),
                        ..Default::default()
                    };
                    call.price_status = PriceStatus::MissingUsage;
                    call.output_messages = String::new();
                }
                if *tenant == "acme" {
                    let fail = rng.below(100) < if changed { 38 } else { 3 };
                    call.evaluations.push(Evaluation {
                        name: "json_schema".into(),
                        label: if fail { "fail" } else { "pass" }.into(),
                        score: Some(if fail { 0.0 } else { 1.0 }),
                        explanation: if fail {
                            "missing required property 'eta' at /".into()
                        } else {
                            String::new()
                        },
                        source: "collector".into(),
                    });
                }
                out.push(call);
                // tool-calling follow-up on every third trace
                if n.is_multiple_of(3) {
                    let tool_id = format!("{:016x}", n * 16 + 2);
                    let mut tool = app_span(
                        tenant,
                        &trace,
                        &tool_id,
                        start + total_dur / 2 + 30_000_000,
                        total_dur / 8,
                        service,
                        "execute_tool lookup_order",
                    );
                    tool.parent_span_id = root_id.clone();
                    tool.operation = Operation::ExecuteTool;
                    tool.tool_name = "lookup_order".into();
                    tool.tool_call_id = format!("call_{n}");
                    out.push(tool);
                    let mut second = llm(
                        tenant,
                        &trace,
                        &format!("{:016x}", n * 16 + 3),
                        &root_id,
                        start + total_dur / 2 + total_dur / 8 + 40_000_000,
                        total_dur / 3,
                        provider,
                        model,
                        resp,
                        inp + 300,
                        60,
                        feature,
                        service,
                    );
                    let conv = vec![
                        Message {
                            role: "system".into(),
                            content: sys.into(),
                            ..Default::default()
                        },
                        Message {
                            role: "user".into(),
                            content: user.into(),
                            ..Default::default()
                        },
                        Message {
                            role: "assistant".into(),
                            tool_calls: vec![ToolCall {
                                id: format!("call_{n}"),
                                name: "lookup_order".into(),
                                arguments: r#"{"order_id":"1234"}"#.into(),
                            }],
                            ..Default::default()
                        },
                        Message {
                            role: "tool".into(),
                            content: r#"{"status":"shipped","carrier":"DHL"}"#.into(),
                            tool_call_id: format!("call_{n}"),
                            ..Default::default()
                        },
                    ];
                    second.input_messages = serde_json::to_string(&conv).unwrap();
                    second.output_messages = msgs(&[(
                        "assistant",
                        "Your order shipped with DHL and should arrive Thursday.",
                    )]);
                    out.push(second);
                }
                // globex also calls an unpriced in-house model now and then
                if *tenant == "globex" && n.is_multiple_of(4) {
                    let mut m = llm(
                        tenant,
                        &trace,
                        &format!("{:016x}", n * 16 + 4),
                        &root_id,
                        start + 10_000_000,
                        150_000_000,
                        "self-hosted",
                        "mystery-llm-7b",
                        "mystery-llm-7b",
                        500,
                        80,
                        feature,
                        service,
                    );
                    m.input_messages = msgs(&[("user", "rerank these passages")]);
                    out.push(m);
                }
            }
        }
    }
    // The hostile prompt: escaped everywhere, never executed.
    let start = now - 600_000_000_000;
    let mut root = app_span(
        "acme",
        XSS_TRACE,
        "000000000000bad0",
        start,
        2_000_000_000,
        "support-api",
        "POST /v1/assist",
    );
    root.feature = "support-chat".into();
    out.push(root);
    let mut x = llm(
        "acme",
        XSS_TRACE,
        XSS_SPAN,
        "000000000000bad0",
        start + 1_000_000,
        1_500_000_000,
        "openai",
        "gpt-4o",
        "gpt-4o-2024-11-20",
        120,
        30,
        "support-chat",
        "support-api",
    );
    x.input_messages = msgs(&[("system", "Be safe."), ("user", XSS_PROMPT)]);
    x.output_messages = msgs(&[(
        "assistant",
        "I will not run <script>alert(3)</script> for you.",
    )]);
    x.attributes
        .push(("user.note".into(), "<img src=x onerror=alert(4)>".into()));
    out.push(x);
    if big_trace_spans > 0 {
        let start = now - 1_200_000_000_000;
        out.push(app_span(
            "initech",
            BIG_TRACE,
            "0000000000000b00",
            start,
            60_000_000_000,
            "batch",
            "nightly batch",
        ));
        for i in 1..big_trace_spans {
            let parent = if i % 10 == 1 {
                "0000000000000b00".to_string()
            } else {
                format!("{:016x}", 0xb00 + (i - (i - 1) % 10))
            };
            let s0 = start + i * 25_000_000;
            if i % 10 == 1 {
                let mut step = app_span(
                    "initech",
                    BIG_TRACE,
                    &format!("{:016x}", 0xb00 + i),
                    s0,
                    240_000_000,
                    "batch",
                    &format!("step {}", i / 10),
                );
                step.parent_span_id = parent;
                out.push(step);
            } else {
                let mut c = llm(
                    "initech",
                    BIG_TRACE,
                    &format!("{:016x}", 0xb00 + i),
                    &parent,
                    s0,
                    20_000_000,
                    "openai",
                    "gpt-4o-mini",
                    "gpt-4o-mini-2024-07-18",
                    100,
                    10,
                    "classify",
                    "batch",
                );
                c.input_messages = msgs(&[("user", &format!("item {i}"))]);
                out.push(c);
            }
        }
    }
    out
}

/// Inserts spans and their evaluations; returns what they add up to.
pub async fn insert(store: &Store, spans: &[CanonicalSpan]) -> Seeded {
    let mut seeded = Seeded {
        spans: spans.len(),
        ..Default::default()
    };
    let mut ins = store
        .insert::<SpanRow>(tables::SPANS, None)
        .await
        .expect("start span insert");
    for s in spans {
        ins.write(&SpanRow::from_canonical(s, Retention::default(), 0))
            .await
            .expect("write span");
        if s.operation.is_model_call() && s.counted {
            *seeded
                .cost_by_tenant
                .entry(s.tenant_id.clone())
                .or_default() += s.cost.total;
            *seeded
                .calls_by_tenant
                .entry(s.tenant_id.clone())
                .or_default() += 1;
            if s.price_status == PriceStatus::UnpricedModel {
                seeded.unpriced_calls += 1;
            }
        }
    }
    ins.end().await.expect("span insert ends");
    let evals: Vec<EvaluationRow> = spans
        .iter()
        .flat_map(|s| EvaluationRow::from_canonical(s, Retention::default()))
        .collect();
    if !evals.is_empty() {
        let mut ins = store
            .insert::<EvaluationRow>(tables::EVALUATIONS, None)
            .await
            .expect("start eval insert");
        for e in &evals {
            ins.write(e).await.expect("write eval");
        }
        ins.end().await.expect("eval insert ends");
    }
    seeded
}
