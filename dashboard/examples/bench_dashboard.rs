//! Dashboard benchmark: loads N synthetic spans into an embedded store and
//! times each page's server time (the router called in-process, so network
//! and browser are excluded; the store's loopback HTTP hop is included).
//!
//! ```text
//! cargo run --release -p dashboard --example bench_dashboard -- --spans 1000000 [--data DIR] [--runs 20]
//! ```
//!
//! With `--data DIR` an existing directory is reused when it already holds at
//! least N spans (so 10M need loading once). Prints one JSON object per page
//! on stdout (see bench/dashboard/run.sh and bench/README.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use dashboard::DashboardConfig;
use http_body_util::BodyExt;
use store::rows::{EvaluationRow, SpanRow, tables};
use tower::ServiceExt;

const TENANTS: u64 = 20;
const DAYS: u64 = 14;
const SPANS_PER_TRACE: u64 = 5;
pub const BIG_TRACE: &str = "0000000000000000000000000000b1b2";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
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
}

const MODELS: &[(&str, &str, &str, i64, i64)] = &[
    // provider, request, response, input and output price per token in 1e-12 USD
    (
        "openai",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
        150_000,
        600_000,
    ),
    (
        "openai",
        "gpt-4o",
        "gpt-4o-2024-08-06",
        2_500_000,
        10_000_000,
    ),
    (
        "anthropic",
        "claude-3-5-sonnet",
        "claude-3-5-sonnet-20241022",
        3_000_000,
        15_000_000,
    ),
    (
        "anthropic",
        "claude-3-5-haiku",
        "claude-3-5-haiku-20241022",
        800_000,
        4_000_000,
    ),
    ("self-hosted", "llama-3-70b", "llama-3-70b", 0, 0),
];
const PROMPTS: &[&str] = &[
    "Where is my order? It was supposed to arrive on Tuesday and the tracking page shows nothing.",
    "Summarize this contract clause for a non-lawyer and list the obligations of each party.",
    "Classify the ticket: my invoice shows the wrong VAT number and the wrong billing address.",
    "Extract the line items from this receipt as JSON with name, quantity and unit price.",
    "Translate the following product description into German, keeping the brand names.",
];

fn span_row(rng: &mut Rng, now_ns: i64, trace_no: u64, k: u64, big: bool) -> SpanRow {
    let tenant = format!("tenant-{:02}", trace_no % TENANTS);
    let day = (trace_no / 7) % DAYS;
    let base = now_ns
        - (day as i64) * 86_400_000_000_000
        - ((trace_no * 7_919) % 80_000) as i64 * 1_000_000_000
        - 120_000_000_000;
    let trace_id = if big {
        BIG_TRACE.to_string()
    } else {
        format!(
            "{:032x}",
            0xabc0_0000_0000_0000u64 ^ trace_no.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        )
    };
    let span_id = format!("{:016x}", trace_no.wrapping_mul(64) + k);
    let root = k == 0;
    let m = MODELS[((trace_no + k) % MODELS.len() as u64) as usize];
    let llm = !root && (big || k != SPANS_PER_TRACE - 1);
    let start = base + (k as i64) * 300_000_000;
    let dur = if root {
        2_000_000_000
    } else {
        200_000_000 + (rng.next() % 2_000_000_000) as i64
    };
    let (inp, out) = (200 + rng.next() % 2000, 20 + rng.next() % 500);
    let (ci, co) = (inp as i64 * m.3, out as i64 * m.4);
    let prompt = PROMPTS[(trace_no % PROMPTS.len() as u64) as usize];
    let fail = llm && m.1 == "gpt-4o" && rng.next() % 100 < if day < 3 { 30 } else { 3 };
    SpanRow {
        tenant_id: tenant,
        start_time: start,
        trace_id,
        span_id,
        parent_span_id: if root {
            String::new()
        } else {
            format!("{:016x}", trace_no.wrapping_mul(64))
        },
        end_time: start + dur,
        duration_ns: dur as u64,
        name: if root {
            "POST /v1/assist".into()
        } else if llm {
            format!("chat {}", m.1)
        } else {
            "execute_tool lookup".into()
        },
        kind: if root {
            "server".into()
        } else {
            "client".into()
        },
        service_name: format!("svc-{}", trace_no % 5),
        scope_name: "opentelemetry.instrumentation.openai".into(),
        scope_version: "0.40.0".into(),
        status_code: if rng.next().is_multiple_of(50) {
            "error".into()
        } else {
            "ok".into()
        },
        status_message: String::new(),
        llm_call: llm,
        operation: if llm {
            "chat".into()
        } else if root {
            String::new()
        } else {
            "execute_tool".into()
        },
        provider: if llm { m.0.into() } else { String::new() },
        request_model: if llm { m.1.into() } else { String::new() },
        response_model: if llm {
            if m.1 == "gpt-4o" && day < 3 {
                "gpt-4o-2024-11-20".into()
            } else {
                m.2.into()
            }
        } else {
            String::new()
        },
        response_id: if llm {
            format!("chatcmpl-{trace_no}-{k}")
        } else {
            String::new()
        },
        finish_reasons: if llm { vec!["stop".into()] } else { vec![] },
        error_type: String::new(),
        http_status: None,
        streaming: llm.then_some(k.is_multiple_of(2)),
        ttft_ns: llm.then_some(dur as u64 / 4),
        input_tokens: llm.then_some(inp),
        output_tokens: llm.then_some(out),
        cache_read_tokens: llm.then_some(0),
        cache_write_tokens: None,
        reasoning_tokens: None,
        total_tokens: llm.then_some(inp + out),
        counted: llm,
        cost_input: if llm { ci } else { 0 },
        cost_output: if llm { co } else { 0 },
        cost_cache_read: 0,
        cost_cache_write: 0,
        cost_total: if llm { ci + co } else { 0 },
        currency: if llm { "USD".into() } else { String::new() },
        price_status: if !llm {
            String::new()
        } else if m.3 == 0 {
            "unpriced_model".into()
        } else {
            "priced".into()
        },
        price_version: "2025-01".into(),
        request_params: vec![("temperature".into(), "0.2".into())],
        tool_name: if !llm && !root {
            "lookup".into()
        } else {
            String::new()
        },
        tool_call_id: String::new(),
        input_preview: if llm {
            prompt.to_string()
        } else {
            String::new()
        },
        output_preview: if llm {
            format!("Sure — here is the answer for request {trace_no}.")
        } else {
            String::new()
        },
        input_messages: if llm {
            format!(
                r#"[{{"role":"system","content":"You are a helpful assistant."}},{{"role":"user","content":"{prompt}"}}]"#
            )
        } else {
            String::new()
        },
        output_messages: if llm {
            format!(
                r#"[{{"role":"assistant","content":"Sure — here is the answer for request {trace_no}."}}]"#
            )
        } else {
            String::new()
        },
        tool_definitions: String::new(),
        output_schema: String::new(),
        output_type: String::new(),
        user_id: format!("user-{}", trace_no % 1000),
        session_id: format!("sess-{}", trace_no / 3),
        feature: ["chat", "summarize", "classify", "extract"][(trace_no % 4) as usize].into(),
        source_convention: "otel_genai".into(),
        attributes: vec![("gen_ai.request.model".into(), m.1.into())],
        resource_attributes: vec![("service.name".into(), format!("svc-{}", trace_no % 5))].into(),
        events: "[]".into(),
        validation: if m.1 == "gpt-4o" && llm {
            if fail { "fail".into() } else { "pass".into() }
        } else {
            String::new()
        },
        truncated: 0,
        redacted: false,
        retention_days: 90,
        body_retention_days: 30,
        ingested_at: 0,
    }
}

fn eval_row(s: &SpanRow) -> Option<EvaluationRow> {
    (!s.validation.is_empty()).then(|| EvaluationRow {
        tenant_id: s.tenant_id.clone(),
        time: s.end_time,
        trace_id: s.trace_id.clone(),
        span_id: s.span_id.clone(),
        name: "json_schema".into(),
        label: s.validation.clone(),
        outcome: s.validation.clone(),
        score: None,
        explanation: if s.validation == "fail" {
            "missing required property 'eta' at /".into()
        } else {
            String::new()
        },
        source: "collector".into(),
        provider: s.provider.clone(),
        request_model: s.request_model.clone(),
        response_model: s.response_model.clone(),
        feature: s.feature.clone(),
        service_name: s.service_name.clone(),
        retention_days: 90,
    })
}

async fn load(store: &store::Store, spans: u64) -> Duration {
    let now = dashboard::civil::now_ns();
    let t = Instant::now();
    let mut rng = Rng(7);
    let traces = spans / SPANS_PER_TRACE;
    const BATCH: u64 = 100_000 / SPANS_PER_TRACE;
    let mut tr = 0;
    while tr < traces {
        let end = (tr + BATCH).min(traces);
        let mut ins = store.insert::<SpanRow>(tables::SPANS, None).await.unwrap();
        let mut evals = Vec::new();
        for n in tr..end {
            for k in 0..SPANS_PER_TRACE {
                let r = span_row(&mut rng, now, n, k, false);
                if let Some(e) = eval_row(&r) {
                    evals.push(e);
                }
                ins.write(&r).await.unwrap();
            }
        }
        ins.end().await.unwrap();
        let mut ei = store
            .insert::<EvaluationRow>(tables::EVALUATIONS, None)
            .await
            .unwrap();
        for e in &evals {
            ei.write(e).await.unwrap();
        }
        ei.end().await.unwrap();
        tr = end;
        eprintln!(
            "loaded {} spans ({:.0} s)",
            tr * SPANS_PER_TRACE,
            t.elapsed().as_secs_f64()
        );
    }
    // one 2,000-span trace for the trace-detail timing
    let mut ins = store.insert::<SpanRow>(tables::SPANS, None).await.unwrap();
    let big_no = 424_242;
    for k in 0..2000 {
        let mut r = span_row(&mut rng, now, big_no, k, true);
        r.start_time = now - 3_600_000_000_000 + k as i64 * 10_000_000;
        r.end_time = r.start_time + 5_000_000;
        r.span_id = format!("{:016x}", 0xb1b2_0000u64 + k);
        r.parent_span_id = if k == 0 {
            String::new()
        } else {
            format!(
                "{:016x}",
                0xb1b2_0000u64 + (k - 1) / 10 * 10 * u64::from(k % 10 != 0)
            )
        };
        r.tenant_id = "tenant-00".into();
        ins.write(&r).await.unwrap();
    }
    ins.end().await.unwrap();
    t.elapsed()
}

async fn time(app: &axum::Router, uri: &str, runs: usize) -> (Vec<f64>, usize) {
    let mut ms = Vec::with_capacity(runs);
    let mut bytes = 0;
    for i in 0..=runs {
        let t = Instant::now();
        let resp = app
            .clone()
            .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{uri}: {}", resp.status());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if i > 0 {
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        bytes = body.len();
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    (ms, bytes)
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let spans: u64 = arg("--spans")
        .map(|v| v.parse().unwrap())
        .unwrap_or(1_000_000);
    let runs: usize = arg("--runs").map(|v| v.parse().unwrap()).unwrap_or(20);
    let tmp = tempfile::tempdir().unwrap();
    let dir = arg("--data")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let store = common::migrated_store_with(&dir, 10 << 30).await;
    let have: u64 = store
        .reader()
        .query("SELECT count() FROM loupe.spans")
        .fetch_one()
        .await
        .unwrap();
    let load_secs = if have >= spans {
        eprintln!("reusing {have} spans in {}", dir.display());
        None
    } else {
        let d = load(&store, spans).await;
        Some(d.as_secs_f64())
    };
    let total: u64 = store
        .reader()
        .query("SELECT count() FROM loupe.spans")
        .fetch_one()
        .await
        .unwrap();
    let app = dashboard::app(dashboard::state(&DashboardConfig::default(), &store).unwrap());

    // the 50th page of a filtered list: walk the cursor 49 times
    let mut uri = "/api/v1/traces?range=7d&tenant=tenant-03".to_string();
    for _ in 0..49 {
        let resp = app
            .clone()
            .oneshot(Request::builder().uri(&uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
        uri = format!(
            "/api/v1{}",
            j["next"].as_str().expect("50 pages of results")
        );
    }
    let page50 = uri.replacen("/api/v1", "", 1);
    let pages = [
        ("overview", "/".to_string()),
        ("cost", "/cost".to_string()),
        ("cost_tenant", "/cost?tenant=tenant-03".to_string()),
        (
            "traces_first_filtered",
            "/traces?range=7d&tenant=tenant-03".to_string(),
        ),
        ("traces_page50_filtered", page50),
        (
            "traces_text_search",
            "/traces?range=7d&q=invoice".to_string(),
        ),
        ("trace_detail_2000_spans", format!("/traces/{BIG_TRACE}")),
        ("drift", "/drift".to_string()),
    ];
    println!(
        "{{\"spans\":{total},\"load_seconds\":{}}}",
        load_secs
            .map(|s| format!("{s:.1}"))
            .unwrap_or_else(|| "null".into())
    );
    for (name, uri) in pages {
        let (ms, bytes) = time(&app, &uri, runs).await;
        println!(
            "{{\"page\":\"{name}\",\"spans\":{total},\"p50_ms\":{:.1},\"p95_ms\":{:.1},\"max_ms\":{:.1},\"bytes\":{bytes},\"runs\":{runs}}}",
            pct(&ms, 0.5),
            pct(&ms, 0.95),
            ms[ms.len() - 1]
        );
    }
    drop(app);
    store.close().await;
}
