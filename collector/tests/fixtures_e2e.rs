//! Every real export in `tests/fixtures` (traces and their logs), POSTed as-is
//! to OTLP/HTTP, ends up as rows in the real engine with its manifest values:
//! provider, models, tokens, tenant, content joined from logs, collector
//! validation, and one cost per provider call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use clickhouse::Row;
use serde::Deserialize;
use serde_json::Value;

const NE: &str = "not emitted by this library";

#[derive(Debug, Row, Deserialize)]
struct Got {
    trace_id: String,
    span_id: String,
    tenant_id: String,
    provider: String,
    request_model: String,
    response_model: String,
    response_id: String,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    counted: bool,
    cost_positive: bool,
    validation: String,
    input_messages: String,
    output_messages: String,
}

#[derive(Debug, Row, Deserialize)]
struct Eval {
    span_id: String,
    name: String,
    label: String,
    source: String,
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(common::fixtures_dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn tokens_ok(want: &Value, got: Option<u64>) -> bool {
    match want {
        Value::Number(n) => got == n.as_u64(),
        Value::Null => matches!(got, None | Some(0)),
        v if v.as_str() == Some(NE) => got.is_none(),
        _ => false,
    }
}

/// Post every fixture; `logs_first` decides which half of a run arrives first.
async fn post_all(
    run: &common::Running,
    ext: &str,
    content_type: &'static str,
    logs_first: bool,
) -> usize {
    let client = common::http_client();
    let dir = common::fixtures_dir();
    let m = manifest();
    let mut posted = 0;
    let mut traces = Vec::new();
    let mut logs = Vec::new();
    for f in m["fixtures"].as_array().unwrap() {
        let name = f["fixture"].as_str().unwrap();
        let base = dir.join(name);
        traces.push(std::fs::read(base.with_extension(ext)).unwrap());
        let lp = base.with_extension(format!("logs.{ext}"));
        if lp.exists() {
            logs.push(std::fs::read(lp).unwrap());
        }
        posted += 1;
    }
    let send = |bodies: Vec<Vec<u8>>, path: &'static str| {
        let client = client.clone();
        let url = run.http_url(path);
        tokio::spawn(async move {
            let mut handles = Vec::new();
            for body in bodies {
                let client = client.clone();
                let url = url.clone();
                handles.push(tokio::spawn(async move {
                    let r = common::post(&client, &url, content_type, body).await;
                    let status = r.status();
                    let ct = r
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let text = r.bytes().await.unwrap();
                    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&text));
                    assert_eq!(ct, content_type, "reply in the request's encoding");
                }));
            }
            for h in handles {
                h.await.unwrap();
            }
        })
    };
    if logs_first {
        send(logs, "/v1/logs").await.unwrap();
        send(traces, "/v1/traces").await.unwrap();
    } else {
        let t = send(traces, "/v1/traces");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        send(logs, "/v1/logs").await.unwrap();
        t.await.unwrap();
    }
    posted
}

async fn check_rows(store: &store::Store) {
    let rows: Vec<Got> = store
        .reader()
        .query(
            "SELECT trace_id, span_id, toString(tenant_id) AS tenant_id, toString(provider) AS provider,
                    toString(request_model) AS request_model, toString(response_model) AS response_model,
                    response_id, input_tokens, output_tokens, counted, cost_total > 0 AS cost_positive,
                    toString(validation) AS validation, input_messages, output_messages
             FROM loupe.spans",
        )
        .fetch_all()
        .await
        .unwrap();
    let evals: Vec<Eval> = store
        .reader()
        .query("SELECT span_id, name, label, source FROM loupe.evaluations")
        .fetch_all()
        .await
        .unwrap();
    let by_id: HashMap<(&str, &str), &Got> = rows
        .iter()
        .map(|r| ((r.trace_id.as_str(), r.span_id.as_str()), r))
        .collect();
    let m = manifest();
    let total: u64 = m["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["span_count"].as_u64().unwrap())
        .sum();
    assert_eq!(rows.len() as u64, total, "every span stored once");

    let mut bad = Vec::new();
    let mut checked = 0;
    for f in m["fixtures"].as_array().unwrap() {
        let fixture = f["fixture"].as_str().unwrap();
        for ls in f["llm_spans"].as_array().unwrap() {
            let (t, s) = (
                ls["trace_id"].as_str().unwrap(),
                ls["span_id"].as_str().unwrap(),
            );
            let at = format!("{fixture}#{s}");
            let Some(g) = by_id.get(&(t, s)) else {
                bad.push(format!("{at}: no row"));
                continue;
            };
            checked += 1;
            let e = &ls["expected"];
            let s_or_empty = |k: &str| e[k].as_str().filter(|v| *v != NE).unwrap_or("").to_owned();
            for (field, got) in [
                ("provider", &g.provider),
                ("request_model", &g.request_model),
                ("response_model", &g.response_model),
            ] {
                if *got != s_or_empty(field) {
                    bad.push(format!("{at}: {field} {got:?} want {:?}", e[field]));
                }
            }
            // Where the library reports a different count than the provider
            // returned, the manifest says so under `library_reports`.
            let reported = |k: &str| {
                e["library_reports"]
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| e[k].clone())
            };
            if !tokens_ok(&reported("input_tokens"), g.input_tokens) {
                bad.push(format!(
                    "{at}: input_tokens {:?} want {}",
                    g.input_tokens,
                    reported("input_tokens")
                ));
            }
            if !tokens_ok(&reported("output_tokens"), g.output_tokens) {
                bad.push(format!(
                    "{at}: output_tokens {:?} want {}",
                    g.output_tokens,
                    reported("output_tokens")
                ));
            }
            let tenant = e["tenant"].as_str().unwrap_or("default-tenant");
            if g.tenant_id != tenant {
                bad.push(format!("{at}: tenant {:?} want {tenant}", g.tenant_id));
            }
            if e["prompt_present"] == Value::Bool(true) {
                let needle = e["prompt_substring"].as_str().unwrap_or("<none>");
                if !g.input_messages.contains(needle) {
                    bad.push(format!("{at}: prompt lacks {needle:?}"));
                }
            }
            if e["completion_present"] == Value::Bool(true) {
                let needle = e["completion_substring"].as_str().unwrap_or("<none>");
                if !g.output_messages.contains(needle) {
                    bad.push(format!("{at}: completion lacks {needle:?}"));
                }
            }
            let collector_eval = evals
                .iter()
                .find(|v| v.span_id == s && v.name == "json_schema" && v.source == "collector")
                .map(|v| v.label.as_str());
            let want = e["validation"].as_str().filter(|v| *v != NE);
            if collector_eval != want {
                bad.push(format!("{at}: validation {collector_eval:?} want {want:?}"));
            }
            if let Some(label) = want
                && g.validation != label
            {
                bad.push(format!(
                    "{at}: span validation summary {:?} want {label}",
                    g.validation
                ));
            }
        }
    }
    // One call, one cost: per (tenant, provider, response id) exactly one counted span.
    // The mock provider reuses response ids across fixtures, so calls are
    // told apart per fixture (the test runs with cross-request memory off).
    let fixture_of: HashMap<&str, &str> = m["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| {
            f["llm_spans"].as_array().unwrap().iter().map(move |ls| {
                (
                    ls["trace_id"].as_str().unwrap(),
                    f["fixture"].as_str().unwrap(),
                )
            })
        })
        .collect();
    let mut calls: HashMap<(&str, &str, &str, &str), (u32, u32)> = HashMap::new();
    for r in rows
        .iter()
        .filter(|r| !r.response_id.is_empty() && r.input_tokens.is_some())
    {
        let fixture = fixture_of.get(r.trace_id.as_str()).copied().unwrap_or("?");
        let c = calls
            .entry((fixture, &r.tenant_id, &r.provider, &r.response_id))
            .or_default();
        c.0 += 1;
        c.1 += u32::from(r.counted);
    }
    let merged = calls.values().filter(|(n, _)| *n > 1).count();
    for (k, (n, counted)) in &calls {
        if *counted != 1 {
            bad.push(format!("call {k:?}: {n} spans, {counted} counted"));
        }
    }
    assert!(merged >= 20, "only {merged} calls had two spans");
    assert!(checked >= 100, "only {checked} spans checked");
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
    let priced = rows.iter().filter(|r| r.counted && r.cost_positive).count();
    let unpriced: Vec<_> = rows
        .iter()
        .filter(|r| r.counted && !r.cost_positive && r.output_tokens.is_some())
        .map(|r| (&r.provider, &r.request_model, &r.span_id))
        .collect();
    assert!(
        unpriced.is_empty() && priced >= 60,
        "only {priced} counted spans carry a cost; unpriced: {unpriced:?}"
    );
}

async fn run(ext: &str, content_type: &'static str, logs_first: bool) {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::store_at(dir.path()).await);
    let cfg = collector::CollectorConfig {
        dedupe_memory: 0,
        ..common::test_config(dir.path())
    };
    let running = common::start(&cfg, Arc::clone(&store)).await;
    let posted = post_all(&running, ext, content_type, logs_first).await;
    assert!(posted >= 60);
    running.stop().await;
    check_rows(&store).await;
    common::close(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_fixtures_with_logs_after_their_spans_become_manifest_rows() {
    run("pb", "application/x-protobuf", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_fixtures_with_logs_before_their_spans_become_manifest_rows() {
    run("json", "application/json", true).await;
}
