//! End to end: the official Python SDKs → shim → collector (OTLP/HTTP) → embedded
//! ClickHouse. The rows carry the right tokens, cost, tenant, model and evaluation
//! results, and neither the stored rows nor the process's logs contain the API key.
//!
//! Opens the embedded engine, so it runs alone in its process (cargo-nextest) and
//! closes the store at the end. Needs libchdb (scripts/fetch-chdb.sh) and the SDKs
//! (scripts/setup-python-shim.sh; see `common::sdk::python_or_skip`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clickhouse::Row;
use collector::{Collector, CollectorConfig};
use common::sdk::{Logs, SHIM_CALLS, python_or_skip, run_scenarios};
use common::{Mock, start_shim};
use schemas::pricing::PriceTable;
use serde::Deserialize;
use store::{EmbeddedConfig, Store, StoreConfig};
use tokio::sync::oneshot;

const KEY: &str = "sk-ant-api03-E2EKEY-9a8b7c6d5e4f";

#[derive(Debug, Row, Deserialize)]
struct SpanRow {
    tenant_id: String,
    feature: String,
    user_id: String,
    provider: String,
    request_model: String,
    response_model: String,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_tokens: Option<u64>,
    cost_total: String,
    price_status: String,
    validation: String,
    error_type: String,
    http_status: Option<u16>,
    source_convention: String,
    streaming: Option<bool>,
    ttft_ns: Option<u64>,
}

#[derive(Debug, Row, Deserialize)]
struct EvalRow {
    provider: String,
    name: String,
    label: String,
    source: String,
    explanation: String,
}

#[derive(Debug, Row, Deserialize)]
struct Line {
    line: String,
}

/// The real libchdb.so (`LOUPE_CHDB_LIB`, else where scripts/fetch-chdb.sh puts it).
fn lib_path() -> PathBuf {
    store::chdb::installed_lib_path().unwrap_or_else(|e| panic!("{e}"))
}

async fn count(store: &Store) -> u64 {
    store
        .reader()
        .query("SELECT count() FROM loupe.spans")
        .fetch_one::<u64>()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_calls_through_the_shim_land_in_clickhouse_without_the_key() {
    let Some(py) = python_or_skip() else { return };
    let logs = Logs::install();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::Embedded(EmbeddedConfig {
        lib_path: lib_path(),
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        max_memory_bytes: 4 << 30,
        mark_cache_bytes: 64 << 20,
    }))
    .await
    .expect("embedded store starts");
    store::migrate::apply(&store, None)
        .await
        .expect("migrations apply");
    let store = Arc::new(store);

    let cfg = CollectorConfig {
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        spool_dir: dir.path().join("spool"),
        batch_max_age_ms: 20,
        ..CollectorConfig::default()
    };
    let bound = Collector::bind(&cfg).await.expect("collector binds");
    let collector_http = bound.http_addr();
    let (stop_collector, collector_stopped) = oneshot::channel::<()>();
    let prices = Arc::new(PriceTable::bundled().unwrap());
    let collector = tokio::spawn(bound.serve(store.clone(), prices, async move {
        let _ = collector_stopped.await;
    }));

    let mock = Mock::start().await;
    let shim = start_shim(sdk_shim::ShimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        openai_base_url: mock.openai_base(),
        anthropic_base_url: mock.anthropic_base(),
        otlp_endpoint: format!("http://{collector_http}"),
        ..sdk_shim::ShimConfig::default()
    })
    .await;
    run_scenarios(py, &mock, &shim, KEY).await;
    shim.stop().await; // flushes the exporter

    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&store).await < SHIM_CALLS as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows: Vec<SpanRow> = store
        .reader()
        .query(
            "SELECT toString(tenant_id) AS tenant_id, toString(feature) AS feature, user_id,
                    toString(provider) AS provider, toString(request_model) AS request_model,
                    toString(response_model) AS response_model, input_tokens, output_tokens, cache_read_tokens,
                    toString(cost_total) AS cost_total, toString(price_status) AS price_status,
                    toString(validation) AS validation, toString(error_type) AS error_type, http_status,
                    toString(source_convention) AS source_convention, streaming, ttft_ns
             FROM loupe.spans",
        )
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        SHIM_CALLS,
        "one row per SDK call through the shim"
    );
    for r in &rows {
        assert_eq!(
            (r.tenant_id.as_str(), r.feature.as_str(), r.user_id.as_str()),
            ("sdk-tenant", "sdk-tests", "sdk-user")
        );
        assert_eq!(r.source_convention, "loupe_shim");
    }
    let ok: Vec<&SpanRow> = rows.iter().filter(|r| r.error_type.is_empty()).collect();
    assert_eq!(ok.len(), SHIM_CALLS - 6, "{rows:#?}");
    for r in &ok {
        assert_eq!(r.price_status, "priced", "{r:#?}");
        assert!(r.cost_total.parse::<f64>().unwrap() > 0.0, "{r:#?}");
        assert!(
            r.input_tokens.is_some() && !r.response_model.is_empty(),
            "{r:#?}"
        );
        if r.streaming == Some(true) {
            assert!(r.ttft_ns.is_some(), "{r:#?}");
        }
    }
    let chat = rows
        .iter()
        .find(|r| {
            r.request_model == "gpt-4o-mini"
                && r.streaming == Some(false)
                && r.validation.is_empty()
                && r.error_type.is_empty()
        })
        .unwrap();
    assert_eq!((chat.input_tokens, chat.output_tokens), (Some(12), Some(5)));
    assert_eq!(chat.response_model, "gpt-4o-mini-2024-07-18");
    let claude = rows
        .iter()
        .find(|r| r.provider == "anthropic" && r.error_type.is_empty())
        .unwrap();
    assert_eq!(
        (claude.input_tokens, claude.cache_read_tokens),
        (Some(120), Some(100))
    );
    let errors: Vec<(Option<u16>, &str)> = rows
        .iter()
        .filter(|r| !r.error_type.is_empty())
        .map(|r| (r.http_status, r.error_type.as_str()))
        .collect();
    assert_eq!(
        errors.iter().filter(|(s, _)| *s == Some(429)).count(),
        2,
        "{errors:?}"
    );
    assert_eq!(
        errors.iter().filter(|(s, _)| *s == Some(500)).count(),
        2,
        "{errors:?}"
    );
    assert_eq!(
        errors.iter().filter(|(_, t)| *t == "cancelled").count(),
        2,
        "{errors:?}"
    );
    let cancelled = rows.iter().filter(|r| r.error_type == "cancelled");
    for r in cancelled {
        assert!(
            r.output_tokens.is_some_and(|o| o > 0),
            "tokens seen before the disconnect: {r:#?}"
        );
    }

    let evals: Vec<EvalRow> = store
        .reader()
        .query(
            "SELECT toString(provider) AS provider, toString(name) AS name, toString(label) AS label,
                    toString(source) AS source, explanation FROM loupe.evaluations ORDER BY provider, label",
        )
        .fetch_all()
        .await
        .unwrap();
    let got: Vec<(&str, &str, &str, &str)> = evals
        .iter()
        .map(|e| {
            (
                e.provider.as_str(),
                e.name.as_str(),
                e.label.as_str(),
                e.source.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("anthropic", "json_schema", "fail", "shim"),
            ("anthropic", "json_schema", "pass", "shim"),
            ("openai", "json_schema", "fail", "shim"),
            ("openai", "json_schema", "pass", "shim"),
        ],
        "one evaluation per declared output, from the shim, none added twice"
    );
    assert!(
        evals
            .iter()
            .filter(|e| e.label == "fail")
            .all(|e| e.explanation.starts_with("/temp_c")),
        "{evals:#?}"
    );
    let validations: Vec<&str> = rows
        .iter()
        .map(|r| r.validation.as_str())
        .filter(|v| !v.is_empty())
        .collect();
    assert_eq!(validations.len(), 4);

    // The key search: every stored row of every table that holds call data, and the logs.
    let mut stored = String::new();
    for table in ["loupe.spans", "loupe.evaluations", "loupe.trace_index"] {
        let lines: Vec<Line> = store
            .reader()
            .query(&format!(
                "SELECT formatRow('JSONEachRow', *) AS line FROM {table}"
            ))
            .fetch_all()
            .await
            .unwrap();
        assert!(!lines.is_empty(), "{table} has rows");
        for l in lines {
            stored.push_str(&l.line);
        }
    }
    assert!(
        stored.contains("Say hello"),
        "bodies are stored, so the search can find content"
    );
    assert!(!stored.contains(KEY), "the API key is in a stored row");
    assert!(
        !stored.contains("E2EKEY"),
        "part of the API key is in a stored row"
    );
    let logs = logs.text();
    assert!(logs.contains("shim call forwarded"));
    assert!(
        !logs.contains(KEY) && !logs.contains("E2EKEY"),
        "the API key is in the process logs"
    );

    let _ = stop_collector.send(());
    tokio::time::timeout(Duration::from_secs(60), collector)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    Arc::try_unwrap(store)
        .ok()
        .expect("store released")
        .close()
        .await;
}
